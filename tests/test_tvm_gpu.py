"""GPU targets (gpu/targets.py, gpu/schedules.py): every primitive family and the examples at reduced width
compile for adreno, mali, webgpu and cuda at f32 and f16 weights with a dynamic prefill length, or raise a
coded TvmError naming the kernel; target resolution and errors; the `threaded` rewrite of hand kernels.

The default run compiles one model per target (a few seconds each); the full sweep (every family and example
x 4 targets x 2 formats, ~15 min on 2 busy cores) is marked slow: `pytest -m slow tests/test_tvm_gpu.py`.
Running the kernels: tests/test_tvm_opencl.py (PoCL); CUDA on a GPU: benchmarks/tvm_gpu.py (prepare here, run there).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import test_tvm_attention_conv as attn_models
import test_tvm_scans as scan_models
import tvm
from tvm_util import ir_model

from livc.backends.tvm import targets
from livc.backends.tvm.compile import BuildOptions, build
from livc.backends.tvm.errors import TvmError
from livc.backends.tvm.gpu import schedules
from livc.backends.tvm.gpu import targets as gpu_targets
from livc.backends.tvm.kernels import attention as attn_kernels

ROOT = Path(__file__).resolve().parents[1]
GPU = ("adreno", "mali", "webgpu", "cuda")
FORMATS = ("f32", "f16")
MAX_LEN = 24
EXAMPLES = {  # reduced width: the same architecture with small d / heads / vocab
    "lfm2_350m": dict(vocab=64, d=32, heads=4, kv_heads=2, ff_dim=48),
    "hyena_edge": dict(vocab=64, d=32, heads=4, kv_heads=2, ffn=48),
    "transformer_pp": dict(vocab=64, d=32, n_layers=2, heads=4, kv_heads=2, ffn=48),
    "mamba_hybrid": dict(vocab=64, d=32, heads=4, kv_heads=2, ffn=48, state=4),
    "striped_hyena2": dict(vocab=64, d=32, heads=4, ffn=48, groups=4),
    "star_shared": dict(vocab=64, d=32, heads=4, kv_heads=2, ffn=48),
    "mor_kvshare": dict(vocab=64, d=30, n_layers=5, heads=3, kv_heads=1, ffn=48),  # 2 + 3k layers (middle_cycle)
}
# (model, target) pairs that are coded errors by design, with a fragment of the message
EXPECTED_ERRORS = {("scan:mor_token_choice", "webgpu"): "64-bit"}


def _sources() -> dict[str, tuple[str, dict]]:
    out: dict[str, tuple[str, dict]] = {}
    for name in (*scan_models.MODELS, *scan_models.MOR_MODELS):
        out[f"scan:{name}"] = (scan_models.tiny_source(name), {})
    for name, layers in attn_models.MODELS.items():
        out[f"attn:{name}"] = (attn_models._source(layers), {})
    out["attn:bidirectional"] = (attn_models._source("[Bidir(d)]"), {})
    for name, overrides in EXAMPLES.items():
        out[f"example:{name}"] = ((ROOT / "examples" / f"{name}.liv").read_text(), overrides)
    return out


SOURCES = _sources()


def _build(name: str, target: str, fmt: str) -> None:
    source, overrides = SOURCES[name]
    built = build(
        ir_model(source, **overrides), BuildOptions(target=targets.resolve(target), weights=fmt, max_len=MAX_LEN)
    )
    assert built.executable is not None


def _check(name: str, target: str, fmt: str) -> None:
    expected = EXPECTED_ERRORS.get((name, target))
    if expected is None:
        _build(name, target, fmt)
        return
    with pytest.raises(TvmError) as err:
        _build(name, target, fmt)
    assert err.value.code == "E0701" and expected in err.value.message


QUICK = [
    ("example:lfm2_350m", "adreno", "f32"),
    ("example:lfm2_350m", "mali", "f16"),
    ("example:hyena_edge", "cuda", "f16"),
    ("scan:gla", "webgpu", "f32"),
]


@pytest.mark.parametrize(("name", "target", "fmt"), QUICK)
def test_compiles_quick(name: str, target: str, fmt: str) -> None:
    _check(name, target, fmt)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("target", GPU)
@pytest.mark.parametrize("name", sorted(SOURCES))
def test_compiles_everywhere(name: str, target: str, fmt: str) -> None:
    _check(name, target, fmt)


def test_webgpu_int64_routing_is_a_coded_error() -> None:
    _check("scan:mor_token_choice", "webgpu", "f32")


# --------------------------------------------------------------------------------------------- targets


@pytest.mark.parametrize("name", GPU + ("adreno-linux", "mali-linux"))
def test_gpu_targets_resolve(name: str) -> None:
    probe = targets.Probe(which=lambda exe: f"/usr/bin/{exe}")
    t = targets.resolve(name, probe)
    tt = targets.tvm_target(t)
    assert gpu_targets.is_gpu(tt) and tt.host is not None
    kind = {"adreno": "opencl", "mali": "opencl", "webgpu": "webgpu", "cuda": "cuda"}[name.split("-")[0]]
    assert str(tt.kind.name) == kind
    host = dict(t.llvm)
    assert (
        host["mtriple"]
        == {
            "adreno": "aarch64-linux-android",
            "mali": "aarch64-linux-android",
            "adreno-linux": "aarch64-linux-gnu",
            "mali-linux": "aarch64-linux-gnu",
            "webgpu": "wasm32-unknown-unknown-wasm",
            "cuda": "x86_64-linux-gnu",
        }[name]
    )
    assert (t.library == "model.tar") == (name in ("adreno", "mali", "webgpu"))


def test_vulkan_is_e0702_naming_the_build_flag() -> None:
    with pytest.raises(TvmError) as err:
        targets.resolve("vulkan")
    assert err.value.code == "E0702" and "USE_VULKAN=OFF" in err.value.message


def test_missing_cross_linker_is_e0702() -> None:
    with pytest.raises(TvmError) as err:
        targets.resolve("mali-linux", targets.Probe(which=lambda exe: None))
    assert err.value.code == "E0702" and "aarch64-linux-gnu-g++" in err.value.message


def test_adreno_build_exports_an_archive_with_link_script(tmp_path: Path) -> None:
    source, overrides = SOURCES["attn:gqa"]
    target = targets.resolve("adreno")
    built = build(ir_model(source, **overrides), BuildOptions(target=target, max_len=MAX_LEN))
    path = targets.export(built.executable, target, tmp_path)
    assert path.name == "model.tar" and path.stat().st_size > 0
    assert "aarch64-linux-android" in (tmp_path / "link.sh").read_text()


# --------------------------------------------------------------------------------------------- schedules


def test_threaded_binds_parallel_loops_and_keeps_no_parallel() -> None:
    spec = attn_kernels.AttnSpec(4, 2, 16, 16, 32)
    func = attn_kernels.without_param(attn_kernels.attention_decode(spec), "km")
    out = schedules.threaded(func, 64).script()
    assert 'thread="threadIdx.x"' in out and "T.parallel(" not in out and "T.vectorized(" not in out


def test_kernel_writing_outside_parallel_loops_runs_as_one_work_item() -> None:
    spec = attn_kernels.AttnSpec(4, 2, 16, 16, 32)
    out = schedules.threaded(attn_kernels.kv_store_decode(spec), 64).script()
    assert "T.thread_binding(1, " in out


def test_every_kernel_is_gpu_scheduled() -> None:
    source, overrides = SOURCES["example:lfm2_350m"]
    from livc.backends.tvm.compile import optimize
    from livc.backends.tvm.lower import lower
    from livc.backends.tvm.plan import make_plan

    model = ir_model(source, **overrides)
    target = targets.tvm_target(targets.resolve("adreno"))
    mod = optimize(lower(model, make_plan(model, "f32", MAX_LEN)), target)
    funcs = [(gv.name_hint, f) for gv, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc)]
    unbound = [n for n, f in funcs if "T.thread_binding(" not in f.script()]
    assert funcs and not unbound, unbound
