"""Adreno / Mali OpenCL kernels run on PoCL (pyopencl) and match the CPU build of the same kernels (fp32).

For each primitive family, a tiny model is lowered; every PrimFunc of prefill (T specialized to 7) and of
decode_step is scheduled for the GPU target (gpu/schedules.py), its OpenCL source generated, and its kernels
run on PoCL with random inputs. The reference is the same PrimFunc before the GPU schedule compiled for llvm
(the CPU backend's kernels, which tests/test_tvm_{core,attention_conv,scans}.py check against torch), plus a
direct numpy check of the GEMV. fp16 OpenCL cannot run on PoCL (no cl_khr_fp16): those builds are only
checked to compile (tests/test_tvm_gpu.py).
Needs: apt-get install -y pocl-opencl-icd ocl-icd-libopencl1; pip install pyopencl (skipped otherwise).
Two family x target cases run by default; all 16: `pytest -m slow tests/test_tvm_opencl.py` (~7 min, 2 cores).
"""

from __future__ import annotations

import numpy as np
import pytest
import tvm
import tvm.sym
from tvm import te, tirx
from tvm_util import ir_model

from livc.backends.tvm.compile import PIPELINE
from livc.backends.tvm.gpu import opencl, schedules
from livc.backends.tvm.gpu import targets as gpu_targets
from livc.backends.tvm.kernels import attention as kernels
from livc.backends.tvm.lower import lower
from livc.backends.tvm.plan import make_plan

cl = pytest.importorskip("pyopencl")
try:
    cl.get_platforms()[0].get_devices()
except Exception:  # noqa: BLE001
    pytest.skip("no OpenCL platform (apt-get install -y pocl-opencl-icd)", allow_module_level=True)

TOL = 2e-5
ANALYZER = tvm.sym.Analyzer()
LENGTH = 7  # prefill length the symbolic T is specialized to
POS = 5  # decode position
MAX_LEN = 16
HEAD = """from std.norms import RMSNorm
from std.embedding import Embedding, LMHead
from std.attention import GQA, SWA
from std.conv import GatedShortConv
from std.mlp import SwiGLU, MoE
from std.recurrence import GLA, Mamba
from std.hyena import Hyena, HyenaLI

model M(vocab: int = 32, d: int = 16) {
    embedding: Embedding(vocab, d)
    layers: LAYERS
    final_norm: RMSNorm(d)
    head: LMHead(vocab, d, tied = true)
}
"""
FAMILIES = {  # primitive family -> layers of a tiny model that exercises it
    "linear_norm_swiglu": "[SwiGLU(d, 24)]",
    "gated_short_conv": "[GatedShortConv(d)]",
    "attention_gqa": "[GQA(d, heads = 4, kv_heads = 2)]",
    "attention_window": "[SWA(d, heads = 2, window = 4)]",
    "gated_scan": "[GLA(d, heads = 2, gate_rank = 4)]",
    "selective_scan": "[Mamba(d, state = 4)]",
    "long_conv_implicit": "[Hyena(d, filter_order = 8)]",
    "long_conv_modal": "[HyenaLI(d, state = 4)]",
}
TARGETS = ("adreno", "mali")


def _source(layers: str) -> str:
    return HEAD.replace("LAYERS", layers)


def _sizes(func: tirx.PrimFunc) -> dict[str, int]:
    return dict.fromkeys(opencl.symbols(func), LENGTH)


def _is_buffer(param: tirx.Var) -> bool:
    return "BufferType" in str(param.ty)


def _inputs(func: tirx.PrimFunc, rng: np.random.Generator) -> dict[str, np.ndarray]:
    arrays = {}
    for buf in filter(_is_buffer, func.params):
        shape = tuple(int(ANALYZER.simplify(d)) for d in buf.shape)
        if buf.dtype.startswith("int") or buf.dtype.startswith("uint"):
            arrays[buf.name] = np.zeros(shape, dtype=buf.dtype)  # token ids / indices: 0 is always valid
        elif buf.dtype == "bool":
            arrays[buf.name] = np.ones(shape, dtype=bool)
        else:
            arrays[buf.name] = (rng.standard_normal(shape) * 0.5).astype(buf.dtype)
    return arrays


def _cpu(func: tirx.PrimFunc, arrays: dict[str, np.ndarray], scalars: dict[str, int]) -> dict[str, np.ndarray]:
    exe = tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), target="llvm")
    bufs = {k: tvm.runtime.tensor(v.copy()) for k, v in arrays.items()}
    args = []
    for param in func.params:
        args.append(bufs[param.name] if _is_buffer(param) else scalars[param.name])
    exe["main"](*args)
    return {k: v.numpy() for k, v in bufs.items()}


def _scalars(func: tirx.PrimFunc) -> dict[str, int]:
    return {p.name: POS for p in func.params if not _is_buffer(p)}


def _functions(source: str, target: tvm.target.Target) -> list[tuple[str, tirx.PrimFunc, tirx.PrimFunc]]:
    """(name, reference PrimFunc, GPU-scheduled PrimFunc) of every kernel of the model, shapes specialized."""
    model = ir_model(source)
    mod = lower(model, make_plan(model, "f32", MAX_LEN))
    with target:
        mod = tvm.transform.Sequential([p() for p in PIPELINE])(mod)
    out = []
    for gv, func in mod.functions_items():
        if not isinstance(func, tirx.PrimFunc):
            continue
        sizes = _sizes(func)
        ref = opencl.specialized(func, sizes) if sizes else func
        scalars = [p for p in ref.params if not _is_buffer(p)]
        if scalars:  # the decode position, or a length passed as a scalar: a constant here
            ref = ref.specialize({p: tvm.tirx.const(POS, str(p.ty)) for p in scalars})
        with target:
            gpu = schedules.schedule_func(ref, target, gv.name_hint)
        out.append((gv.name_hint, ref, gpu))
    return out


def _compare(name: str, ref: tirx.PrimFunc, gpu: tirx.PrimFunc, target: tvm.target.Target) -> float:
    rng = np.random.default_rng(0)
    arrays = _inputs(ref, rng)
    scalars = _scalars(ref)
    want = _cpu(ref, arrays, scalars)
    got = opencl.run(gpu, target, arrays, scalars | _scalars(gpu))  # a rebuilt GPU kernel keeps `pos` a scalar
    err = 0.0
    for key, value in want.items():
        if value.dtype.kind == "f":
            scale = max(1.0, float(np.abs(value).max()))
            err = max(err, float(np.abs(got[key].astype(np.float64) - value).max()) / scale)
        else:
            assert np.array_equal(got[key], value), f"{name}: integer buffer {key} differs"
    return err


QUICK = {("gated_short_conv", "adreno"), ("attention_gqa", "mali")}  # the default run; the rest: -m slow
CASES = [
    pytest.param(f, t, marks=() if (f, t) in QUICK else pytest.mark.slow) for f in sorted(FAMILIES) for t in TARGETS
]


@pytest.mark.parametrize(("family", "target_name"), CASES)
def test_family_kernels_match_cpu_on_pocl(family: str, target_name: str) -> None:
    target = gpu_targets.tvm_target(gpu_targets.spec(target_name))
    funcs = _functions(_source(FAMILIES[family]), target)
    errors = {name: _compare(name, ref, gpu, target) for name, ref, gpu in funcs}
    assert len(errors) >= 3, errors
    bad = {k: v for k, v in errors.items() if not v <= TOL}
    assert not bad, f"{family} on {target_name}: kernels differing from the CPU build: {bad}"


DECODE_SPECS = {  # AttnSpec, decode position: several key chunks, a ring, softcap, key masks, dv > work group
    "chunks_gqa": (kernels.AttnSpec(4, 2, 8, 8, 150), 130),
    "ring": (kernels.AttnSpec(2, 1, 8, 8, 40, window=40), 100),
    "softcap_mask": (kernels.AttnSpec(2, 2, 8, 8, 90, softcap=5.0, key_mask="float32"), 80),
    "bool_mask_wide_dv": (kernels.AttnSpec(2, 1, 16, 96, 70, key_mask="bool"), 69),
}


@pytest.mark.parametrize("case", sorted(DECODE_SPECS))
def test_decode_attention_gpu_kernel_matches_cpu_on_pocl(case: str) -> None:
    spec, pos = DECODE_SPECS[case]
    target = gpu_targets.tvm_target(gpu_targets.spec("adreno"))
    sizes = {"nk": spec.slots}
    ref = opencl.specialized(kernels.attention_decode(spec), sizes) if spec.key_mask else kernels.attention_decode(spec)
    with target:
        gpu = schedules.schedule_func(ref, target, "attention_decode")
    gpu = opencl.specialized(gpu, sizes) if spec.key_mask else gpu
    assert gpu.attrs["livc.kernel"] == "attention_decode_gpu"
    rng = np.random.default_rng(3)
    arrays = _inputs(ref, rng)
    if spec.key_mask is not None:
        keep = rng.random(arrays["km"].shape) > 0.4
        arrays["km"] = keep if spec.key_mask == "bool" else keep.astype(np.float32)
    want = _cpu(ref, arrays, {"pos": pos})
    got = opencl.run(gpu, target, arrays, {"pos": pos})
    scale = max(1.0, float(np.abs(want["y"]).max()))
    assert float(np.abs(got["y"] - want["y"]).max()) / scale <= TOL


@pytest.mark.parametrize("target_name", TARGETS)
def test_gemv_matches_numpy(target_name: str) -> None:
    target = gpu_targets.tvm_target(gpu_targets.spec(target_name))
    x = te.placeholder((1, 1, 64), name="x")
    w = te.placeholder((8, 64, 16), name="w")
    k = te.reduce_axis((0, 64), name="k")
    y = te.compute((1, 1, 128), lambda b, i, o: te.sum(x[b, i, k] * w[o // 16, k, o % 16], axis=k), name="livc_gemv")
    with target:
        func = schedules.schedule_func(te.create_prim_func([x, w, y]), target)
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((1, 1, 64)).astype(np.float32)
    ws = rng.standard_normal((8, 64, 16)).astype(np.float32)
    out = opencl.run(func, target, {"x": xs, "w": ws, "livc_gemv": np.zeros((1, 1, 128), np.float32)})
    ref = np.einsum("i,bil->bl", xs[0, 0], ws).reshape(-1)
    assert np.abs(out["livc_gemv"].reshape(-1) - ref).max() < 1e-4


def test_kernel_source_is_deduplicated_and_args_by_name() -> None:
    target = gpu_targets.tvm_target(gpu_targets.spec("adreno"))
    funcs = _functions(_source(FAMILIES["gated_short_conv"]), target)
    name, _, gpu = funcs[0]
    exe = tvm.compile(tvm.IRModule({"main": gpu.with_attr("global_symbol", "k")}), target=target)
    src = opencl.source(exe)
    sigs = opencl.signatures(src)
    assert len(sigs) == len(opencl.launches(gpu)) >= 1
    for args in sigs.values():
        buffers = [a for a in args if a.endswith("_ptr")]
        assert buffers == sorted(buffers), f"{name}: OpenCL buffer arguments are alphabetical: {args}"
