"""`livc build` reports how far the stored weights are from f32 (quant_report), per format, and the manifest
records it."""

from __future__ import annotations

import numpy as np
import pytest
from tvm_util import ir_model

from livc.backends.tvm.plan import make_plan
from livc.backends.tvm.quant_report import quantization_error

SOURCE = """
from std.embedding import Embedding, LMHead
from std.mlp import SwiGLU
from std.norms import RMSNorm

model Q(vocab: int = 48) {
    let d = 32
    embedding: Embedding(vocab, d)
    norm: RMSNorm(d)
    layers: [SwiGLU(d, 64)]
    final_norm: RMSNorm(d)
    head: LMHead(vocab, d, tied = false)
}
"""


def _state(plan, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {pid: rng.normal(0.0, 0.02, shape).astype(np.float32) for pid, shape in plan.shapes}


@pytest.mark.parametrize(("fmt", "low", "high"), [("f32", 0, 0), ("f16", 1e-5, 1e-3), ("bf16", 1e-4, 1e-2),
                                                 ("q8", 1e-3, 2e-2), ("q4", 2e-2, 0.2)])  # fmt: skip
def test_error_is_zero_for_f32_and_grows_with_fewer_bits(fmt: str, low: float, high: float) -> None:
    plan = make_plan(ir_model(SOURCE), fmt, 16)
    state = _state(plan)
    err = quantization_error(plan, state, plan.pack(state))
    assert err.matrices == len(plan.matrices) == 5  # embedding, w1, w3, w2, head
    assert low <= err.rel_rms <= high and err.worst in plan.matrices
    assert err.max_abs <= 0.02 * 6 and (err.max_abs == 0) == (fmt == "f32")
    assert fmt in err.describe() and set(err.as_dict()) >= {"relative_rms_error", "max_abs_error"}


def test_error_is_measured_against_the_given_weights() -> None:
    """A matrix whose stored arrays were damaged shows up as the worst one."""
    plan = make_plan(ir_model(SOURCE), "q8", 16)
    state = _state(plan)
    packed = plan.pack(state)
    names = [w.name for w in plan.weight_inputs]
    i = names.index("layers.0.0.w2.weight")
    packed[i] = np.zeros_like(packed[i])
    err = quantization_error(plan, state, packed)
    assert err.worst == "layers.0.0.w2.weight" and err.worst_rel_rms == pytest.approx(1.0)
