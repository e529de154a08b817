"""Emitters of the recurrent token mixers: linear_attention, gated_scan, selective_scan.

Each lowers to one hand TIR kernel of kernels/scan.py: a sequential pass with an f32 state that starts from zeros
in prefill (torch's helpers start a fresh state whenever `pos is None`) and from the cached state in decode (T = 1,
one state update). The new state is the cache entry's new value, under exactly the keys and shapes of
emit_ops.py: linear_attention `<name>.s` [1,H,dk,dv] (+ `<name>.z` [1,H,dk,1] with normalize), gated_scan `<name>`
[1,H,dk,dv], selective_scan `<base>` [1,E,N].

Preconditions: values are [1, T, *per-token shape] f32 (EmitCtx). Non-goals: shared state across layers
(E0701, as in the PyTorch backend).
"""

from __future__ import annotations

from tvm import relax, te, tirx
from tvm.tirx import PrimFunc

from livc.backends.tvm.context import EmitCtx
from livc.backends.tvm.errors import UNSUPPORTED, TvmError
from livc.backends.tvm.kernels import scan
from livc.compiler.ir.nodes import Op


def call_kernel(
    ctx: EmitCtx, func: PrimFunc, name: str, args: list[relax.Expr], outs: list[tuple[object, ...]]
) -> list[relax.Expr]:
    """Add `func` to the module and call it; `outs` are the f32 output shapes. Returns one expr per output."""
    gv = ctx.bb.add_func(func, name)
    types = [relax.TensorType(list(s), "float32") for s in outs]
    call = ctx.bb.emit(relax.call_tir(gv, args, out_ty=types if len(types) > 1 else types[0]))
    if len(types) == 1:
        return [call]
    return [ctx.bb.emit(relax.TupleGetItem(call, i)) for i in range(len(types))]


def no_shared_state(op: Op, ctx: EmitCtx) -> None:
    if op.attr("cache_owner"):
        raise TvmError(
            UNSUPPORTED, f"{ctx.prefix}: {op.prim} with shared features: only softmax attention shares state"
        )


def state_in(ctx: EmitCtx, key: str, shape: tuple[int, ...]) -> relax.Expr:
    """The state before this call: zeros in prefill (a new sequence), the cached value in decode."""
    if ctx.mode == "prefill":
        return ctx.bb.emit(relax.op.zeros(relax.ShapeExpr(list(shape)), "float32"))
    return ctx.cache_in(key)


def _feature_map(ctx: EmitCtx, x: relax.Expr, kind: str) -> relax.Expr:
    """helpers/linear_attention.py feature_map: elu(x) + 1, relu(x), or x (identity_map)."""
    if kind == "elu_plus_one":
        fn = lambda a: te.compute(  # noqa: E731
            a.shape, lambda *i: tirx.if_then_else(a(*i) > 0, a(*i) + 1.0, tirx.exp(a(*i))), name="elu_plus_one"
        )
        return ctx.bb.emit_te(fn, x)
    if kind == "relu_map":
        return ctx.bb.emit(relax.op.nn.relu(x))
    if kind == "identity_map":
        return x
    raise TvmError(UNSUPPORTED, f"{ctx.prefix}: linear_attention feature map {kind!r} is not implemented")


def linear_attention(op: Op, ctx: EmitCtx) -> None:
    no_shared_state(op, ctx)
    kind = str(op.attr("feature_map"))
    q, k = (_feature_map(ctx, ctx.value(n), kind) for n in op.inputs[:2])
    v = ctx.value(op.inputs[2])
    h, dk = ctx.type(op.inputs[0]).shape
    dv = ctx.type(op.inputs[2]).shape[1]
    name = op.outputs[0].name
    s_key, z_key = ctx.key(f"{name}.s"), ctx.key(f"{name}.z")
    o_shape, s_shape = (1, ctx.seq, h, dv), (1, h, dk, dv)
    s0 = state_in(ctx, s_key, s_shape)
    if bool(op.attr("normalize")):
        z0 = state_in(ctx, z_key, (1, h, dk, 1))
        func = scan.linear_attention_func(h, dk, dv)
        o, s, z = call_kernel(ctx, func, "linear_attention", [s0, z0, q, k, v], [o_shape, s_shape, (1, h, dk, 1)])
        ctx.cache_out(z_key, z)
    else:
        o, s = call_kernel(ctx, scan.plain_scan_func(h, dk, dv), "linear_scan", [s0, q, k, v], [o_shape, s_shape])
    ctx.cache_out(s_key, s)
    ctx.set(name, o)


def gated_scan(op: Op, ctx: EmitCtx) -> None:
    no_shared_state(op, ctx)
    q, k, v, g = (ctx.value(n) for n in op.inputs)
    h, dk = ctx.type(op.inputs[0]).shape
    dv = ctx.type(op.inputs[2]).shape[1]
    name = op.outputs[0].name
    key, s_shape = ctx.key(name), (1, h, dk, dv)
    args = [state_in(ctx, key, s_shape), q, k, v, g]
    o, s = call_kernel(ctx, scan.gated_scan_func(h, dk, dv), "gated_scan", args, [(1, ctx.seq, h, dv), s_shape])
    ctx.cache_out(key, s)
    ctx.set(name, o)


def selective_scan(op: Op, ctx: EmitCtx) -> None:
    no_shared_state(op, ctx)
    u, dt, b, c = (ctx.value(n) for n in op.inputs)
    e, n = ctx.type(op.inputs[0]).numel, int(op.attr("state"))  # type: ignore[arg-type]
    key = ctx.key(ctx.base(op, op.params[0][0]))
    args = [state_in(ctx, key, (1, e, n)), u, dt, b, c, ctx.param(op, "A_log"), ctx.param(op, "D")]
    y, h = call_kernel(ctx, scan.selective_scan_func(e, n), "selective_scan", args, [(1, ctx.seq, e), (1, e, n)])
    ctx.cache_out(key, h)
    ctx.set(op.outputs[0].name, y)
