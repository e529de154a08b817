"""Deployment targets of the TVM backend: `x86` (this host), `arm64-linux`, `arm64-android`.

    resolve(name, probe=Probe.here()) -> Target   (TvmError E0702 when it cannot be served here, saying why/how)
    tvm_target(target) -> tvm.target.Target       (the dict form wrapped in Target: FEASIBILITY gotcha 2)
    export(executable, target, out_dir) -> Path   (the library, or for Android the object archive + link.sh)

A `Target` is plain data (frozen); the TVM target is made only when asked, so this module imports without
TVM. `Probe` holds what was found on the machine (compilers on PATH, /proc/cpuinfo, the LLVM host CPU) and is
passed in explicitly, so tests can describe any machine.

Preconditions: `export` needs the compiler the target names (host `g++`, `aarch64-linux-gnu-g++`).
GPU targets (adreno, mali, webgpu, cuda) are specified in gpu/targets.py (a Target with `device` set; `llvm`
is then its host). Non-goals: Vulkan (E0702: the PyPI TVM has no Vulkan codegen), linking for Android (no NDK
here: the exact command is written next to the archive).
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livc.backends.tvm.errors import TARGET, TvmError

ANDROID_API = 28  # the NDK clang wrapper's API level in the link command (Android 9, NEON + dotprod phones)
APT_CROSS = "apt-get install -y g++-aarch64-linux-gnu"


@dataclass(frozen=True)
class Target:
    """One deployment target: the LLVM target attributes and how the library is produced.

    `library` is the file written into the artifact; `linker` the C++ driver used to link it (None: an
    object archive that is linked elsewhere); `runs_here` whether this host can load it (x86; arm64-linux
    runs here only through the native runner under qemu, see native.py).
    """

    name: str
    llvm: tuple[tuple[str, Any], ...]  # the target dict as sorted pairs (frozen)
    library: str
    linker: str | None
    runs_here: bool
    link_command: str | None = None  # for archives: the command that links them on a machine with a toolchain
    device: tuple[tuple[str, Any], ...] | None = None  # GPU targets (gpu/targets.py): the device; llvm = its host

    @property
    def llvm_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.llvm}

    def describe(self) -> str:
        attrs = ", ".join(f"{k}={v}" for k, v in self.llvm_dict.items() if k != "kind")
        return f"{self.name} (llvm {attrs})"


@dataclass(frozen=True)
class Probe:
    """What this machine offers: executables by name, the CPU flags and the LLVM host CPU name."""

    which: Callable[[str], str | None] = shutil.which
    cpu_flags: frozenset[str] = field(default_factory=frozenset)
    host_cpu: str | None = None
    cores: int = 1

    @classmethod
    def here(cls) -> Probe:
        return cls(shutil.which, _cpuinfo_flags(Path("/proc/cpuinfo")), _llvm_host_cpu(), os.cpu_count() or 1)


def _cpuinfo_flags(path: Path) -> frozenset[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def _llvm_host_cpu() -> str | None:
    try:
        from tvm.target import codegen
    except ImportError:
        return None
    cpu = str(codegen.llvm_get_system_cpu())
    return cpu if cpu and cpu != "generic" and codegen.llvm_is_valid_cpu(cpu, "x86_64-linux-gnu") else None


def _x86(probe: Probe) -> Target:
    llvm: dict[str, Any] = {"kind": "llvm", "mtriple": "x86_64-linux-gnu", "num-cores": probe.cores}
    if probe.host_cpu:
        llvm["mcpu"] = probe.host_cpu
    masked = host_feature_mask(probe.cpu_flags)
    if probe.host_cpu and masked:
        llvm["mattr"] = masked
    return Target("x86", _frozen(llvm), "model.so", _need(probe, "g++", "apt-get install -y g++"), True)


def host_feature_mask(flags: frozenset[str]) -> tuple[str, ...]:
    """LLVM `-feature`s for vector extensions the CPU model implies but the kernel does not expose (a VM may
    hide AVX-512 from a CPU whose model has it): code for the host CPU model would then die of SIGILL."""
    if not flags:
        return ()
    checks = (("avx512f", "-avx512f"), ("avx2", "-avx2"), ("fma", "-fma"), ("f16c", "-f16c"))
    return tuple(attr for flag, attr in checks if flag not in flags)


def _arm64_linux(probe: Probe) -> Target:
    llvm = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}
    linker = _need(probe, "aarch64-linux-gnu-g++", APT_CROSS)
    return Target("arm64-linux", _frozen(llvm), "model.so", linker, False)


def _arm64_android(probe: Probe) -> Target:
    llvm = {
        "kind": "llvm",
        "mtriple": "aarch64-linux-android",
        "mcpu": "cortex-a76",
        "mattr": ["+neon", "+dotprod", "+fullfp16"],
    }
    return Target("arm64-android", _frozen(llvm), "model.tar", None, False, android_link_command())


def android_link_command(archive: str = "model.tar", out: str = "model.so") -> str:
    """The shell lines that turn the object archive into a shared library with the Android NDK."""
    clang = f'"$ANDROID_NDK"/toolchains/llvm/prebuilt/linux-x86_64/bin/aarch64-linux-android{ANDROID_API}-clang++'
    a, o = shlex.quote(archive), shlex.quote(out)
    return f"mkdir -p objs && tar -xf {a} -C objs && {clang} -shared -fPIC -static-libstdc++ -o {o} objs/*.o -lm"


def _frozen(d: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items()))


def _need(probe: Probe, exe: str, fix: str) -> str:
    path = probe.which(exe)
    if path is None:
        raise TvmError(TARGET, f"the linker '{exe}' is not installed, so this target cannot be built; fix: {fix}")
    return path


_GPU_NAMES = ("adreno", "mali", "adreno-linux", "mali-linux", "webgpu", "cuda")  # gpu/targets.py SPECS


def _gpu(name: str, probe: Probe) -> Target:
    from livc.backends.tvm.gpu import targets as gpu_targets

    return gpu_targets.target(name, probe)


TARGETS: dict[str, Callable[[Probe], Target]] = {
    "x86": _x86,
    "arm64-linux": _arm64_linux,
    "arm64-android": _arm64_android,
    **{name: (lambda probe, n=name: _gpu(n, probe)) for name in _GPU_NAMES},
}
# Known names that cannot be served, with the reason (anything else is an unknown target).
UNSERVED = {
    "vulkan": "not in this TVM build (USE_VULKAN=OFF: target.build.vulkan is not registered)",
    "opencl": "name the GPU: adreno or mali (OpenCL kernels inside an Android host library; -linux for aarch64 Linux)",
}


def resolve(name: str, probe: Probe | None = None) -> Target:
    """The target `name` as this machine can serve it; TvmError E0702 saying why not and how to fix it."""
    if name in UNSERVED:
        raise TvmError(TARGET, f"target '{name}' is not available: {UNSERVED[name]}; use one of {_names()}")
    if name not in TARGETS:
        raise TvmError(TARGET, f"unknown target '{name}'; known targets: {_names()}")
    return TARGETS[name](probe if probe is not None else Probe.here())


def _names() -> str:
    return ", ".join(TARGETS)


def tvm_target(target: Target) -> Any:
    """The `tvm.target.Target` (never a raw dict: relax.build crashes on one)."""
    import tvm

    if target.device is not None:
        return tvm.target.Target(dict(target.device), host=target.llvm_dict)
    return tvm.target.Target(target.llvm_dict)


def export(executable: Any, target: Target, out_dir: Path) -> Path:
    """Write the compiled library into `out_dir` (a .so, or for Android a .tar of objects + link.sh)."""
    path = out_dir / target.library
    if target.linker is None:
        executable.export_library(str(path))
        (out_dir / "link.sh").write_text(_link_script(target), encoding="utf-8")
        return path
    from tvm.support import cc

    executable.export_library(str(path), fcompile=cc.cross_compiler(target.linker))
    return path


def _link_script(target: Target) -> str:
    return (
        "#!/bin/sh\n"
        f"# Link {target.library} for {target.name} on a machine with its toolchain (Android: set ANDROID_NDK).\n"
        "set -eu\n"
        'cd "$(dirname "$0")"\n'
        f"{target.link_command}\n"
    )
