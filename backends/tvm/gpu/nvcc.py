"""CUDA kernels to machine code with the CUDA toolkit's nvcc, ahead of time or when a library is loaded.

The PyPI TVM compiler is built without CUDA, so a `cuda` library holds its kernels as CUDA C source; the
TVM runtime that loads it asks the global function `tvm_callback_cuda_compile(source) -> bytes` for the
binary (TVM's "cross-compile receiver" path). livc therefore compiles the source ahead of time where nvcc is
installed (`compile_fatbin`, one fatbin per CUDA module, keyed by the source's sha256: `livc build --target
cuda` writes them into the artifact as cuda/<sha256>.fatbin (`write_fatbins`), benchmarks/tvm_gpu.py
`prepare` beside its libraries) and `register(binaries)` installs a callback that
returns the precompiled binary for a known source and runs nvcc for any other (then nvcc must be on the
loading machine). Uses tvm_ffi only (no `tvm` import), so it works on a machine with the runtime alone.
Non-goals: NVRTC, PTX-only libraries, several architectures in one fatbin.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from livc.backends.tvm.errors import TARGET, TvmError

STATS = {"precompiled": 0, "jit": 0}


def find_nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found is None and Path("/usr/local/cuda/bin/nvcc").is_file():
        found = "/usr/local/cuda/bin/nvcc"
    return found


def source_key(code: str | bytes) -> str:
    data = code.encode() if isinstance(code, str) else bytes(code)
    return hashlib.sha256(data).hexdigest()


def compile_fatbin(code: str, arch: str = "sm_90") -> bytes:
    """CUDA C source -> fatbin for `arch` (E0702 when nvcc is missing or rejects the source)."""
    nvcc = find_nvcc()
    if nvcc is None:
        raise TvmError(
            TARGET,
            "compiling CUDA kernels needs nvcc (the CUDA toolkit) on PATH; "
            "fix: install the CUDA toolkit (12 or newer) where the library is built or loaded",
        )
    with tempfile.TemporaryDirectory(prefix="livc-nvcc-") as tmp:
        src, out = Path(tmp) / "kernels.cu", Path(tmp) / "kernels.fatbin"
        src.write_text(code)
        cmd = [nvcc, "--fatbin", "-O3", f"-arch={arch}", "-w", "-o", str(out), str(src)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise TvmError(TARGET, f"nvcc failed on the generated CUDA kernels: {done.stderr.strip()[-800:]}")
        return out.read_bytes()


def cuda_sources(executable_mod: object) -> list[str]:
    """The CUDA C source of every cuda module imported by a built executable (tvm runtime Module)."""

    def walk(m: object) -> list[object]:
        return [m] + [x for i in m.imports for x in walk(i)]  # type: ignore[attr-defined]

    return [m.inspect_source() for m in walk(executable_mod) if m.kind == "cuda"]  # type: ignore[attr-defined]


FATBIN_DIR = "cuda"  # in an artifact: cuda/<sha256 of the source>.fatbin, one per CUDA module


def write_fatbins(executable_mod: object, directory: Path, arch: str = "sm_90") -> list[Path]:
    """Every CUDA module's source compiled to `directory/cuda/<sha256>.fatbin` (E0702 without nvcc)."""
    out = []
    for source in cuda_sources(executable_mod):
        path = directory / FATBIN_DIR / f"{source_key(source)}.fatbin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(compile_fatbin(source, arch))
        out.append(path)
    return out


def read_fatbins(directory: Path) -> dict[str, bytes]:
    """The binaries `write_fatbins` left in an artifact directory, by source hash ({} when there are none)."""
    folder = directory / FATBIN_DIR
    return {p.stem: p.read_bytes() for p in sorted(folder.glob("*.fatbin"))} if folder.is_dir() else {}


def register(binaries: Mapping[str, bytes], arch: str = "sm_90") -> None:
    """Install `tvm_callback_cuda_compile`: the precompiled binary for a known source, else nvcc for `arch`."""
    import tvm_ffi

    table = dict(binaries)

    def compile_cuda(code: str) -> bytes:
        key = source_key(code)
        if key in table:
            STATS["precompiled"] += 1
            return table[key]
        STATS["jit"] += 1
        table[key] = compile_fatbin(str(code), arch)
        return table[key]

    tvm_ffi.register_global_func("tvm_callback_cuda_compile", compile_cuda, override=True)
