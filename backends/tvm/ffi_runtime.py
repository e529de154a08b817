"""FfiSession: run a built TVM library with only apache-tvm-ffi and the TVM runtime libraries (no compiler).

    libs = runtime_libraries(cuda=True)           # libtvm_runtime.so (+ libtvm_runtime_cuda.so), found or given
    s = FfiSession(Path("model.so"), plan, arrays, device="cuda", runtime=libs)
    logits = s.prefill([1, 2, 3])                 # torch (1, vocab) on the device; the cache restarts at 0
    logits = s.decode(7)
    ids = s.generate([1, 2, 3], 5)

For machines that have the built library but not the TVM compiler (a GPU box, a deployment host): the
library is loaded with `tvm_ffi.load_module`, the Relax VM is made by the library's own `vm_load_executable`
/ `vm_initialization` (as the native runner does), and every tensor is a torch tensor passed by DLPack.
torch allocates them, which also guarantees the alignment the compiled kernels assume (an unaligned
numpy buffer passed by DLPack crashes vectorised CPU kernels). The `tvm` Python package is never imported.
A cuda library carries CUDA C source (the PyPI TVM compiler has no CUDA): `cuda_binaries` (source sha256 ->
fatbin, from gpu/nvcc.compile_fatbin where the library was built) serve it, else nvcc compiles it at load.

`runtime_libraries` looks in the explicit `libdir`, else in the installed `tvm`
package's `lib/` (found without importing it). Preconditions: `plan` is the library's plan (`make_plan`
with the build's format and max_len, or an artifact's manifest plan); `arrays` in `plan.weight_inputs` order.
Non-goals: batch > 1, sampling other than greedy.
"""

from __future__ import annotations

import ctypes
import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from livc.backends.tvm.errors import ARTIFACT, UNSUPPORTED, TvmError
from livc.backends.tvm.gpu import nvcc
from livc.backends.tvm.plan import Plan, capacity, checked

DEVICES = {"cpu": 1, "cuda": 2}  # DLPack device types
POOLED = 2  # the VM's pooled allocator
_LOADED: dict[str, ctypes.CDLL] = {}


def runtime_libraries(cuda: bool = False, libdir: Path | None = None) -> tuple[Path, ...]:
    """The runtime shared libraries to load, in order: libtvm_runtime.so, then the CUDA device API if asked."""
    where = libdir if libdir is not None else _tvm_lib_dir()
    names = ["libtvm_runtime.so"] + (["libtvm_runtime_cuda.so"] if cuda else [])
    paths = tuple(where / n for n in names)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise TvmError(ARTIFACT, f"TVM runtime library {missing[0]} not found (give the folder holding it)")
    return paths


def _tvm_lib_dir() -> Path:
    spec = importlib.util.find_spec("tvm")
    if spec is None or not spec.submodule_search_locations:
        raise TvmError(ARTIFACT, "no TVM runtime libraries: install apache-tvm or give their folder")
    return Path(next(iter(spec.submodule_search_locations))) / "lib"


def load_runtime(paths: Sequence[Path]) -> None:
    """dlopen the runtime libraries once per process, globally (the library's symbols resolve against them)."""
    import tvm_ffi  # noqa: F401 - loads libtvm_ffi.so first, which the runtime needs

    for p in paths:
        if str(p) not in _LOADED:
            _LOADED[str(p)] = ctypes.CDLL(str(p), mode=ctypes.RTLD_GLOBAL)


class FfiSession:
    def __init__(
        self,
        library: Path,
        plan: Plan,
        arrays: Sequence[np.ndarray],
        device: str = "cpu",
        runtime: Sequence[Path] | None = None,
        decodes: bool = True,
        cuda_binaries: Mapping[str, bytes] | None = None,
    ) -> None:
        import torch
        import tvm_ffi

        if device not in DEVICES:
            raise TvmError(UNSUPPORTED, f"FfiSession: device {device!r} is not one of {sorted(DEVICES)}")
        load_runtime(runtime if runtime is not None else runtime_libraries(cuda=device == "cuda"))
        if device == "cuda":  # the library holds CUDA source: precompiled binaries by source hash, else nvcc
            major, minor = torch.cuda.get_device_capability()
            nvcc.register(cuda_binaries or {}, f"sm_{major}{minor}")
        self.torch, self.ffi = torch, tvm_ffi
        self.plan, self.decodes, self.device = plan, decodes, device
        self.vm = tvm_ffi.load_module(str(library))["vm_load_executable"]()
        init = [DEVICES[device], 0, POOLED] + ([DEVICES["cpu"], 0, POOLED] if device != "cpu" else [])
        self.vm["vm_initialization"](*init)
        self.weights = [self._tensor(a) for a in checked(plan, arrays)]
        self.capacity = capacity(plan)
        self.cache: list[Any] = []
        self.pos = 0
        self.init_cache()

    def _tensor(self, a: np.ndarray) -> Any:
        t = self.torch.from_numpy(np.require(a, requirements=["C", "W"])).to(self.device, copy=True)
        return self.ffi.from_dlpack(t)

    def init_cache(self) -> None:
        """A fresh zero cache at position 0 (plan.cache order, batch 1)."""
        self.cache = [self._tensor(np.zeros(e.shape, dtype=e.dtype)) for e in self.plan.cache]
        self.pos = 0

    def run(self, name: str, *head: Any) -> Any:
        """One entry function on the current cache; the logits as a torch tensor on the device."""
        out = self.vm[name](*head, *self.cache, *self.weights)
        self.cache = [out[i + 1] for i in range(len(self.cache))]
        return self.torch.from_dlpack(out[0])

    def tokens(self, ids: Sequence[int] | np.ndarray) -> Any:
        t = self.torch.as_tensor(np.asarray(ids, dtype=np.int32).reshape(1, -1)).to(self.device)
        return self.ffi.from_dlpack(t)

    def prefill(self, ids: Sequence[int] | np.ndarray) -> Any:
        """Run the prompt from position 0 on a fresh cache; the logits (1, vocab) of its last position."""
        n = int(np.asarray(ids).size)
        if n < 1:
            raise ValueError("prefill: the prompt must hold at least one token")
        if self.capacity is not None and n > self.capacity:
            raise ValueError(f"prefill of {n} tokens exceeds the cache's max_len = {self.capacity}")
        self.init_cache()
        logits = self.run("prefill", self.tokens(ids))
        self.pos = n
        return logits

    def decode(self, token: int) -> Any:
        """One token at the current position; its logits (1, vocab)."""
        if not self.decodes:
            raise TvmError(UNSUPPORTED, "decode: the model has bidirectional attention and cannot decode")
        if self.capacity is not None and self.pos >= self.capacity:
            raise ValueError(f"decode at position {self.pos} is past the cache's max_len = {self.capacity}")
        logits = self.run("decode_step", self.tokens([token]), self.ffi.Shape((self.pos,)))
        self.pos += 1
        return logits

    def generate(self, ids: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
        """Greedy: the prompt followed by n new tokens, np int64 (1, P + n)."""
        return greedy(self, ids, n)


def greedy(session: Any, ids: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    """Greedy generation with any session whose prefill / decode return logits (1, vocab), numpy or torch
    (this module's FfiSession, runtime.Session): the prompt followed by n new tokens, np int64 (1, P + n)."""
    out = [int(t) for t in np.asarray(ids).reshape(-1)]
    if n < 1:
        return np.asarray([out], dtype=np.int64)
    token = int(session.prefill(out)[0].argmax())
    for _ in range(n - 1):
        out.append(token)
        token = int(session.decode(token)[0].argmax())
    out.append(token)
    return np.asarray([out], dtype=np.int64)
