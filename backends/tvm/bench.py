"""`livc bench`: prompt processing (pp) and token generation (tg) rates of the TVM build next to the PyTorch
backend on the same weights, printed like llama-bench (`| model | backend | weights | test | t/s |`).

    tvm_rows(built, state, ids, n_gen, reps) / torch_rows(model, state, ids, n_gen, reps, max_len, decodes)
    table(name, rows) -> str

pp N: one prefill of N tokens from an empty cache; tg N: N decode steps after a one-token prefill (the way
llama-bench counts them). Every measurement is repeated `reps` times after one warm-up run; the table shows
mean ± standard deviation of tokens/s. The PyTorch backend runs in f32 (the reference; torch has no fast
narrow-weight CPU path), TVM in the built weight format.

Preconditions: `built` runs on this host (x86); `state` holds f32 arrays by parameter id. Non-goals: batch > 1,
timing under emulation (arm64 timings come from a phone: see docs/tvm.md).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from livc.backends.tvm.errors import ARTIFACT, TvmError
from livc.compiler.ir.nodes import Model


@dataclass(frozen=True)
class Row:
    backend: str
    weights: str
    test: str  # "pp64" | "tg32"
    rates: tuple[float, ...]  # tokens/s per repetition

    @property
    def shown(self) -> str:
        mean = statistics.fmean(self.rates)
        std = statistics.pstdev(self.rates) if len(self.rates) > 1 else 0.0
        return f"{mean:.2f} ± {std:.2f}"


def _timed(fn: Callable[[], Any], reps: int) -> list[float]:
    fn()  # warm-up
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


def torch_module(model: Model, state: dict[str, np.ndarray]) -> Any:
    """The generated PyTorch module (f32) holding `state`."""
    import torch

    from livc.backends.pytorch.generate import generate
    from livc.backends.pytorch.load import Built

    module = Built.load(model, generate(model, "<livc bench>", "")).model_class(dtype=torch.float32).eval()
    params = dict(module.named_parameters())
    missing = [n for n in params if n not in state and n != "head.out.weight"]
    if missing:
        raise TvmError(ARTIFACT, f"bench: the weights lack {missing[0]}")
    with torch.no_grad():
        for name, p in params.items():
            if name in state:
                p.copy_(torch.from_numpy(np.asarray(state[name], dtype=np.float32)))
    return module


def _tvm_runs(session: Any, ids: np.ndarray, n_gen: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
    def pp() -> Any:
        return session.prefill(ids)

    def tg() -> None:
        session.prefill(ids[:1])
        for t in range(n_gen):
            session.decode(int(ids[t % len(ids)]))

    return pp, tg


def _torch_runs(module: Any, ids: np.ndarray, n_gen: int, max_len: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
    import torch

    tokens = torch.as_tensor(ids, dtype=torch.long)[None]

    @torch.no_grad()
    def pp() -> Any:
        return module.prefill(tokens, module.init_cache(1, max_len), last_only=True)

    @torch.no_grad()
    def tg() -> None:
        cache = module.init_cache(1, max_len)
        module.prefill(tokens[:, :1], cache, last_only=True)
        for t in range(n_gen):
            module.decode_step(tokens[:, t % tokens.shape[1] :][:, :1], cache)

    return pp, tg


def _rows(
    backend: str, weights: str, runs: tuple[Callable[[], Any], Callable[[], Any]], n: tuple[int, int], reps: int
) -> list[Row]:
    (pp, tg), (n_prompt, n_gen) = runs, n
    rows = [Row(backend, weights, f"pp{n_prompt}", tuple(n_prompt / s for s in _timed(pp, reps)))]
    if n_gen:
        rows.append(Row(backend, weights, f"tg{n_gen}", tuple(n_gen / s for s in _timed(tg, reps))))
    return rows


def prompt(model: Model, n_prompt: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, model.vocab, size=max(n_prompt, 1)).astype(np.int32)


def tvm_rows(built: Any, state: dict[str, np.ndarray], ids: np.ndarray, n_gen: int, reps: int) -> list[Row]:
    """pp{len(ids)} and tg{n_gen} of a TVM build (its weight format) on this host."""
    from livc.backends.tvm.runtime import Session

    session = Session(built, state)
    n_gen = n_gen if built.decodes else 0
    runs = _tvm_runs(session, ids, n_gen)
    return _rows(f"tvm {_target_name(built)}", built.plan.fmt, runs, (len(ids), n_gen), reps)


def torch_rows(
    model: Model, state: dict[str, np.ndarray], ids: np.ndarray, n_gen: int, reps: int, max_len: int, decodes: bool
) -> list[Row]:
    """The same tests with the PyTorch backend (f32)."""
    runs = _torch_runs(torch_module(model, state), ids, n_gen if decodes else 0, max_len)
    return _rows("torch", "f32", runs, (len(ids), n_gen if decodes else 0), reps)


def _target_name(built: Any) -> str:
    target = getattr(built, "target", None)
    return str(target.attrs.get("mcpu", "llvm")) if target is not None and hasattr(target, "attrs") else "llvm"


def table(name: str, rows: list[Row]) -> str:
    """A markdown table like llama-bench's."""
    head = ("model", "backend", "weights", "test", "t/s")
    body = [(name, r.backend, r.weights, r.test, r.shown) for r in rows]
    widths = [max(len(str(x[i])) for x in (head, *body)) for i in range(len(head))]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    sep = "| " + " | ".join("-" * w for w in widths) + " |"
    return "\n".join([line(head), sep, *(line(b) for b in body)]) + "\n"
