"""Reference harness for the TVM backend: the same .liv text built by the PyTorch backend (f32) and by TVM
from the same weights, compared on prefill and decode.

    torch_model, session = pair(source, weights="f32", max_len=64, d=16)
    assert_matches(source, T=8, steps=4, tol=1e-5)

The torch module is the numerical reference (backends/pytorch); both are built from the one IR model of
`compile_source` (the torch backend from the canonicalize stage it uses, TVM from the lower stage).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from livc.api import to_overrides
from livc.backends.pytorch.generate import generate
from livc.backends.pytorch.load import Built as TorchBuilt
from livc.backends.tvm.compile import BuildOptions, build
from livc.backends.tvm.runtime import Session
from livc.compiler.ir.nodes import Model
from livc.compiler.pipeline import compile_source


def ir_model(source: str, stage: str = "lower", **overrides: object) -> Model:
    result = compile_source(source, "<tvm-test>", stop_after=stage, overrides=to_overrides(**overrides))
    if not result.ok or len(result.models) != 1:
        raise AssertionError(f"test model does not compile: {[str(d) for d in result.diagnostics]}")
    return result.models[0]


def torch_module(source: str, seed: int = 0, **overrides: object) -> torch.nn.Module:
    model = ir_model(source, "canonicalize", **overrides)
    built = TorchBuilt.load(model, generate(model, "<tvm-test>", source))
    torch.manual_seed(seed)
    module = built.model_class(dtype=torch.float32)
    _perturb(module, seed)
    return module.eval()


def _perturb(module: torch.nn.Module, seed: int) -> None:
    """Norm weights init to ones and biases to zeros: move every parameter a little so a wrong role shows."""
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)


def state_of(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().float().numpy() for k, v in module.state_dict().items()}


def pair(
    source: str,
    weights: str = "f32",
    max_len: int = 64,
    seed: int = 0,
    target: Any = None,
    schedule: bool = True,
    **overrides: object,
) -> tuple[torch.nn.Module, Session]:
    """(torch f32 module, TVM Session) with the same weights."""
    module = torch_module(source, seed, **overrides)
    options = BuildOptions(target=target, weights=weights, max_len=max_len, schedule=schedule)
    built = build(ir_model(source, **overrides), options)
    return module, Session(built, state_of(module))


@dataclass(frozen=True)
class Comparison:
    prefill: float  # max abs diff of the last prefill logits vs torch
    decode: float  # max over decode steps
    consistency: float  # TVM prefill(T) + decode vs TVM prefill(T + 1)


def _torch_logits(module: torch.nn.Module, ids: np.ndarray, T: int, steps: int, max_len: int) -> list[np.ndarray]:
    cache = module.init_cache(1, max_len)
    tokens = torch.as_tensor(ids, dtype=torch.long)[None]
    with torch.no_grad():
        out = [module.prefill(tokens[:, :T], cache, last_only=True)[:, -1].numpy()]
        for s in range(steps):
            out.append(module.decode_step(tokens[:, T + s : T + s + 1], cache)[:, -1].numpy())
    return out


def compare(
    source: str,
    T: int = 8,
    steps: int = 4,
    weights: str = "f32",
    max_len: int = 64,
    seed: int = 0,
    schedule: bool = True,
    **overrides: object,
) -> Comparison:
    module, session = pair(source, weights, max_len, seed, schedule=schedule, **overrides)
    ids = _ids(source, T + steps, seed, **overrides)
    ref = _torch_logits(module, ids, T, steps, max_len)
    got = [session.prefill(ids[:T])] + [session.decode(int(ids[T + s])) for s in range(steps)]
    diffs = [float(np.abs(a - b).max()) for a, b in zip(got, ref, strict=True)]
    again = session.prefill(ids[: T + 1]) if steps else got[0]
    consistency = float(np.abs(again - got[1]).max()) if steps else 0.0
    return Comparison(diffs[0], max(diffs[1:], default=0.0), consistency)


def _ids(source: str, n: int, seed: int, **overrides: object) -> np.ndarray:
    vocab = ir_model(source, **overrides).vocab
    return np.random.default_rng(seed).integers(0, vocab, size=n)


def assert_matches(
    source: str,
    T: int = 8,
    steps: int = 4,
    tol: float = 1e-5,
    weights: str = "f32",
    max_len: int = 64,
    seed: int = 0,
    schedule: bool = True,
    **overrides: object,
) -> Comparison:
    """TVM prefill / decode logits equal torch's within `tol` (abs), and prefill(T) + decode == prefill(T + 1)."""
    c = compare(source, T, steps, weights, max_len, seed, schedule, **overrides)
    assert c.prefill <= tol, f"prefill logits differ from torch by {c.prefill:.3g} (tol {tol})"
    assert c.decode <= tol, f"decode logits differ from torch by {c.decode:.3g} (tol {tol})"
    assert c.consistency <= tol, f"prefill(T) + decode differs from prefill(T + 1) by {c.consistency:.3g}"
    return c
