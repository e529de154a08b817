"""Emitter of softmax `attention`: the KV cache written in place, then the hand attention kernel.

Mirrors emit_ops.attention + helpers/attention.py: q [1, T, H, dk]; K/V arrive un-repeated [1, T, KV, d] (GQA
reads head h // (H / KV)); the cache entries `<stem>.k` / `<stem>.v` are [1, KV, S, d] with S = max_len or
min(window, max_len) (a ring when S == window). Prefill writes the prompt (positions 0..T-1, a ring keeps the
last S) and attends over q/k/v themselves (K transposed once); decode writes `pos` and attends over the cache.
A block that reads another layer's cache (`cache_owner`, torch `kv_owner`) writes nothing and reads the
owner's entries, which the owner has already updated in this step. `features["key_mask"]` (Mixture-of-
Recursions: bool or f32 > 0.5, [1, T] in prefill, the valid row [1, max_len] in decode) restricts the keys.

Preconditions: EmitCtx of context.py; the cache plan holds the entries (plan.cache_entries).
Non-goals: batch > 1, K/V of another dtype than f32.
"""

from __future__ import annotations

from tvm import relax

from livc.backends.tvm.context import EmitCtx
from livc.backends.tvm.errors import unsupported
from livc.backends.tvm.kernels import attention as kernels
from livc.compiler.ir.nodes import Op


def _dims(op: Op, ctx: EmitCtx) -> tuple[int, int, int, int]:
    """(heads, kv_heads, dk, dv) of the op; K/V heads counted before any repeat_heads."""
    heads, dk = ctx.type(op.inputs[0]).shape
    kv_heads, dk_k = ctx.kv_type(op.inputs[1]).shape
    kv_heads_v, dv = ctx.kv_type(op.inputs[2]).shape
    if dk != dk_k or kv_heads != kv_heads_v or heads % kv_heads:
        raise unsupported(f"{ctx.prefix}: attention", f"q {heads}x{dk}, k {kv_heads}x{dk_k}, v {kv_heads_v}x{dv}")
    return heads, kv_heads, dk, dv


def _slots(ctx: EmitCtx, stem: str) -> int:
    return int(ctx.cache_in(stem + ".k").ty.shape.values[2])


def _key_mask(ctx: EmitCtx) -> tuple[relax.Expr | None, str | None]:
    mask = ctx.features.get("key_mask")
    if mask is None:
        return None, None
    dtype = str(mask.ty.dtype)
    if dtype not in ("bool", "float32"):
        raise unsupported(f"{ctx.prefix}: attention", f"key_mask of dtype {dtype} (bool or float32 expected)")
    return mask, dtype


def spec_of(op: Op, ctx: EmitCtx, stem: str) -> kernels.AttnSpec:
    heads, kv_heads, dk, dv = _dims(op, ctx)
    window, softcap = op.attr("window"), op.attr("softcap")
    return kernels.AttnSpec(
        heads=heads,
        kv_heads=kv_heads,
        dk=dk,
        dv=dv,
        slots=_slots(ctx, stem),
        causal=op.attr("mask") != "bidirectional",
        window=int(window) if window is not None else None,  # type: ignore[arg-type]
        softcap=float(softcap) if softcap is not None else None,  # type: ignore[arg-type]
        key_mask=_key_mask(ctx)[1],
    )


def _store(ctx: EmitCtx, spec: kernels.AttnSpec, stem: str, k: relax.Expr, v: relax.Expr) -> None:
    """The cache write, in place (call_tir_inplace on an opaque kernel): the outputs alias the input buffers."""
    ck, cv = ctx.cache_in(stem + ".k"), ctx.cache_in(stem + ".v")
    if ctx.mode == "prefill":
        func, args = kernels.kv_store_prefill(spec), [ck, cv, k, v]
    else:
        func, args = kernels.kv_store_decode(spec), [ck, cv, k, v, relax.prim_value(ctx.pos)]
    gv = ctx.bb.add_func(func, "kv_store_" + ctx.mode)
    out = ctx.bb.emit(relax.call_tir_inplace(gv, args, [0, 1], [ck.ty, cv.ty]))
    ctx.cache_out(stem + ".k", ctx.bb.emit(relax.TupleGetItem(out, 0)))
    ctx.cache_out(stem + ".v", ctx.bb.emit(relax.TupleGetItem(out, 1)))


def _writes(op: Op, ctx: EmitCtx) -> bool:
    """An attention that reads another layer's cache (`cache_owner`) writes nothing; every other one writes its
    own entry (per attention, like the torch backend's fixed write flags)."""
    if op.attr("cache_owner") and op.outputs[0].name not in ctx.kv_owner:
        raise unsupported(f"{ctx.prefix}: attention", f"shares the cache of {op.attr('cache_owner')} but has no owner")
    return not op.attr("cache_owner")


def attention(op: Op, ctx: EmitCtx) -> None:
    name = op.outputs[0].name
    stem = ctx.kv_key(name)
    spec = spec_of(op, ctx, stem)
    q, k, v = ctx.value(op.inputs[0]), ctx.kv(op.inputs[1]), ctx.kv(op.inputs[2])
    if _writes(op, ctx):
        _store(ctx, spec, stem, k, v)
    mask = [m for m in (_key_mask(ctx)[0],) if m is not None]
    out_ty = relax.TensorType((1, ctx.seq, spec.heads, spec.dv), "float32")
    if ctx.mode == "prefill":
        gv = ctx.bb.add_func(kernels.attention_prefill(spec), "attention_prefill")
        kt = ctx.bb.emit(relax.op.permute_dims(k, [0, 2, 3, 1]))  # [1, KV, dk, T]: scores vectorise over keys
        args = [q, kt, v, *mask]
    else:
        gv = ctx.bb.add_func(kernels.attention_decode(spec), "attention_decode")
        ck, cv = ctx.cache_in(stem + ".k"), ctx.cache_in(stem + ".v")
        args = [q, ck, cv, relax.prim_value(ctx.pos), *mask]
    ctx.set(name, ctx.bb.emit(relax.call_tir(gv, args, out_ty)))
