"""Weight storage formats (backends/tvm/weights.py) and the matmul/gather kernels + hand schedules built on them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livc.backends.tvm import weights as W
from livc.backends.tvm.errors import TvmError

shapes = st.tuples(st.integers(1, 3), st.integers(1, 40), st.integers(1, 100)).map(lambda s: s[1:] if s[0] == 1 else s)


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


# --------------------------------------------------------------------------------------------- kernels

tvm = pytest.importorskip("tvm")
from tvm import relax, tirx  # noqa: E402

from livc.backends.tvm import matmul as M  # noqa: E402
from livc.backends.tvm import schedules as S  # noqa: E402

TARGET = tvm.target.Target({"kind": "llvm", "mtriple": "x86_64-linux-gnu", "num-cores": 2})


class _Ctx:
    """What matmul.linear / gather_rows read of an EmitCtx: the BlockBuilder."""

    def __init__(self, bb: relax.BlockBuilder) -> None:
        self.bb = bb


def _fused(mod: tvm.IRModule) -> tvm.IRModule:
    with TARGET:
        for p in (relax.transform.LegalizeOps, relax.transform.AnnotateTIROpPattern, relax.transform.FuseOps):
            mod = p()(mod)
        return relax.transform.FuseTIR()(mod)


def _strict_schedule(mod: tvm.IRModule) -> tvm.IRModule:
    """schedules.apply, but a matmul rule that TVM refuses fails the test instead of falling back."""
    for gv, func in mod.functions_items():
        if isinstance(func, tirx.PrimFunc):
            mod.update_func(gv, S.schedule_func(func, strict=True))
    return mod


def _linear_module(fmt: str, out: int, inp: int, rows: int | None, bias: bool) -> tvm.IRModule:
    """x [1, rows or T, inp] -> silu(linear(x) + bias): the epilogue fuses into the kernel."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, rows or tirx.Var("T", "int64"), inp), "float32"))
    ws = [relax.Var(f"w{k}", relax.TensorType(shp, dt)) for k, (_, shp, dt) in enumerate(W.storage((out, inp), fmt))]
    b = relax.Var("b", relax.TensorType((out,), "float32"))
    with bb.function("main", [x, *ws, *([b] if bias else [])]):
        with bb.dataflow():
            y = M.linear(_Ctx(bb), x, M.Weight(fmt, tuple(ws), out, inp), b if bias else None)
            o = bb.emit_output(bb.emit(relax.op.nn.silu(y)))
        bb.emit_func_output(o)
    return bb.get()


def _run(mod: tvm.IRModule, *arrays: np.ndarray) -> np.ndarray:
    vm = relax.VirtualMachine(tvm.compile(mod, target=TARGET), tvm.cpu())
    return vm["main"](*[tvm.runtime.tensor(a) for a in arrays]).numpy()


def _loop_kinds(mod: tvm.IRModule) -> str:
    return "\n".join(f.script() for _, f in mod.functions_items() if isinstance(f, tirx.PrimFunc))


@pytest.mark.parametrize("fmt", W.FORMATS)
@pytest.mark.parametrize(("out", "inp", "rows"), [(128, 96, 1), (40, 50, 1), (64, 64, None)])
def test_linear_matches_dequantised_reference(fmt, out, inp, rows):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((out, inp)).astype(np.float32) / np.sqrt(inp)
    bias = rng.standard_normal(out).astype(np.float32)
    mod = _strict_schedule(_fused(_linear_module(fmt, out, inp, rows, bias=True)))
    script = _loop_kinds(mod)
    assert "T.parallel" in script and "T.vectorized" in script
    stored = list(W.pack(w, fmt).values())
    ref_w = W.unpack(W.pack(w, fmt), fmt, w.shape)
    for t in (1,) if rows else (1, 5, 13):
        x = rng.standard_normal((1, t, inp)).astype(np.float32)
        y = x @ ref_w.T + bias
        np.testing.assert_allclose(_run(mod, x, *stored, bias), y / (1 + np.exp(-y)), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("fmt", W.FORMATS)
def test_gather_rows_matches_dequantised_rows(fmt):
    rng = np.random.default_rng(2)
    table = rng.standard_normal((37, 40)).astype(np.float32)
    bb = relax.BlockBuilder()
    tok = relax.Var("tok", relax.TensorType((1, tirx.Var("T", "int64")), "int32"))
    ws = [relax.Var(f"w{k}", relax.TensorType(s, d)) for k, (_, s, d) in enumerate(W.storage(table.shape, fmt))]
    with bb.function("main", [tok, *ws]):
        with bb.dataflow():
            o = bb.emit_output(M.gather_rows(_Ctx(bb), M.Weight(fmt, tuple(ws), 37, 40), tok))
        bb.emit_func_output(o)
    ids = np.array([[0, 36, 5, 17, 16]], np.int32)
    got = _run(S.apply(_fused(bb.get()), TARGET), ids, *W.pack(table, fmt).values())
    np.testing.assert_array_equal(got[0], W.unpack(W.pack(table, fmt), fmt, table.shape)[ids[0]])


def test_default_schedule_parallelises_a_dynamic_reduction():
    """A kernel no rule knows (RMSNorm over a symbolic T) still gets parallel loops and stays correct."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, tirx.Var("T", "int64"), 4096), "float32"))
    g = relax.Var("g", relax.TensorType((4096,), "float32"))
    with bb.function("main", [x, g]):
        with bb.dataflow():
            o = bb.emit_output(bb.emit(relax.op.nn.rms_norm(x, g, axes=[-1], epsilon=1e-5)))
        bb.emit_func_output(o)
    mod = S.apply(_fused(bb.get()), TARGET)
    assert "T.parallel" in _loop_kinds(mod)
    xs = np.random.default_rng(3).standard_normal((1, 9, 4096)).astype(np.float32)
    gs = np.linspace(0.5, 1.5, 4096).astype(np.float32)
    ref = xs / np.sqrt((xs**2).mean(-1, keepdims=True) + 1e-5) * gs
    np.testing.assert_allclose(_run(mod, xs, gs), ref, rtol=1e-5, atol=1e-5)


def test_already_scheduled_functions_are_left_alone():
    mod = S.apply(_fused(_linear_module("f32", 64, 64, 1, bias=False)), TARGET)
    again = S.apply(mod, TARGET)
    tvm.ir.assert_structural_equal(mod, again)


# --------------------------------------------------------------------------------------------- tuning

TINY_LFM2 = {"vocab": 64, "d": 64, "heads": 4, "kv_heads": 2, "ff_dim": 128}


@pytest.mark.slow  # ~100 s on 2 busy cores: MetaSchedule builds and runs every trial
def test_tuning_database_is_reused_by_later_builds(tmp_path):
    from pathlib import Path

    from tvm_util import ir_model, state_of, torch_module

    from livc.backends.tvm import tune
    from livc.backends.tvm.compile import BuildOptions, build
    from livc.backends.tvm.runtime import Session

    source = (Path(__file__).resolve().parents[1] / "examples" / "lfm2_350m.liv").read_text()
    model = ir_model(source, **TINY_LFM2)
    lines: list[str] = []
    report = tune.tune(model, tune.TuneOptions(db_dir=tmp_path, trials=6, per_iter=3, max_len=64), lines.append)
    assert report.records > 0 and report.tasks
    assert any("dynamic" in why or "opaque" in why or "excluded" in why for _, why in report.skipped)
    assert any(line.startswith("tune: done") for line in lines)
    state = state_of(torch_module(source, **TINY_LFM2))
    tuned = Session(build(model, BuildOptions(max_len=64, tune_db=tmp_path)), state)
    hand = Session(build(model, BuildOptions(max_len=64)), state)
    for s in (tuned, hand):
        s.prefill([1, 2, 3])
    np.testing.assert_allclose(tuned.decode(5), hand.decode(5), atol=1e-5)


def test_apply_database_without_a_database_is_a_coded_error(tmp_path):
    from livc.backends.tvm import tune

    with pytest.raises(TvmError) as err:
        tune.apply_database(tvm.IRModule(), TARGET, tmp_path)
    assert err.value.code == "E0701"
