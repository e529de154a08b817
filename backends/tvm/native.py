"""The native runner: native/runner.cc built for this host or for aarch64, and run on an artifact.

    runtime_libs(arch, cache) -> RuntimeLibs      headers + libtvm_runtime.so/libtvm_ffi.so for `arch`
    build_runner(arch, cache) -> Path             the runner executable (cached by source + version hash)
    build_rpc_server(arch, cache) -> Path         native/rpc_server.cc the same way (rpc_emulated.py runs it)
    bundle(arch, cache, dest) -> Path             the runner + its two libraries, relocatable (rpath $ORIGIN)
    run(runner, artifact, prompt, n, ...) -> RunResult   tokens, prefill/decode timings (+ logits)

For x86 the libraries are the installed wheels' own. For aarch64 they come out of the official aarch64 wheels
(`pip download --platform manylinux_2_28_aarch64 --python-version 3.11 --no-deps apache-tvm==V apache-tvm-ffi==V`,
the versions installed here), unpacked once into the cache; the runner is cross-compiled with
aarch64-linux-gnu-g++ and run under `qemu-aarch64-static -L /usr/aarch64-linux-gnu` (no root filesystem).
The tvm-ffi headers are platform independent, so the host's are used for both.

Preconditions: g++ (x86) or g++-aarch64-linux-gnu + qemu-user-static (aarch64); network or a pip cache for
the first aarch64 download. Errors are TvmError E0702 (a tool or wheel missing: how to install it) or E0703
(the runner failed on the artifact). Non-goal: Android (no NDK or bionic here), timing under emulation.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

import numpy as np

from livc.backends.tvm.errors import ARTIFACT, TARGET, TvmError
from livc.backends.tvm.targets import APT_CROSS

ARCHES = ("x86_64", "aarch64")
CROSS_SYSROOT = "/usr/aarch64-linux-gnu"
WHEEL_PLATFORM = "manylinux_2_28_aarch64"
WHEEL_PYTHON = "3.11"
# wheel file -> (path inside the wheel, library name)
WHEEL_LIBS = {"apache_tvm-": "tvm/lib/libtvm_runtime.so", "apache_tvm_ffi-": "tvm_ffi/lib/libtvm_ffi.so"}


@dataclass(frozen=True)
class RuntimeLibs:
    arch: str
    include: Path  # tvm_ffi/include (also holds dlpack/)
    lib_dirs: tuple[Path, ...]  # where libtvm_runtime.so and libtvm_ffi.so are
    compiler: str


@dataclass(frozen=True)
class RunResult:
    tokens: tuple[int, ...]
    prompt_tokens: int
    prefill_ms: float
    decode_tokens: int
    decode_ms: float
    logits: np.ndarray | None  # float32, vocab values per step (prefill, then each decode), when asked for
    output: str


def versions() -> tuple[str, str]:
    return metadata.version("apache-tvm"), metadata.version("apache-tvm-ffi")


def _site(package: str) -> Path:
    found = metadata.distribution(package).locate_file("")
    return Path(str(found))


def _tool(name: str, fix: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise TvmError(TARGET, f"'{name}' is not installed, so the native runner cannot be built or run; fix: {fix}")
    return path


def runtime_libs(arch: str, cache: Path) -> RuntimeLibs:
    """Headers and runtime libraries for `arch` (aarch64: unpacked from the official wheels into `cache`)."""
    site = _site("apache-tvm-ffi")
    include = site / "tvm_ffi" / "include"
    if arch == "x86_64":
        dirs = (site / "tvm_ffi" / "lib", _site("apache-tvm") / "tvm" / "lib")
        return RuntimeLibs(arch, include, dirs, _tool("g++", "apt-get install -y g++"))
    if arch != "aarch64":
        raise TvmError(TARGET, f"the native runner is built for {' or '.join(ARCHES)}, not {arch}")
    compiler = _tool("aarch64-linux-gnu-g++", APT_CROSS)
    return RuntimeLibs(arch, include, (_aarch64_libs(cache),), compiler)


def _aarch64_libs(cache: Path) -> Path:
    tvm_v, ffi_v = versions()
    libdir = cache / f"aarch64-tvm{tvm_v}-ffi{ffi_v}" / "lib"
    if all((libdir / Path(inner).name).is_file() for inner in WHEEL_LIBS.values()):
        return libdir
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    _download(wheels, (f"apache-tvm=={tvm_v}", f"apache-tvm-ffi=={ffi_v}"))
    libdir.mkdir(parents=True, exist_ok=True)
    for prefix, inner in WHEEL_LIBS.items():
        version = tvm_v if prefix == "apache_tvm-" else ffi_v
        wheel = next(iter(sorted(wheels.glob(f"{prefix}{version}-*{WHEEL_PLATFORM}*.whl"))), None)
        if wheel is None:
            raise TvmError(TARGET, f"no {WHEEL_PLATFORM} wheel of {prefix.rstrip('-')} {version} in {wheels}")
        _extract(wheel, inner, libdir / Path(inner).name)
    return libdir


def _download(dest: Path, requirements: tuple[str, ...]) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps", "--platform", WHEEL_PLATFORM]
    cmd += ["--python-version", WHEEL_PYTHON, "-d", str(dest), *requirements]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise TvmError(
            TARGET,
            f"cannot download the aarch64 TVM runtime wheels ({' '.join(requirements)}): "
            + " | ".join(tail)
            + f"; fix: put them into {dest} by hand",
        )


def _extract(wheel: Path, inner: str, out: Path) -> None:
    tmp = out.with_suffix(".part")
    with zipfile.ZipFile(wheel) as z, z.open(inner) as src, tmp.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    tmp.replace(out)


def runner_source(name: str = "runner.cc") -> str:
    return resources.files("livc.backends.tvm").joinpath("native", name).read_text(encoding="utf-8")


def build_runner(arch: str, cache: Path, rpath: str | None = None) -> Path:
    """The runner for `arch`, compiled once per (source, TVM versions, arch, rpath) into `cache`. Its rpath is
    the runtime libraries' folders, or `rpath` (`$ORIGIN` for a bundle that carries the libraries along)."""
    return _build_program("runner.cc", "livc-runner", arch, cache, rpath)


def build_rpc_server(arch: str, cache: Path) -> Path:
    """native/rpc_server.cc for `arch` (a TVM RPC session on a connected socket fd), cached like the runner."""
    return _build_program("rpc_server.cc", "livc-rpc-server", arch, cache, None)


def _build_program(source_name: str, stem: str, arch: str, cache: Path, rpath: str | None) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    libs = runtime_libs(arch, cache)
    source = runner_source(source_name)
    search = rpath if rpath is not None else ":".join(str(d) for d in libs.lib_dirs)
    key = hashlib.sha256((source + "|".join(versions()) + arch + search).encode()).hexdigest()[:16]
    exe = cache / f"{stem}-{arch}-{key}"
    if exe.is_file():
        return exe
    src = cache / f"{stem}-{key}.cc"
    src.write_text(source, encoding="utf-8")
    cmd = [libs.compiler, "-std=c++17", "-O2", f"-I{libs.include}", str(src), "-o", str(exe) + ".part"]
    cmd += [f"-L{d}" for d in libs.lib_dirs] + ["-Wl,--no-as-needed", "-ltvm_ffi", "-ltvm_runtime"]
    cmd += ["-Wl,-rpath," + search]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise TvmError(TARGET, f"building {stem} for {arch} failed:\n{proc.stderr.strip()[-2000:]}")
    Path(str(exe) + ".part").replace(exe)
    return exe


BUNDLE_LIBS = ("libtvm_runtime.so", "libtvm_ffi.so")


def bundle(arch: str, cache: Path, dest: Path) -> Path:
    """A self-contained runner in `dest` (livc-runner, rpath $ORIGIN, and the two runtime libraries next to it):
    copy the artifact directory to a device and run `runner/livc-runner ARTIFACT --prompt-ids ...` there."""
    exe = build_runner(arch, cache, rpath="$ORIGIN")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(exe, dest / "livc-runner")
    dirs = runtime_libs(arch, cache).lib_dirs
    for name in BUNDLE_LIBS:
        found = next((d / name for d in dirs if (d / name).is_file()), None)
        if found is None:
            raise TvmError(TARGET, f"{name} for {arch} is not in {', '.join(map(str, dirs))}")
        shutil.copy2(found, dest / name)
    return dest / "livc-runner"


def emulator(arch: str) -> tuple[str, ...]:
    """How to run an `arch` executable here: nothing for x86_64, qemu-user for aarch64."""
    if arch == "x86_64":
        return ()
    qemu = _tool("qemu-aarch64-static", "apt-get install -y qemu-user-static")
    return (qemu, "-L", CROSS_SYSROOT)


_TOKENS = re.compile(r"^tokens:(?P<ids>( -?\d+)*)$", re.M)
_PREFILL = re.compile(r"^prefill: (?P<n>\d+) tokens in (?P<ms>[0-9.]+) ms", re.M)
_DECODE = re.compile(r"^decode: (?P<n>\d+) tokens in (?P<ms>[0-9.]+) ms", re.M)


def run(
    runner: Path,
    artifact: Path,
    prompt: tuple[int, ...],
    new_tokens: int,
    arch: str = "x86_64",
    logits: Path | None = None,
    timeout: float = 600.0,
) -> RunResult:
    """Run the runner on `artifact`; E0703 with the runner's message when it fails."""
    cmd = [*emulator(arch), str(runner), str(artifact), "--prompt-ids", ",".join(map(str, prompt))]
    cmd += ["--max-new-tokens", str(new_tokens)] + (["--logits", str(logits)] if logits else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise TvmError(ARTIFACT, f"the native runner failed on {artifact}: {proc.stderr.strip()[-2000:]}")
    return _parse(proc.stdout, logits)


def _parse(out: str, logits: Path | None) -> RunResult:
    tok, pre, dec = _TOKENS.search(out), _PREFILL.search(out), _DECODE.search(out)
    if tok is None or pre is None or dec is None:
        raise TvmError(ARTIFACT, f"unexpected output from the native runner:\n{out[-1000:]}")
    values = np.fromfile(logits, dtype=np.float32) if logits else None
    return RunResult(
        tuple(int(t) for t in tok["ids"].split()),
        int(pre["n"]),
        float(pre["ms"]),
        int(dec["n"]),
        float(dec["ms"]),
        values,
        out,
    )
