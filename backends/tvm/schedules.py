"""Hand CPU schedules, chosen per PrimFunc by pattern: `apply(mod, target) -> mod` (after FuseOps/FuseTIR).

Dispatch (first match wins), by the names of the blocks the kernels of matmul.py create (names survive
FuseOps/FuseTIR, function attributes do not):
- a block "livc_gemv*": GEMV on packed weights: 16 output lanes vectorised, the input axis serial (split by
  the q8/q4 group of 32 so dequant indices are affine), accumulator in registers (cache_write), epilogues
  inlined into the write-back, parallel over blocks of 64 output rows (4 x 16: independent FMA chains).
  q8/q4 (block "livc_gpart"): the loop runs over groups of 32, the partial sums of a group live in registers
  (computed at the group loop), then one scaled FMA per group and lane.
- a block "livc_gemm*": GEMM: 6x16 register tiles (rows unrolled, lanes vectorised) on rows padded to 6,
  accumulator via cache_write + reverse_compute_at, parallel over blocks of 16 output columns.
- a PrimFunc already carrying a parallel/vectorised loop, or the attribute `"livc.scheduled"`: left as it is
  (kernels that schedule themselves, e.g. attention or scans).
- anything else, and every block the two rules leave at the root: `default`: spatial producers inlined, then
  per block the spatial loops fused and run in parallel (when large enough) and a constant innermost spatial
  loop vectorised (x8). Dynamic extents are never vectorised (no predicated vectors), only parallelised.
Every schedule step that TVM refuses is skipped (the function stays correct, just slower).

Preconditions: TIR from Relax LegalizeOps/FuseTIR or emit_te (trivial block bindings). Non-goals: GPU
targets, auto-tuning (tune.py).
"""

from __future__ import annotations

from collections.abc import Callable

import tvm
from tvm import s_tir, tirx
from tvm.s_tir import Schedule

from livc.backends.tvm import weights as W
from livc.backends.tvm.matmul import ROWS

VECTOR = 8  # f32 lanes of one AVX2 / two NEON registers
PARALLEL_MIN = 1 << 15  # spatial points below which a block stays serial (waking a busy second core costs more)
SCHEDULED_ATTR = "livc.scheduled"
TUNED_ATTRS = ("tirx.is_scheduled", "tir.is_scheduled")  # set by MetaScheduleApplyDatabase (tune.py)
GEMV_BLOCKS = 4  # row blocks of 16 accumulated together in the GEMV (independent FMA chains)
GEMV_UNROLL = False
Rule = Callable[[Schedule, s_tir.schedule.SBlockRV], None]


def _try(fn: Callable[[], object]) -> object:
    """fn() or None when TVM refuses the step (ScheduleError and friends)."""
    try:
        return fn()
    except Exception:  # noqa: BLE001 - any refused step leaves a correct, less optimised function
        return None


def _ok(fn: Callable[[], object]) -> bool:
    try:
        fn()
    except Exception:  # noqa: BLE001 - see _try
        return False
    return True


# --------------------------------------------------------------------------------------------- analysis


def _block_names(sch: Schedule) -> list[str]:
    return [sch.get(b).name_hint for b in _root_blocks(sch)]


def _already_scheduled(func: tirx.PrimFunc, sch: Schedule) -> bool:
    """The attribute "livc.scheduled", or any root block under a parallel / vectorised / unrolled loop."""
    if func.attrs is not None and any(k in func.attrs for k in (SCHEDULED_ATTR, *TUNED_ATTRS)):
        return True
    serial = int(tirx.ForKind.SERIAL)
    return any(int(sch.get(lp).kind) != serial for b in _root_blocks(sch) for lp in sch.get_loops(b))


def _const(extent: tirx.Expr) -> int | None:
    return int(extent) if isinstance(extent, tirx.IntImm) else None


def _iter_types(sch: Schedule, block: s_tir.schedule.SBlockRV) -> list[int]:
    return [int(iv.iter_type) for iv in sch.get(block).iter_vars]


def _extent(sch: Schedule, loop: s_tir.schedule.LoopRV) -> tirx.Expr:
    return sch.get(loop).extent


def _root_blocks(sch: Schedule) -> list[s_tir.schedule.SBlockRV]:
    return list(sch.get_child_blocks(sch.get_sblock("root")))


def _find(sch: Schedule, prefix: str) -> s_tir.schedule.SBlockRV | None:
    for block in _root_blocks(sch):
        if sch.get(block).name_hint.startswith(prefix):
            return block
    return None


# --------------------------------------------------------------------------------------------- default


def _inline_spatial(sch: Schedule, keep: tuple[str, ...]) -> None:
    """compute_inline every spatial, non-output block (the fused elementwise chains), except `keep` prefixes."""
    for block in reversed(_root_blocks(sch)):
        name = sch.get(block).name_hint
        if name.startswith(keep) or any(t != 0 for t in _iter_types(sch, block)):
            continue
        _try(lambda b=block: sch.compute_inline(b))


def _default_block(sch: Schedule, block: s_tir.schedule.SBlockRV) -> None:
    loops = sch.get_loops(block)
    types = _iter_types(sch, block)
    if len(loops) != len(types) or not loops:
        return
    spatial = [lp for lp, t in zip(loops, types, strict=True) if t == 0]
    if len(spatial) < len(loops) and types[: len(spatial)] != [0] * len(spatial):
        return  # reduction loops interleaved with spatial ones: leave serial
    if len(spatial) == len(loops):
        spatial = _vectorise_tail(sch, spatial)
    if not spatial:
        return
    size = _static_size(sch, spatial)
    if size is not None and size < PARALLEL_MIN:
        return
    fused = sch.fuse(*spatial) if len(spatial) > 1 else spatial[0]
    sch.parallel(fused)


def _static_size(sch: Schedule, loops: list[s_tir.schedule.LoopRV]) -> int | None:
    """The product of the loop extents, None when one is symbolic."""
    total = 1
    for lp in loops:
        extent = _const(_extent(sch, lp))
        if extent is None:
            return None
        total *= extent
    return total


def _vectorise_tail(sch: Schedule, spatial: list[s_tir.schedule.LoopRV]) -> list[s_tir.schedule.LoopRV]:
    """Vectorise the innermost loop by VECTOR when its extent is a constant multiple; return the outer loops."""
    inner = _const(_extent(sch, spatial[-1]))
    if inner is None or inner % VECTOR:
        return spatial
    if inner == VECTOR:
        sch.vectorize(spatial[-1])
        return spatial[:-1]
    outer, lane = sch.split(spatial[-1], [None, VECTOR])
    sch.vectorize(lane)
    return [*spatial[:-1], outer]


def default(sch: Schedule, keep: tuple[str, ...] = ()) -> None:
    """Inline spatial producers, then parallelise + vectorise every root block (see the module docstring)."""
    _inline_spatial(sch, keep)
    for block in _root_blocks(sch):
        if sch.get(block).name_hint.startswith(keep):
            continue
        _try(lambda b=block: _default_block(sch, b))


# --------------------------------------------------------------------------------------------- matmul


def _inline_epilogues(sch: Schedule, writeback: s_tir.schedule.SBlockRV) -> None:
    """reverse_compute_inline the elementwise consumers of the write-back block into it, one after another."""
    for _ in range(8):
        consumers = sch.get_consumers(writeback)
        if len(consumers) != 1 or not _ok(lambda c=consumers[0]: sch.reverse_compute_inline(c)):
            return


def _split_inputs(sch: Schedule, loop: s_tir.schedule.LoopRV) -> list[s_tir.schedule.LoopRV]:
    """The input axis split by the quantisation group (32 = 2 x 16) when it divides: affine dequant indices."""
    inp = _const(_extent(sch, loop))
    if inp is None or inp % W.GROUP:
        return [loop]
    g, h, j = sch.split(loop, [None, 2, 16])
    sch.unroll(h)
    return [g, h, j]


def _vectorise_init(sch: Schedule, init: s_tir.schedule.SBlockRV) -> None:
    _ok(lambda: sch.vectorize(sch.get_loops(init)[-1]))


def _upstream(sch: Schedule, block: s_tir.schedule.SBlockRV) -> tuple[str, ...]:
    """Names of every block `block` depends on (never inlined into a matmul: they would be recomputed)."""
    seen: list[str] = []
    todo = list(sch.get_producers(block))
    while todo:
        b = todo.pop()
        name = sch.get(b).name_hint
        if name not in seen:
            seen.append(name)
            todo.extend(sch.get_producers(b))
    return tuple(seen)


def _prepare(sch: Schedule, block: s_tir.schedule.SBlockRV, prefix: str) -> tuple[str, ...]:
    """Inline the dequant block into the product and the epilogue chain into one block; return the names kept
    out of inlining (the product and everything upstream of it)."""
    _ok(lambda: sch.compute_inline(sch.get_sblock("livc_dequant")))
    keep = (prefix, *_upstream(sch, block))
    _inline_spatial(sch, keep)
    return keep


def _part(sch: Schedule, part: s_tir.schedule.SBlockRV, g: s_tir.schedule.LoopRV, pair: int) -> None:
    """The q8/q4 per-group partial sums in registers inside the group loop: 32 inputs x (pair x 16) lanes."""
    sch.compute_at(part, g)
    sch.set_scope(part, 0, "local")
    po, pj = sch.get_loops(part)[-2:]  # unit loops dropped: the (pair x 16) output region, then the 32 inputs
    pt, plane = sch.split(po, [pair, W.LANES])
    ph, pjj = sch.split(pj, [2, 16])
    sch.reorder(ph, pjj, pt, plane)
    sch.vectorize(plane)
    sch.unroll(pt)
    sch.unroll(ph)
    _vectorise_init(sch, sch.decompose_reduction(part, ph))


def gemv(sch: Schedule, block: s_tir.schedule.SBlockRV) -> None:
    """y[0, 0, o] = sum_i x[i] * Wd[o // 16, i, o % 16] -> 16 lanes per row block, parallel row blocks.

    q8/q4 ("livc_gpart" present): the group loop replaces the input loop and the partial sums of each group
    are computed in registers at it (see matmul._grouped_gemv)."""
    names = _block_names(sch)
    if "livc_gpart" in names:
        _grouped_gemv(sch, block)
        return
    keep = _prepare(sch, block, "livc_gemv")
    b, t, o, i = sch.get_loops(block)
    out = _const(_extent(sch, o)) or W.LANES
    pair = GEMV_BLOCKS if out % (GEMV_BLOCKS * W.LANES) == 0 else 1
    ob, ot, lane = sch.split(o, [None, pair, W.LANES])
    inputs = _split_inputs(sch, i)
    sch.reorder(b, t, ob, *inputs, ot, lane)
    writeback = sch.cache_write(block, 0, "local")
    _inline_epilogues(sch, writeback)
    sch.reverse_compute_at(writeback, ob)
    sch.vectorize(lane)
    sch.unroll(ot)
    if GEMV_UNROLL:
        sch.unroll(inputs[-1])
    sch.parallel(sch.fuse(b, t, ob))
    _vectorise_init(sch, sch.decompose_reduction(block, inputs[0]))
    wb_loops = sch.get_loops(writeback)
    _try(lambda: sch.vectorize(wb_loops[-1]))
    default(sch, keep)


def _grouped_gemv(sch: Schedule, block: s_tir.schedule.SBlockRV) -> None:
    keep = _prepare(sch, block, "livc_gemv")
    keep = tuple(k for k in keep if k != "livc_gpart")  # computed at the group loop below
    b, t, o, g = sch.get_loops(block)
    out = _const(_extent(sch, o)) or W.LANES
    pair = GEMV_BLOCKS if out % (GEMV_BLOCKS * W.LANES) == 0 else 1
    ob, ot, lane = sch.split(o, [None, pair, W.LANES])
    sch.reorder(b, t, ob, g, ot, lane)
    writeback = sch.cache_write(block, 0, "local")
    _inline_epilogues(sch, writeback)
    sch.reverse_compute_at(writeback, ob)
    sch.vectorize(lane)
    sch.unroll(ot)
    sch.parallel(sch.fuse(b, t, ob))
    _part(sch, sch.get_sblock("livc_gpart"), g, pair)
    _vectorise_init(sch, sch.decompose_reduction(block, g))
    wb_loops = sch.get_loops(writeback)
    _ok(lambda: sch.vectorize(wb_loops[-1]))
    default(sch, keep)


def gemm(sch: Schedule, block: s_tir.schedule.SBlockRV) -> None:
    """6x16 register tiles over rows padded to 6, parallel over blocks of 16 output columns.

    The dequant stays inlined: computing one 16-lane vector per input at the input loop instead (shared by
    the 6 rows) measured no faster (q8 0.40x, q4 0.39x torch f32 at T=512 vs 0.66x / 0.43x inlined)."""
    keep = _prepare(sch, block, "livc_gemm")
    b, t, o, i = sch.get_loops(block)
    to, ti = sch.split(t, [None, ROWS], disable_predication=True)
    ob, lane = sch.split(o, [None, W.LANES])
    inputs = _split_inputs(sch, i)
    sch.reorder(b, ob, to, *inputs, ti, lane)
    writeback = sch.cache_write(block, 0, "local")
    sch.reverse_compute_at(writeback, to)
    sch.unroll(ti)
    sch.vectorize(lane)
    sch.parallel(sch.fuse(b, ob))
    _vectorise_init(sch, sch.decompose_reduction(block, inputs[0]))
    wb = sch.get_loops(writeback)
    _try(lambda: sch.vectorize(wb[-1]))
    default(sch, keep)
    for name in keep[1:]:  # the pad block and the producers of x: parallel + vectorised in place
        _ok(lambda n=name: _default_block(sch, sch.get_sblock(n)))


# --------------------------------------------------------------------------------------------- apply

RULES: dict[str, Rule] = {"livc_gemv": gemv, "livc_gemm": gemm}


def _rule_for(sch: Schedule) -> tuple[Rule, str] | None:
    names = _block_names(sch)
    for prefix, rule in RULES.items():
        match = next((n for n in names if n.startswith(prefix)), None)
        if match is not None:
            return rule, match
    return None


def schedule_func(func: tirx.PrimFunc, strict: bool = False) -> tirx.PrimFunc:
    """One PrimFunc scheduled by the first matching rule (or `default`); unchanged if already scheduled.

    A rule that TVM refuses half-way falls back to `default` (strict=True: the error propagates; tests)."""
    sch = Schedule(func)
    if _already_scheduled(func, sch):
        return func
    found = _rule_for(sch)
    if found is not None:
        rule, block = found
        if strict:
            rule(sch, sch.get_sblock(block))
            return sch.mod["main"]
        if _ok(lambda: rule(sch, sch.get_sblock(block))):
            return sch.mod["main"]
        sch = Schedule(func)  # the rule failed half-way: start again from the default
    default(sch)
    return sch.mod["main"]


def apply(mod: tvm.IRModule, target: tvm.target.Target | None = None) -> tvm.IRModule:
    """A copy of `mod` with every PrimFunc scheduled (the target only selects CPU rules: all are CPUs here)."""
    del target
    out = mod.clone()
    for gv, func in mod.functions_items():
        if isinstance(func, tirx.PrimFunc):
            out.update_func(gv, schedule_func(func))
    return out
