"""OpenCL kernels of a compiled TVM module, and running one scheduled PrimFunc's kernels with pyopencl.

    source(executable_or_module) -> str       the OpenCL program: every `opencl` import (walked recursively,
                                              kernels deduplicated by name: the same module is reached twice)
    signatures(src) -> {kernel: (args...)}   argument names in OpenCL order (buffer `x` is `x_ptr`)
    launches(func) -> (Launch, ...)           grid / work-group size of each kernel of a scheduled PrimFunc
    run(func, target, arrays, scalars) -> {buffer: np.ndarray}   build `func` for `target`, run every kernel
                                              in order on the first OpenCL device (PoCL in CI), return the
                                              buffers afterwards

The PyPI TVM has no OpenCL runtime (USE_OPENCL=OFF), so kernels are launched here with pyopencl: arguments by
name (OpenCL orders them alphabetically, not like the PrimFunc), global size = grid x local. Buffers are
passed whole and copied back. Preconditions: `func` has static buffer shapes (specialize symbolic lengths
first: `specialized`), thread-bound loops with extents that are constants or arithmetic of the given scalars.
Non-goals: fp16 kernels (PoCL lacks cl_khr_fp16: they compile, they cannot run here), whole graphs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import tvm
from tvm import tirx

from livc.backends.tvm.errors import TARGET, UNSUPPORTED, TvmError

_KERNEL = re.compile(r"__kernel\s+void\s+(?:__attribute__\(\([^)]*\)\)\s*)?(\w+)\s*\(([^)]*)\)\s*\{", re.S)
_BIND = re.compile(r'^(\s*)for \w+ in T\.thread_binding\((.*), thread="(\w+)\.(\w)"(?:, annotations=.*)?\):\s*$')
_TYPEVAR = re.compile(r'^\s*(\w+) = (?:TypeVar\("\w+"\)|T\.int(?:32|64)\(\))\s*$', re.M)
_ALLOC = re.compile(r"^\s*(\w+) = T\.(?:sblock_)?alloc_buffer\(\(", re.M)


@dataclass(frozen=True)
class Launch:
    grid: tuple[str, str, str]  # extents (TVMScript expressions) of blockIdx.x/y/z
    local: tuple[str, str, str]  # threadIdx.x/y/z


def _walk(mod: Any) -> list[Any]:
    out = [mod]
    for sub in mod.imports:
        out += _walk(sub)
    return out


def source(built: Any) -> str:
    """The OpenCL program of an Executable / runtime Module, each kernel once."""
    mod = getattr(built, "mod", built)
    seen: dict[str, str] = {}
    for m in _walk(mod):
        if m.kind != "opencl":
            continue
        for name, text in _split(m.inspect_source()):
            seen.setdefault(name, text)
    if not seen:
        raise TvmError(TARGET, "no OpenCL module in this executable (was it built for adreno / mali?)")
    return "\n".join(seen.values())


def _split(src: str) -> list[tuple[str, str]]:
    """(kernel name, its definition) for every kernel of one OpenCL source (prototypes dropped)."""
    out = []
    for m in _KERNEL.finditer(src):
        depth, i = 1, m.end()
        while depth and i < len(src):
            depth += {"{": 1, "}": -1}.get(src[i], 0)
            i += 1
        out.append((m.group(1), src[m.start() : i]))
    return out


def signatures(src: str) -> dict[str, tuple[str, ...]]:
    """Kernel name -> argument names in OpenCL order."""
    return {m.group(1): tuple(a.split()[-1] for a in m.group(2).split(",") if a.strip()) for m in _KERNEL.finditer(src)}


def launches(func: tirx.PrimFunc) -> tuple[Launch, ...]:
    """One Launch per kernel, in order: a kernel is a maximal nest of thread-bound loops."""
    kernels: list[dict[str, str]] = []
    root: int | None = None
    for line in func.script().splitlines():
        m = _BIND.match(line)
        if m is None:
            if root is not None and line.strip() and len(line) - len(line.lstrip()) <= root:
                root = None  # left the kernel's outermost binding
            continue
        ind = len(m.group(1))
        if root is None or ind <= root:
            if root is None or ind < root or f"{m.group(3)}.{m.group(4)}" in kernels[-1]:
                kernels.append({})
            root = ind if root is None else min(root, ind)
        kernels[-1].setdefault(f"{m.group(3)}.{m.group(4)}", m.group(2))
    return tuple(
        Launch(
            tuple(k.get(f"blockIdx.{a}", "1") for a in "xyz"),  # type: ignore[arg-type]
            tuple(k.get(f"threadIdx.{a}", "1") for a in "xyz"),  # type: ignore[arg-type]
        )
        for k in kernels
    )


class _T:
    """Enough of TVMScript's `T` to evaluate integer launch extents."""

    int32 = int64 = staticmethod(int)
    min = staticmethod(min)
    max = staticmethod(max)
    bool = staticmethod(bool)
    floordiv = staticmethod(lambda a, b: a // b)
    floormod = staticmethod(lambda a, b: a % b)
    if_then_else = staticmethod(lambda c, a, b: a if c else b)

    @staticmethod
    def Cast(_dtype: str, v: int) -> int:  # noqa: N802 - TVMScript's name
        return int(v)


def _value(expr: str, scalars: Mapping[str, int]) -> int:
    try:
        return int(eval(expr, {"__builtins__": {}, "T": _T}, dict(scalars)))  # noqa: S307 - our own TIR text
    except Exception as exc:  # noqa: BLE001
        raise TvmError(UNSUPPORTED, f"opencl.run: launch extent {expr!r} not computable from {dict(scalars)}") from exc


def symbols(func: tirx.PrimFunc) -> tuple[str, ...]:
    """Names of the symbolic shape variables of `func` (as TVMScript prints them)."""
    return tuple(dict.fromkeys(m.group(1) for m in _TYPEVAR.finditer(func.script())))


def specialized(func: tirx.PrimFunc, sizes: Mapping[str, int]) -> tirx.PrimFunc:
    """`func` with its symbolic shape variables (TypeVar names in TVMScript) replaced by constants."""
    lines = []
    for line in func.script().splitlines():
        m = _TYPEVAR.match(line)
        if m and m.group(1) in sizes:
            continue
        for name, value in sizes.items():
            line = re.sub(rf"\b{name}\b", f"T.int64({value})", line)
        lines.append(line)
    return tvm.script.from_source("\n".join(lines))


def _context() -> tuple[Any, Any]:
    try:
        import pyopencl as cl
    except ImportError as exc:
        raise TvmError(TARGET, "pyopencl is not installed (pip install pyopencl; PoCL: pocl-opencl-icd)") from exc
    try:
        ctx = cl.Context(devices=[cl.get_platforms()[0].get_devices()[0]])
    except Exception as exc:  # noqa: BLE001 - no ICD / no platform
        raise TvmError(TARGET, f"no OpenCL device ({exc}); apt-get install -y pocl-opencl-icd") from exc
    return cl, ctx


def run(
    func: tirx.PrimFunc,
    target: tvm.target.Target,
    arrays: Mapping[str, np.ndarray],
    scalars: Mapping[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """Build the scheduled `func` for the OpenCL `target`, run its kernels in order, return the buffers."""
    scalars = dict(scalars or {})
    exe = tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "livc_k")}), target=target)
    src = source(exe)
    sigs = signatures(src)
    plan = launches(func)
    if len(sigs) != len(plan):
        raise TvmError(UNSUPPORTED, f"opencl.run: {len(sigs)} kernels in the source, {len(plan)} launches in the TIR")
    cl, ctx = _context()
    queue = cl.CommandQueue(ctx)
    program = cl.Program(ctx, src).build()
    host = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    flags = cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR
    dev = {_c_name(k): cl.Buffer(ctx, flags, hostbuf=v) for k, v in host.items()}
    for name, nbytes in _scratch(func, scalars).items():  # global intermediates (the host allocates them)
        dev.setdefault(name, cl.Buffer(ctx, cl.mem_flags.READ_WRITE, size=max(nbytes, 4)))
    for (name, args), launch in zip(sigs.items(), plan, strict=True):
        kernel = getattr(program, name)
        for i, arg in enumerate(args):
            base = arg[: -len("_ptr")] if arg.endswith("_ptr") else arg
            if base in dev:
                kernel.set_arg(i, dev[base])
            elif base in scalars:
                kernel.set_arg(i, np.int64(scalars[base]) if _is_long(src, name, arg) else np.int32(scalars[base]))
            else:
                raise TvmError(UNSUPPORTED, f"opencl.run: kernel {name} argument {arg} has no array or scalar")
        local = tuple(_value(e, scalars) for e in launch.local)
        grid = tuple(_value(e, scalars) for e in launch.grid)
        cl.enqueue_nd_range_kernel(queue, kernel, tuple(g * n for g, n in zip(grid, local, strict=True)), local)
    for k, v in host.items():
        cl.enqueue_copy(queue, v, dev[_c_name(k)])
    queue.finish()
    return host


def _balanced(text: str, i: int) -> int:
    """Index just past the parenthesis closing the one opened before text[i]."""
    depth = 1
    while depth:
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        i += 1
    return i


def _dims(shape: str) -> list[str]:
    """Top-level comma-separated parts of a TVMScript shape tuple body."""
    parts, depth, cur = [], 0, ""
    for ch in shape:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [p for p in (*parts, cur) if p.strip()]


def _scratch(func: tirx.PrimFunc, scalars: Mapping[str, int]) -> dict[str, int]:
    """Global buffers allocated inside `func` -> bytes."""
    text = func.script()
    out = {}
    for m in _ALLOC.finditer(text):
        close = _balanced(text, m.end())
        rest = text[close : text.index("\n", close)]
        if "scope=" in rest and 'scope="global"' not in rest:
            continue
        dtype = re.match(r'\s*, "(\w+)"', rest)
        size = 1
        for dim in _dims(text[m.end() : close - 1]):
            size *= _value(dim, scalars)
        out[_c_name(m.group(1))] = size * np.dtype(dtype.group(1) if dtype else "float32").itemsize
    return out


def _c_name(name: str) -> str:
    """A buffer name as the code generator spells it (`layers.0.0.conv` -> `layers_0_0_conv`)."""
    return re.sub(r"\W", "_", name)


def _is_long(src: str, kernel: str, arg: str) -> bool:
    m = next(m for m in _KERNEL.finditer(src) if m.group(1) == kernel)
    decl = next(a for a in m.group(2).split(",") if a.split()[-1] == arg)
    return "long" in decl.split()
