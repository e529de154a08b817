"""How far the stored weights of a build are from the f32 weights they came from (`livc build` reports it).

For every matrix weight stored in the build's format, the stored arrays are dequantised exactly as the kernels
do (`weights.unpack`) and compared with the f32 source: relative RMS error per matrix and over all matrices
(sqrt(sum |dW|^2 / sum |W|^2)), and the largest absolute difference. f32 builds report zeros. Non-goal: logit
or loss error (tests/test_tvm_quality.py measures those on a trained model; docs/benchmarks.md has the table).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livc.backends.tvm import weights
from livc.backends.tvm.plan import Plan


@dataclass(frozen=True)
class QuantError:
    fmt: str
    matrices: int
    rel_rms: float  # over all matrices
    worst: str  # the param id with the largest relative RMS error ("" if none)
    worst_rel_rms: float
    max_abs: float

    def as_dict(self) -> dict[str, object]:
        return {
            "format": self.fmt,
            "matrices": self.matrices,
            "relative_rms_error": self.rel_rms,
            "worst_matrix": self.worst or None,
            "worst_relative_rms_error": self.worst_rel_rms,
            "max_abs_error": self.max_abs,
        }

    def describe(self) -> str:
        if not self.matrices:
            return f"{self.fmt} weights: no matrix weights"
        return (
            f"{self.fmt} weights vs f32: relative RMS error {self.rel_rms:.2e} over {self.matrices} matrices "
            f"(worst {self.worst}: {self.worst_rel_rms:.2e}), max |dW| {self.max_abs:.2e}"
        )


def _stored(plan: Plan, packed: list[np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    by_param: dict[str, dict[str, np.ndarray]] = {}
    for w, array in zip(plan.weight_inputs, packed):
        if w.param in plan.matrices:
            by_param.setdefault(w.param, {})[w.suffix] = array
    return by_param


def quantization_error(plan: Plan, state: dict[str, np.ndarray], packed: list[np.ndarray]) -> QuantError:
    """`state`: the f32 weights by param id; `packed`: `plan.pack(state)` (the arrays the artifact stores)."""
    err_sq = ref_sq = max_abs = worst_rel = 0.0
    worst = ""
    stored = _stored(plan, packed)
    for pid, arrays in stored.items():
        ref = np.asarray(state[pid], dtype=np.float32)
        diff = weights.unpack(arrays, plan.fmt, ref.shape).astype(np.float64) - ref
        e, r = float(np.square(diff).sum()), float(np.square(ref.astype(np.float64)).sum())
        err_sq, ref_sq = err_sq + e, ref_sq + r
        max_abs = max(max_abs, float(np.abs(diff).max(initial=0.0)))
        rel = (e / r) ** 0.5 if r > 0 else 0.0
        if rel > worst_rel or not worst:
            worst, worst_rel = pid, rel
    total = (err_sq / ref_sq) ** 0.5 if ref_sq > 0 else 0.0
    return QuantError(plan.fmt, len(stored), total, worst, worst_rel, max_abs)
