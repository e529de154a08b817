"""Weight storage formats (backends/tvm/weights.py) and the matmul/gather kernels + hand schedules built on them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livc.backends.tvm import weights as W
from livc.backends.tvm.errors import TvmError

shapes = st.tuples(st.integers(1, 3), st.integers(1, 40), st.integers(1, 100)).map(
    lambda s: s[1:] if s[0] == 1 else s
)


def _matrix(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * rng.choice([1e-3, 1.0, 30.0])).astype(np.float32)


def _group_scale(w: np.ndarray, fmt: str) -> np.ndarray:
    """|d| per element: the f16 scale of its group of 32 (recomputed independently of weights.py)."""
    inp = w.shape[-1]
    pad = -inp % 32
    g = np.pad(w, [(0, 0)] * (w.ndim - 1) + [(0, pad)]).reshape(*w.shape[:-1], -1, 32)
    amax = np.abs(g).max(axis=-1)
    d = (amax / (127.0 if fmt == "q8" else 8.0)).astype(np.float16).astype(np.float32)
    return np.repeat(d, 32, axis=-1)[..., :inp]


@settings(max_examples=40, deadline=None)
@given(shape=shapes, fmt=st.sampled_from(W.FORMATS), seed=st.integers(0, 2**16))
def test_pack_matches_storage_and_round_trips_within_bound(shape, fmt, seed):
    w = _matrix(shape, seed)
    arrays = W.pack(w, fmt)
    specs = W.storage(shape, fmt)
    assert [s for s, _, _ in specs] == list(arrays)
    for suffix, shp, dtype in specs:
        assert arrays[suffix].shape == shp and arrays[suffix].dtype == np.dtype(dtype)
    back = W.unpack(arrays, fmt, shape)
    assert back.shape == w.shape and back.dtype == np.float32
    err = np.abs(back - w)
    if fmt == "f32":
        assert (err == 0).all()
    elif fmt == "f16":
        assert (err <= np.abs(w) * 2.0**-11 + 2.0**-25).all()
    elif fmt == "bf16":
        assert (err <= np.abs(w) * 2.0**-8).all()
    elif fmt == "q8":
        assert (err <= 0.5 * _group_scale(w, fmt) * (1 + 1e-5) + 1e-30).all()
    else:  # q4: half a step, one step at the clipped end of the range
        assert (err <= _group_scale(w, fmt) * (1 + 2e-3) + 1e-30).all()


@settings(max_examples=20, deadline=None)
@given(shape=shapes, fmt=st.sampled_from(("q8", "q4")), seed=st.integers(0, 2**16))
def test_quantised_pack_is_idempotent(shape, fmt, seed):
    """Quantising the dequantised matrix again gives the same codes (a fixed point, like llama.cpp)."""
    once = W.pack(_matrix(shape, seed), fmt)
    twice = W.pack(W.unpack(once, fmt, shape), fmt)
    for k in once:
        np.testing.assert_array_equal(once[k], twice[k])


def test_partial_groups_use_only_real_values():
    w = np.zeros((1, 40), np.float32)
    w[0, 32:] = np.linspace(-1, 1, 8)  # last group: 8 real values, 24 pad
    back = W.unpack(W.pack(w, "q8"), "q8", w.shape)
    np.testing.assert_allclose(back[0, 32:], w[0, 32:], atol=0.5 / 127 * 1.001)
    assert (back[0, :32] == 0).all()  # an all-zero group decodes to exact zeros


def test_q4_nibble_order_is_q4_0():
    w = np.arange(32, dtype=np.float32)[None, :] - 16.0  # one group; max magnitude -16 -> d = 2
    q = W.pack(w, "q4")[W.DATA]  # [1, 16, 16]
    byte = q[0, :, 0]
    assert ((byte & 15) == np.clip(np.floor(w[0, :16] / 2 + 8.5), 0, 15)).all()
    assert ((byte >> 4) == np.clip(np.floor(w[0, 16:] / 2 + 8.5), 0, 15)).all()


def test_bytes_per_weight():
    assert W.nbytes((1024, 1024), "f32") == 4 * 1024 * 1024
    assert W.nbytes((1024, 1024), "q8") == 1024 * 1024 * 34 // 32
    assert W.nbytes((1024, 1024), "q4") == 1024 * 1024 * 18 // 32


@pytest.mark.parametrize(
    ("args", "code"),
    [((np.ones((2, 2)), "q5"), "E0701"), ((np.ones(3), "f32"), "E0701"), ((np.full((2, 2), np.nan), "q8"), "E0703")],
)
def test_bad_input_is_a_coded_error(args, code):
    with pytest.raises(TvmError) as err:
        W.pack(*args)
    assert err.value.code == code


def test_f16_overflow_is_rejected():
    with pytest.raises(TvmError, match="f16"):
        W.pack(np.full((2, 2), 1e5, np.float32), "f16")
