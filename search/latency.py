"""Measured inference latency of a candidate (.liv text): prefill of `seq` tokens and one decode step after it.

    measure(liv_text, device="cpu", seq=512)              -> seconds per decode step (median)
    measure_all(liv_text, device="cuda", seq=2048)        -> Latency(prefill_s, decode_s, ...)

Batch 1, float32, `torch.no_grad`, the generated module's own `init_cache` / `prefill` / `decode_step`
(static-shape caches of `seq + steps` positions); each number is the median of `repeats` timings after
`warmup` untimed ones, with CUDA synchronised around each. `vocab` / `width` set the candidate's `vocab`
/ `d` parameters like search.evaluate (None keeps the file's defaults). Thread count is the caller's
(`torch.set_num_threads`).

Backends: an explicit registry. "pytorch" is measured here; "tvm" is the hook for the TVM backend
(backends/tvm runtime Session) and raises SearchError E0803 until it is wired in.
Raises CompileError for a program livc rejects (search.evaluate reports those as failures first).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from livc.search.errors import SearchError


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencySpec:
    device: str = "cpu"
    seq: int = 512
    steps: int = 16  # decode steps timed per repeat (the per-step median is reported)
    repeats: int = 5
    warmup: int = 1
    vocab: int | None = None
    width: int | None = None


@dataclass(frozen=True, slots=True)
class Latency:
    prefill_s: float
    decode_s: float
    seq: int
    device: str
    backend: str


Measure = Callable[[str, LatencySpec], Latency]


def measure(liv_text: str, device: str = "cpu", seq: int = 512, *, backend: str = "pytorch", **spec: object) -> float:
    """Seconds per decode step at position `seq` (the latency objective of the search)."""
    return measure_all(liv_text, device, seq, backend=backend, **spec).decode_s


def measure_all(
    liv_text: str, device: str = "cpu", seq: int = 512, *, backend: str = "pytorch", **spec: object
) -> Latency:
    if backend not in BACKENDS:
        raise SearchError("E0803", f"unknown latency backend {backend!r}; known: {', '.join(BACKENDS)}")
    return BACKENDS[backend](liv_text, LatencySpec(device=device, seq=seq, **spec))  # type: ignore[arg-type]


def _pytorch(liv_text: str, spec: LatencySpec) -> Latency:
    from livc.search.evaluate import build  # evaluate imports the training stack; keep this module light

    model = build(liv_text, spec.vocab, spec.width).model_class(dtype=torch.float32).to(spec.device).eval()
    generator = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, _vocab_of(model, spec.device), (1, spec.seq), generator=generator).to(spec.device)
    token = prompt[:, -1:]
    prefill, decode = [], []
    with torch.no_grad():
        for i in range(spec.warmup + spec.repeats):
            cache = model.init_cache(1, spec.seq + spec.steps, device=spec.device)
            p = _timed(lambda c=cache: model.prefill(prompt, c, last_only=True), spec.device)
            d = _timed(lambda c=cache: [model.decode_step(token, c) for _ in range(spec.steps)], spec.device)
            if i >= spec.warmup:
                prefill.append(p)
                decode.append(d / spec.steps)
    return Latency(statistics.median(prefill), statistics.median(decode), spec.seq, spec.device, "pytorch")


def _vocab_of(model: torch.nn.Module, device: str) -> int:
    with torch.no_grad():
        return int(model(torch.zeros((1, 1), dtype=torch.long, device=device)).logits.shape[-1])


def _timed(thunk: Callable[[], object], device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    thunk()
    _sync(device)
    return time.perf_counter() - start


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _tvm(liv_text: str, spec: LatencySpec) -> Latency:
    del liv_text, spec
    raise SearchError(
        "E0803",
        "TVM latency is not wired in yet",
        help="measure with backend='pytorch'; the TVM hook will build a backends.tvm runtime Session here",
    )


BACKENDS: dict[str, Measure] = {"pytorch": _pytorch, "tvm": _tvm}
