"""GPU schedules: `apply(mod, target) -> mod` after FuseOps/FuseTIR (compile.optimize calls it for GPU targets).

Per PrimFunc, first match wins:
1. already GPU-scheduled (a thread binding, e.g. from a tuning database): left alone.
2. decode attention (attribute `livc.attn`): kernels/attention_gpu.py's kernel for the same spec (split-K over
   partitions of the cache, then a combine).
2b. any other hand kernel of the CPU backend (attribute `livc.scheduled`, or a parallel / vectorised loop: attention,
   KV / history writes, the scans, the Toeplitz long conv, token_dense): `threaded` rewrites it for the GPU.
   Each outermost parallel loop becomes a thread binding (threadIdx.x when its extent is a constant that fits
   one work group, else blockIdx.x, one work item per group), vectorised loops become serial (each work item
   keeps the CPU kernel's register tiles), and a kernel that writes buffers outside any parallel loop (e.g. the
   decode KV write) runs as one work item. The kernels themselves are unchanged, so their numerics are those
   the CPU tests check.
3. TE kernels whose reductions are all short (causal / gated convolution taps <= SHORT, extent-1 products):
   `serial_reductions` (one work item per output; dlight's Fallback would compute a non-linear epilogue inside
   such a reduction). Otherwise the decode GEMV on packed weights (block "livc_gemv"): `gemv` (16 lanes x 16
   input slices per work group, cross-thread reduction; dlight's GEMV does not recognise the packed layout).
4. everything else (prefill GEMMs, norms, elementwise chains, q8/q4 GEMVs): the target's explicit dlight rule
   list (RULES), each rule tried in order, a rule that raises counts as no match. dlight.gpu.RMSNorm is left
   out (it crashes on 2-D inputs); Fallback ends every list.
A PrimFunc no rule schedules is TvmError E0701 naming the kernel.

Preconditions: TIR from LegalizeOps/FuseTIR, emit_te, or the TVMScript kernels of backends/tvm/kernels and
emit/*.py (they round-trip through TVMScript text, which `threaded` edits line by line).
Non-goals: fast GPU prefill attention / scan kernels (one work item per head or task is correct, not fast);
textures.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import tvm
from tvm import relax, s_tir, tirx
from tvm.s_tir import dlight as dl

from livc.backends.tvm.errors import UNSUPPORTED, TvmError
from livc.backends.tvm.kernels.attention_gpu import attention_decode_gpu, decode_spec

SHORT = 32  # reductions up to this constant extent run serially inside one work item (convolution taps)
REDUCE = 2  # IterVar type CommReduce
WIDE = ("int64", "uint64", "float64")  # buffer dtypes WGSL lacks
THREADS = {"opencl": 64, "webgpu": 64, "cuda": 256}  # work-group size of the `threaded` rewrite
ATTN_THREADS = {"opencl": 64, "webgpu": 64, "cuda": 64}  # decode attention: threads = keys per partition
_FOR_PAR = re.compile(r"^(\s*)for (\w+) in T\.parallel\((.*)\):\s*$")
_STORE = re.compile(r"^\s*\w+\[[^=]*\]\s*=[^=]")
_CONST = re.compile(r"^(?:T\.int(?:32|64)\()?(\d+)\)?$")
_LET = re.compile(r"^\s*(\w+): T\.int(?:32|64) = (.*)$")
_ALLOC = re.compile(r'^(\s*)(\w+) = T\.alloc_local\(\(([^()]*)\)(?:, "(\w+)")?\)\s*$')
_HEADER = re.compile(r"^\s*(T\.func_attr|\w+ = T\.(?:match_buffer|int64|int32)\(|T\.sblock_attr)")


def rules(target: tvm.target.Target) -> tuple[object, ...]:
    """The explicit dlight rule list of a GPU target (Adreno's default pipeline schedules no matmul)."""
    common = (dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.LowBatchGEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction())
    return (*common, dl.gpu.Fallback())


RULES: dict[str, Callable[[tvm.target.Target], tuple[object, ...]]] = {
    "opencl": rules,  # adreno, mali
    "webgpu": rules,
    "cuda": rules,
}


# --------------------------------------------------------------------------------------------- threaded


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _outside_stores(lines: list[str], start: int) -> bool:
    """A buffer store in the body that no parallel loop encloses."""
    inside: int | None = None  # indentation of the enclosing parallel `for`
    for line in lines[start:]:
        if not line.strip():
            continue
        ind = _indent(line)
        if inside is not None and ind <= inside:
            inside = None
        if inside is None and _FOR_PAR.match(line):
            inside = ind
            continue
        if inside is None and _STORE.match(line):
            return True
    return False


def _binding(var: str, extent: str, threads: int) -> str:
    m = _CONST.match(extent.strip())
    thread = "threadIdx.x" if m and int(m.group(1)) <= threads else "blockIdx.x"
    return f'for {var} in T.thread_binding({extent}, thread="{thread}"):'


def _body_start(lines: list[str]) -> int:
    """Index of the first body line (after the def, func_attr, match_buffer and symbolic var lines)."""
    i = next(k for k, line in enumerate(lines) if line.startswith("def ")) + 1
    while i < len(lines) and _HEADER.match(lines[i]):
        i += 1
    return i


def _full_extent(lines: list[str]) -> list[str]:
    """After each local allocation, a loop writing all of it (zeros). CompactBufferAllocation otherwise shrinks
    a buffer written under a dynamic loop bound (attention scores over `pos + 1` keys) to a dynamic size, which
    the OpenCL / WGSL code generators cannot allocate."""
    out: list[str] = []
    for line in lines:
        out.append(line)
        m = _ALLOC.match(line)
        if m is None:
            continue
        pad, name, dims, dtype = m.group(1), m.group(2), [d for d in m.group(3).split(",") if d.strip()], m.group(4)
        idx = ", ".join(f"livc_i{k}" for k in range(len(dims)))
        zero = f'T.Cast("{dtype}", 0)' if dtype and dtype != "float32" else "T.float32(0)"
        out.append(f"{pad}for {idx} in T.grid({', '.join(dims)}):")
        out.append(f"{pad}    {name}[{idx}] = {zero}")
    return out


def _rewrite(lines: list[str], threads: int) -> list[str]:
    start = _body_start(lines)
    out = lines[:start]
    body = [ln.replace("T.vectorized(", "T.serial(") for ln in lines[start:]]
    if _outside_stores(lines, start):
        pad = " " * _indent(body[0])
        out.append(f'{pad}for livc_one in T.thread_binding(1, thread="threadIdx.x"):')
        out += ["    " + ln.replace("T.parallel(", "T.serial(") if ln.strip() else ln for ln in body]
        return out
    inside: int | None = None
    for line in body:
        m = _FOR_PAR.match(line)
        if line.strip() and inside is not None and _indent(line) <= inside:
            inside = None
        if m and inside is None:
            inside = len(m.group(1))
            out.append(m.group(1) + _binding(m.group(2), m.group(3), threads))
        else:
            out.append(line.replace("T.parallel(", "T.serial("))
    return out


def _inline_lets(lines: list[str]) -> list[str]:
    """Integer bindings `name: T.int64 = expr` substituted into the lines of their scope and removed.

    Bound scalars become one-element local buffers on the GPU: int64 ones do not exist in WGSL, and a
    binding used by a launch extent is lost by the host function (MakePackedAPI fails)."""
    out: list[str] = []
    scopes: list[tuple[int, str, str]] = []  # (indentation, name, expr)
    for line in lines:
        if line.strip():
            scopes = [sc for sc in scopes if _indent(line) >= sc[0]]
        for _, name, expr in reversed(scopes):
            line = re.sub(rf"\b{name}\b(?!\s*:\s*T\.)", f"({expr})", line)
        m = _LET.match(line)
        if m:
            scopes.append((_indent(line), m.group(1), m.group(2)))
            continue
        out.append(line)
    return out


def threaded(func: tirx.PrimFunc, threads: int) -> tirx.PrimFunc:
    """The CPU hand kernel `func` with its parallel loops bound to GPU threads (see the module docstring)."""
    lines = _rewrite(_full_extent(_inline_lets(func.script().splitlines())), threads)
    new = tvm.script.from_source("\n".join(lines))
    return new.with_attr("tirx.is_scheduled", True)


def _gpu_scheduled(func: tirx.PrimFunc) -> bool:
    return "T.thread_binding(" in func.script()


def _hand(func: tirx.PrimFunc) -> bool:
    if func.attrs is not None and "livc.scheduled" in func.attrs:
        return True
    text = func.script()
    return "T.parallel(" in text or "T.vectorized(" in text


# --------------------------------------------------------------------------------------------- dlight


def _short_reductions(func: tirx.PrimFunc) -> bool:
    """Every reduction in `func` has a constant extent of at most SHORT (the causal / gated convolutions:
    a few taps). dlight's GEMV / Reduction rules split those over threads (and leave a dynamic local buffer that
    OpenCL cannot allocate); one work item per output with the taps in a serial loop is the right schedule."""
    sch = s_tir.Schedule(func)
    found = False
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        for iv in sch.get(block).iter_vars:
            if int(iv.iter_type) == REDUCE:
                extent = iv.dom.extent
                if not isinstance(extent, tirx.IntImm) or int(extent) > SHORT:
                    return False
                found = True
    return found


def serial_reductions(func: tirx.PrimFunc, threads: int) -> tirx.PrimFunc | None:
    """One work item per output point, reductions serial inside it; every root block its own launch.

    Spatial non-output producers are inlined; consumers of a reduction are NOT inlined into it (dlight's
    Fallback does that for a reduction of extent 1 followed by a non-linear epilogue, e.g. Mamba's dt_proj
    with softplus, and computes softplus of the partial sums: wrong results on the device)."""
    sch = s_tir.Schedule(func)
    for block in reversed(list(sch.get_child_blocks(sch.get_sblock("root")))):
        if all(int(iv.iter_type) != REDUCE for iv in sch.get(block).iter_vars):
            try:
                sch.compute_inline(block)
            except Exception:  # noqa: BLE001, S112 - an output or a non-inlinable block stays
                continue
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        loops = sch.get_loops(block)
        types = [int(iv.iter_type) for iv in sch.get(block).iter_vars]
        if len(loops) != len(types):
            return None
        lead = next((i for i, t in enumerate(types) if t == REDUCE), len(types))
        if any(t != REDUCE for t in types[lead:]) or lead == 0:
            return None
        fused = sch.fuse(*loops[:lead])
        bx, tx = sch.split(fused, [None, threads])
        sch.bind(bx, "blockIdx.x")
        sch.bind(tx, "threadIdx.x")
    return sch.mod["main"]


def gemv(func: tirx.PrimFunc, lanes: int = 16, split: int = 16) -> tirx.PrimFunc | None:
    """The decode GEMV on packed weights [O/16, I, 16] (block "livc_gemv", f32/f16/bf16 storage): one work
    group per 16 outputs; threadIdx.x = the 16 contiguous lanes of a row block, threadIdx.y = `split` slices of
    the input axis reduced across threads; dequant inlined, the epilogue (bias, slice) its own launch.
    None when the function is not that shape (q8/q4 grouped GEMVs: dlight / fallback)."""
    sch = s_tir.Schedule(func)
    names = {sch.get(b).name_hint: b for b in sch.get_child_blocks(sch.get_sblock("root"))}
    if "livc_gemv" not in names or any(n.startswith(("livc_gpart", "livc_gxsum")) for n in names):
        return None
    for name, block in names.items():
        if name != "livc_gemv" and all(int(iv.iter_type) != REDUCE for iv in sch.get(block).iter_vars):
            try:
                sch.compute_inline(block)
            except Exception:  # noqa: BLE001, S112 - outputs / epilogues stay separate blocks
                continue
    block = sch.get_sblock("livc_gemv")
    loops = sch.get_loops(block)
    if len(loops) != 4 or [int(iv.iter_type) for iv in sch.get(block).iter_vars] != [0, 0, 0, REDUCE]:
        return None
    b, t, o, i = loops
    out, inp = sch.get(o).extent, sch.get(i).extent
    if not (isinstance(out, tirx.IntImm) and isinstance(inp, tirx.IntImm)) or int(out) % lanes or int(inp) % split:
        return None
    fused = sch.fuse(b, t, o)
    ob, ol = sch.split(fused, [None, lanes])
    io, ii = sch.split(i, [split, None])
    sch.reorder(ob, ol, io, ii)
    sch.bind(ob, "blockIdx.x")
    sch.bind(ol, "threadIdx.x")
    sch.bind(io, "threadIdx.y")
    for rest in sch.get_child_blocks(sch.get_sblock("root")):
        if sch.get(rest).name_hint == "livc_gemv":
            continue
        loops = sch.get_loops(rest)
        fused = sch.fuse(*loops)
        bx, tx = sch.split(fused, [None, 64])
        sch.bind(bx, "blockIdx.x")
        sch.bind(tx, "threadIdx.x")
    return sch.mod["main"]


class _Gemv:
    def apply(self, func: tirx.PrimFunc, target: tvm.target.Target, _tunable: bool) -> object:
        out = gemv(func)
        return None if out is None else s_tir.Schedule(out)


class _Serial:
    """`serial_reductions` as a dlight-style rule (apply(func, target, tunable) -> schedule or None)."""

    def apply(self, func: tirx.PrimFunc, target: tvm.target.Target, _tunable: bool) -> object:
        out = serial_reductions(func, THREADS.get(str(target.kind.name), 64))
        return None if out is None else s_tir.Schedule(out)


def _own_rules(func: tirx.PrimFunc) -> tuple[object, ...]:
    """The project's rules tried before the dlight list."""
    try:
        short = _short_reductions(func)
    except Exception:  # noqa: BLE001 - not analysable as blocks: leave it to dlight
        short = False
    return (_Serial(),) if short else (_Gemv(),)


def _dlight(func: tirx.PrimFunc, target: tvm.target.Target, name: str) -> tirx.PrimFunc:
    for rule in (*_own_rules(func), *RULES[str(target.kind.name)](target)):
        try:
            sch = rule.apply(func, target, False)
        except Exception:  # noqa: BLE001 - a rule that raises does not match (dlight RMSNorm on 2-D, ...)
            continue
        if sch is None:
            continue
        if isinstance(sch, list):
            sch = sch[0]
        return sch.mod["main"].with_attr("tirx.is_scheduled", True)
    raise TvmError(UNSUPPORTED, f"GPU schedule: no dlight rule schedules kernel '{name}' for {target.kind.name}")


def schedule_func(func: tirx.PrimFunc, target: tvm.target.Target, name: str = "main") -> tirx.PrimFunc:
    """One PrimFunc scheduled for the GPU target (rules 1-4 of the module docstring)."""
    if str(target.kind.name) == "opencl":
        _opencl_intrinsics()
    if _gpu_scheduled(func):
        return func
    spec = decode_spec(func)
    if spec is not None:  # decode attention: its GPU kernel, not the CPU one rebound to threads
        return attention_decode_gpu(spec, ATTN_THREADS.get(str(target.kind.name), 64))
    if _hand(func):
        try:
            return threaded(func, THREADS.get(str(target.kind.name), 64))
        except Exception as exc:  # noqa: BLE001 - TVMScript refused the rewrite: name the kernel
            raise TvmError(UNSUPPORTED, f"GPU schedule: hand kernel '{name}' could not be threaded: {exc}") from exc
    if func.attrs is not None and "tirx.is_scheduled" in func.attrs:
        return func
    return _dlight(func, target, name)


def apply(mod: tvm.IRModule, target: tvm.target.Target) -> tvm.IRModule:
    """Every PrimFunc of `mod` scheduled for the GPU `target` (compile.optimize's hook)."""
    if str(target.kind.name) not in RULES:
        raise TvmError(UNSUPPORTED, f"GPU schedule: no rule list for target kind '{target.kind.name}'")
    with target:
        # ops LegalizeOps leaves for GPU targets (topk of MoE routing): TVM's GPU sort / scan kernels
        mod = tvm.transform.Sequential([relax.backend.DispatchSortScan(), relax.transform.LegalizeOps()])(mod)
        done = {
            gv: schedule_func(func, target, gv.name_hint)
            for gv, func in mod.functions_items()
            if isinstance(func, tirx.PrimFunc)
        }
    for gv, func in done.items():
        mod.update_func(gv, func)
    if str(target.kind.name) == "webgpu":  # WGSL has no 64-bit integers: indices and scalar locals to int32
        mod = _narrow(mod)
    return mod


_REGISTERED: list[str] = []


def _opencl_intrinsics() -> None:
    """OpenCL C spells the float math functions without the `f` suffix (overloads): TVM emits `log1pf`, which
    no OpenCL compiler declares (PoCL: "use of undeclared identifier 'log1pf'"; softplus of Mamba / GLA).
    Registered once, on the first OpenCL build (not at import)."""
    if _REGISTERED:
        return
    for name in ("log1p", "expm1"):

        def lower(op: tirx.Call, fn: str = name) -> tirx.Expr:
            return tirx.call_pure_extern(str(op.ty), fn, *op.args)

        tirx.register_intrin_lowering(f"tirx.{name}", target="opencl", f=lower, level=99)
        _REGISTERED.append(name)


def _narrow(mod: tvm.IRModule) -> tvm.IRModule:
    """Indices narrowed to int32; a kernel with a 64-bit buffer (int64 token-choice routing indices) is E0701."""
    narrow = tirx.transform.ForceNarrowIndexToInt32()
    for gv, func in list(mod.functions_items()):
        if isinstance(func, tirx.PrimFunc):
            wide = [p.name for p in func.params if "BufferType" in str(p.ty) and p.dtype in WIDE]
            if wide:
                raise TvmError(
                    UNSUPPORTED,
                    f"webgpu: kernel '{gv.name_hint}' has 64-bit buffers {wide} (WGSL has no 64-bit integers); "
                    "build this model for cuda / adreno / mali",
                )
            one = narrow(tvm.IRModule({"main": func}))
            mod.update_func(gv, one["main"])
    return mod


def pipeline(target: tvm.target.Target) -> tvm.transform.Pass:
    """The Relax pipeline for tvm.compile after `apply`: TVM's generic GPU dataflow lowering and finalisation
    only. The default pipelines would legalize, fold constants (Adreno's evaluates kernels on the OpenCL
    device, which this host lacks) and re-run dlight; all of that is done already. CUDA finalises with
    RewriteCUDAGraph (a no-op unless the PassContext sets relax.backend.use_cuda_graph)."""
    from tvm.relax.backend import cuda, gpu_generic

    final = cuda.finalize_passes if str(target.kind.name) == "cuda" else gpu_generic.finalize_passes
    passes = [*gpu_generic.dataflow_lower_passes(target), *final(target)]

    @tvm.transform.module_pass(opt_level=0)
    def _pipeline(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        with target:
            return tvm.transform.Sequential(passes)(mod)

    return _pipeline
