"""Emitter and kernels of `token_dense`: y_t = sum_{s<=t} W[t, s] x_s with a learned W [n, n].

Mirrors emit_ops.token_dense + helpers/token_dense.py: the history cache `<prefix>.<base>` [1, C, max_len]
holds x per position (written in place, opaque kernels); prefill stores positions 0..T-1 and mixes the
prompt with the lower triangle of W[:T, :T]; decode stores x at `pos` and mixes the history with row W[pos]
over the pos + 1 written positions (never over max_len). W stays f32 (not a matrix weight of the plan).

Preconditions: EmitCtx of context.py; max_len <= n (torch's init_cache refuses more, here E0701).
Non-goal: batch > 1.
"""

from __future__ import annotations

from tvm import relax, te, tirx
from tvm.script import tirx as T

from livc.backends.tvm.context import EmitCtx
from livc.backends.tvm.errors import unsupported
from livc.backends.tvm.kernels.attention import lanes
from livc.compiler.ir.nodes import Op


def _attrs(kind: str) -> dict[str, object]:
    return {"tirx.noalias": True, "op_pattern": 8, "livc.kernel": kind, "livc.scheduled": True}


def store_prefill(channels: int, slots: int) -> tirx.PrimFunc:
    """(history [1, C, S], x [1, T, C]): history[:, :, t] <- x[:, t] for t < min(T, S). In place."""

    @T.prim_func(private=True)  # no global symbol: Relax names each added copy
    def token_dense_store_prefill(hist: T.Buffer((1, channels, slots), "float32"), x_h: T.handle):
        T.func_attr(_attrs("token_dense_store"))
        t = T.int64()
        x = T.match_buffer(x_h, (1, t, channels), "float32")
        for c in range(channels):
            for i in range(T.min(t, T.int64(slots))):
                hist[0, c, i] = x[0, i, c]

    return token_dense_store_prefill


def store_decode(channels: int, slots: int) -> tirx.PrimFunc:
    """(history, x [1, 1, C], pos): history[:, :, pos] <- x. In place."""

    @T.prim_func(private=True)  # no global symbol: Relax names each added copy
    def token_dense_store_decode(hist: T.Buffer((1, channels, slots), "float32"),
                                 x: T.Buffer((1, 1, channels), "float32"), pos: T.int64):  # fmt: skip
        T.func_attr(_attrs("token_dense_store"))
        if pos < slots:  # past the cache: the runtime rejects such a position before calling
            for c in range(channels):
                hist[0, c, pos] = x[0, 0, c]

    return token_dense_store_decode


def mix_decode(channels: int, slots: int, n: int) -> tirx.PrimFunc:
    """(history, W [n, n], pos) -> y [1, 1, C]: y[c] = sum_{s <= pos} W[pos, s] history[c, s]."""
    lk = lanes(slots)

    @T.prim_func(private=True)  # no global symbol: Relax names each added copy
    def token_dense_decode(hist: T.Buffer((1, channels, slots), "float32"), w: T.Buffer((n, n), "float32"),
                           pos: T.int64, y: T.Buffer((1, 1, channels), "float32")):  # fmt: skip
        T.func_attr(_attrs("token_dense_decode"))
        count: T.int64 = T.min(pos + T.int64(1), T.int64(slots))
        full: T.int64 = count // T.int64(lk)
        for c in T.parallel(channels):
            part = T.alloc_local((lk,), "float32")
            for ln in T.vectorized(lk):
                part[ln] = T.float32(0)
            for s0 in range(full):
                for ln in T.vectorized(lk):
                    part[ln] = part[ln] + w[pos, s0 * lk + ln] * hist[0, c, s0 * lk + ln]
            total: T.float32 = T.float32(0)
            for ln in range(lk):
                total = total + part[ln]
            for s in range(count - full * T.int64(lk)):
                total = total + w[pos, full * lk + s] * hist[0, c, full * lk + s]
            y[0, 0, c] = total

    return token_dense_decode


def _mix_prefill(x: te.Tensor, w: te.Tensor) -> te.Tensor:
    """y[t, c] = sum_{s <= t} W[t, s] x[s, c] (prefill: the whole prompt at once)."""
    length = x.shape[1]
    s = te.reduce_axis((0, length), name="s")

    def body(b, t, c):  # noqa: ANN001, ANN202
        coef = tirx.if_then_else(s <= t, w[t, s], tirx.const(0.0, "float32"))
        return te.sum(coef * x[b, s, c], axis=s)

    return te.compute(x.shape, body, name="token_dense")


def _input(op: Op, ctx: EmitCtx) -> relax.Expr:
    t = ctx.type(op.inputs[0])
    x = ctx.value(op.inputs[0])
    if len(t.shape) == 1:
        return x
    return ctx.bb.emit(relax.op.reshape(x, relax.ShapeExpr([1, ctx.seq, t.numel])))


def token_dense(op: Op, ctx: EmitCtx) -> None:
    n, channels = int(op.attr("max_len")), ctx.type(op.inputs[0]).numel  # type: ignore[arg-type]
    if ctx.max_len > n:
        raise unsupported(f"{ctx.prefix}: token_dense", f"max_len {ctx.max_len} exceeds its mixing size {n}")
    key = ctx.key(ctx.base(op, "weight"))
    x, w, hist = _input(op, ctx), ctx.param(op, "weight"), ctx.cache_in(key)
    slots = int(hist.ty.shape.values[2])
    if ctx.mode == "prefill":
        gv = ctx.bb.add_func(store_prefill(channels, slots), "token_dense_store_prefill")
        ctx.cache_out(key, ctx.bb.emit(relax.call_tir_inplace(gv, [hist, x], 0, hist.ty)))
        ctx.set(op.outputs[0].name, ctx.bb.emit_te(_mix_prefill, x, w, primfunc_name_hint="token_dense_prefill"))
        return
    pos = relax.prim_value(ctx.pos)
    gv = ctx.bb.add_func(store_decode(channels, slots), "token_dense_store_decode")
    hist = ctx.bb.emit(relax.call_tir_inplace(gv, [hist, x, pos], 0, hist.ty))
    ctx.cache_out(key, hist)
    gv = ctx.bb.add_func(mix_decode(channels, slots, n), "token_dense_decode")
    out_ty = relax.TensorType((1, 1, channels), "float32")
    ctx.set(op.outputs[0].name, ctx.bb.emit(relax.call_tir(gv, [hist, w, pos], out_ty)))
