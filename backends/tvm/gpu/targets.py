"""GPU deployment targets: `adreno`, `mali` (OpenCL, Android host), `adreno-linux`, `mali-linux` (OpenCL,
aarch64 Linux host), `webgpu` (WGSL, wasm32 host) and `cuda` (x86-64 Linux host).

    spec(name) -> GpuSpec                 plain data: the device target dict and the LLVM host dict
    target(name, probe) -> targets.Target  the deployment target (backends/tvm/targets.py serves it)
    tvm_target(spec) -> tvm.target.Target  device target with its host (never a raw dict)

Preconditions: none (TVM is imported only by tvm_target). An aarch64-linux host needs aarch64-linux-gnu-g++ to
link; Android and WebGPU hosts write an object archive and the link command (no NDK / emscripten here).
Non-goals: Vulkan (`vulkan` is E0702: the PyPI TVM is built with USE_VULKAN=OFF), Metal, ROCm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from livc.backends.tvm.errors import TARGET, TvmError

if TYPE_CHECKING:
    from livc.backends.tvm import targets as cpu_targets

ANDROID_HOST = {
    "kind": "llvm",
    "mtriple": "aarch64-linux-android",
    "mcpu": "cortex-a76",
    "mattr": ["+neon", "+dotprod", "+fullfp16"],
}
LINUX_HOST = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}
WASM_HOST = {"kind": "llvm", "mtriple": "wasm32-unknown-unknown-wasm"}
X86_HOST = {"kind": "llvm", "mtriple": "x86_64-linux-gnu"}
WEBGPU_LINK = "emcc -O3 -s SIDE_MODULE=1 -o model.wasm objs/*.o  # then load with tvmjs (TVM's web runtime)"
VULKAN = "the PyPI TVM build has no Vulkan codegen (USE_VULKAN=OFF: target.build.vulkan is not registered)"


@dataclass(frozen=True)
class GpuSpec:
    """One GPU target: the device target dict, its host, and how the host library is produced.

    `host_os`: "android" (object archive + NDK link command), "linux" (linked with `linker`), "wasm" (object
    archive + emcc command), "x86" (linked with g++ here)."""

    name: str
    device: tuple[tuple[str, Any], ...]
    host: tuple[tuple[str, Any], ...]
    host_os: str
    max_threads: int  # threads per work group the schedules use

    @property
    def device_dict(self) -> dict[str, Any]:
        return _thawed(self.device)

    @property
    def host_dict(self) -> dict[str, Any]:
        return _thawed(self.host)


def _frozen(d: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items()))


def _thawed(pairs: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in pairs}


def _opencl(device: str, host: dict[str, Any], host_os: str, name: str) -> GpuSpec:
    return GpuSpec(name, _frozen({"kind": "opencl", "device": device}), _frozen(host), host_os, 64)


SPECS: dict[str, GpuSpec] = {
    "adreno": _opencl("adreno", ANDROID_HOST, "android", "adreno"),
    "mali": _opencl("mali", ANDROID_HOST, "android", "mali"),
    "adreno-linux": _opencl("adreno", LINUX_HOST, "linux", "adreno-linux"),
    "mali-linux": _opencl("mali", LINUX_HOST, "linux", "mali-linux"),
    "webgpu": GpuSpec("webgpu", _frozen({"kind": "webgpu"}), _frozen(WASM_HOST), "wasm", 64),
    "cuda": GpuSpec("cuda", _frozen({"kind": "cuda", "arch": "sm_90"}), _frozen(X86_HOST), "x86", 256),
}
NAMES = tuple(SPECS)


def spec(name: str) -> GpuSpec:
    if name == "vulkan":
        raise TvmError(TARGET, f"target 'vulkan' is not available: {VULKAN}; use one of {', '.join(NAMES)}")
    if name not in SPECS:
        raise TvmError(TARGET, f"unknown GPU target '{name}'; known: {', '.join(NAMES)}")
    return SPECS[name]


def tvm_target(s: GpuSpec) -> Any:
    import tvm

    return tvm.target.Target(s.device_dict, host=s.host_dict)


def is_gpu(target: Any) -> bool:
    """A tvm.target.Target whose kind is a GPU (anything but llvm / c)."""
    return str(target.kind.name) not in ("llvm", "c")


def target(name: str, probe: cpu_targets.Probe) -> cpu_targets.Target:
    """The deployment target `name` (backends/tvm/targets.Target with `device` set)."""
    from livc.backends.tvm import targets as cpu_targets

    s = spec(name)
    if s.host_os == "android":
        link = cpu_targets.android_link_command()
        return cpu_targets.Target(name, s.host, "model.tar", None, False, link, s.device)
    if s.host_os == "wasm":
        link = f"mkdir -p objs && tar -xf model.tar -C objs && {WEBGPU_LINK}"
        return cpu_targets.Target(name, s.host, "model.tar", None, False, link, s.device)
    linker = "g++" if s.host_os == "x86" else "aarch64-linux-gnu-g++"
    fix = "apt-get install -y g++" if s.host_os == "x86" else cpu_targets.APT_CROSS
    path = probe.which(linker)
    if path is None:
        raise TvmError(TARGET, f"the linker '{linker}' is not installed, so '{name}' cannot be built; fix: {fix}")
    return cpu_targets.Target(name, s.host, "model.so", path, False, None, s.device)
