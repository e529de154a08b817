"""FfiSession (tvm_ffi + the runtime libraries, no `tvm` import) and the CUDA kernel binaries of gpu/nvcc.py.

- An x86 artifact run by FfiSession in a fresh process that never imports `tvm` gives the logits and the greedy
  tokens of the in-process Session (same library, same stored weights).
- nvcc.register serves a precompiled binary by source hash through TVM's compile callback; an unknown source
  without nvcc is E0702; with nvcc installed, a kernel compiles to a fatbin.
- BuildOptions(cuda_graph=True) on a non-cuda target is E0702.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import test_tvm_attention_conv as attn_models
from tvm_util import ir_model

from livc.backends.tvm import artifact, targets
from livc.backends.tvm.compile import BuildOptions, build
from livc.backends.tvm.errors import TvmError
from livc.backends.tvm.gpu import nvcc
from livc.backends.tvm.runtime import Session

SOURCE = attn_models._source("[GQA(d, heads = 4, kv_heads = 2), GatedShortConv(d)]")
MAX_LEN = 16
PROMPT = [3, 1, 4, 1, 5]
CHILD = """
import json, sys
from pathlib import Path
from livc.backends.tvm.artifact import read
from livc.backends.tvm.ffi_runtime import FfiSession
art = read(Path(sys.argv[1]))
s = FfiSession(art.library, art.plan, art.load_weights(), decodes=art.decodes)
first = s.prefill(PROMPT)[0].tolist()
step = s.decode(7)[0].tolist()
ids = s.generate(PROMPT, 4).tolist()
print(json.dumps({"prefill": first, "decode": step, "ids": ids, "tvm_imported": "tvm" in sys.modules}))
""".replace("PROMPT", repr(PROMPT))


@pytest.fixture(scope="module")
def art_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from livc.cli import main

    work = tmp_path_factory.mktemp("ffi")
    (work / "m.liv").write_text(SOURCE, encoding="utf-8")
    argv = ["build", str(work / "m.liv"), "--target", "x86", "--weights", "q8", "--max-len", str(MAX_LEN)]
    assert main([*argv, "--seed", "3", "-o", str(work / "art")]) == 0
    return work / "art"


def test_ffi_session_matches_session_without_importing_tvm(art_dir: Path) -> None:
    done = subprocess.run([sys.executable, "-c", CHILD, str(art_dir)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["tvm_imported"] is False
    art = artifact.read(art_dir)
    ref = Session(art, packed=art.load_weights())
    want_prefill = ref.prefill(PROMPT)[0]
    want_decode = ref.decode(7)[0]
    assert np.abs(np.asarray(got["prefill"]) - want_prefill).max() < 1e-6 * max(1.0, np.abs(want_prefill).max())
    assert np.abs(np.asarray(got["decode"]) - want_decode).max() < 1e-6 * max(1.0, np.abs(want_decode).max())
    assert got["ids"] == ref.generate(PROMPT, 4).tolist()


def test_ffi_session_rejects_wrong_weights(art_dir: Path) -> None:
    from livc.backends.tvm.ffi_runtime import FfiSession

    art = artifact.read(art_dir)
    arrays = art.load_weights()
    with pytest.raises(TvmError) as err:
        FfiSession(art.library, art.plan, arrays[:-1])
    assert err.value.code == "E0703"
    bad = [a.astype(np.float64) if i == 0 else a for i, a in enumerate(arrays)]
    with pytest.raises(TvmError):
        FfiSession(art.library, art.plan, bad)
    with pytest.raises(TvmError) as err:
        FfiSession(art.library, art.plan, arrays, device="metal")
    assert err.value.code == "E0701"


def test_nvcc_callback_serves_precompiled_binaries(monkeypatch: pytest.MonkeyPatch) -> None:
    import tvm_ffi

    source = 'extern "C" __global__ void k(float* x) { x[threadIdx.x] += 1.0f; }\n'
    nvcc.register({nvcc.source_key(source): b"precompiled-bytes"}, "sm_90")
    callback = tvm_ffi.get_global_func("tvm_callback_cuda_compile")
    assert bytes(callback(source)) == b"precompiled-bytes"
    monkeypatch.setattr(nvcc, "find_nvcc", lambda: None)
    with pytest.raises(TvmError) as err:
        nvcc.compile_fatbin(source + "// another source\n")
    assert err.value.code == "E0702" and "nvcc" in str(err.value)


@pytest.mark.skipif(nvcc.find_nvcc() is None, reason="nvcc not installed (the CUDA toolkit)")
def test_nvcc_compiles_a_kernel_to_a_fatbin() -> None:
    binary = nvcc.compile_fatbin('extern "C" __global__ void k(float* x) { x[threadIdx.x] *= 2.0f; }\n', "sm_90")
    assert int.from_bytes(binary[:4], "little") == 0xBA55ED50  # the fatbin magic
    with pytest.raises(TvmError) as err:
        nvcc.compile_fatbin("this is not CUDA", "sm_90")
    assert err.value.code == "E0702"


def test_cuda_graph_needs_the_cuda_target() -> None:
    with pytest.raises(TvmError) as err:
        build(ir_model(SOURCE), BuildOptions(target=targets.resolve("x86"), max_len=MAX_LEN, cuda_graph=True))
    assert err.value.code == "E0702"


@pytest.mark.skipif(nvcc.find_nvcc() is None, reason="nvcc not installed (the CUDA toolkit)")
def test_cuda_artifact_holds_fatbins_and_needs_a_gpu_to_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`livc build --target cuda` compiles the kernels (cuda/<sha256 of the source>.fatbin); `livc run` of it on
    a machine without an NVIDIA GPU is E0702, not a crash."""
    import torch

    from livc.cli import main

    (tmp_path / "m.liv").write_text(SOURCE, encoding="utf-8")
    out = tmp_path / "cu"
    argv = ["build", str(tmp_path / "m.liv"), "--target", "cuda", "--weights", "f16", "--max-len", str(MAX_LEN)]
    assert main([*argv, "-o", str(out)]) == 0
    binaries = nvcc.read_fatbins(out)
    assert len(binaries) == 1
    ((key, binary),) = binaries.items()
    assert int.from_bytes(binary[:4], "little") == 0xBA55ED50
    assert artifact.read(out).target == "cuda"
    if not torch.cuda.is_available():
        capsys.readouterr()
        assert main(["run", str(out), "--prompt-ids", "1,2", "--max-new-tokens", "3"]) != 0
        assert "E0702" in capsys.readouterr().err
