"""Emitter of `short_conv` / `causal_conv`: the causal depthwise convolution and its k-1 state.

Mirrors emit_ops.conv + helpers/conv.py: weight [G, k] (G = channels, or `groups` filter rows), optional bias
[C], cache entry `<prefix>.<base>` [1, C, k-1] (small: rebuilt, not written in place). Prefill convolves the
prompt (taps before position 0 read zero: the cache arrives fresh) and keeps its last k-1 inputs; decode
convolves state ++ x and shifts the state. A headed input is flattened to [1, T, C] first.

Preconditions: EmitCtx of context.py, cache entry from plan.cache_entries. Non-goal: batch > 1.
"""

from __future__ import annotations

from tvm import relax

from livc.backends.tvm.context import EmitCtx
from livc.backends.tvm.kernels import conv as kernels
from livc.compiler.ir.nodes import Op


def _input(op: Op, ctx: EmitCtx) -> relax.Expr:
    t = ctx.type(op.inputs[0])
    x = ctx.value(op.inputs[0])
    if len(t.shape) == 1:
        return x
    return ctx.bb.emit(relax.op.reshape(x, relax.ShapeExpr([1, ctx.seq, t.numel])))


def _te(ctx: EmitCtx, builder: object, name: str, *args: relax.Expr) -> relax.Expr:
    return ctx.bb.emit_te(builder, *args, primfunc_name_hint=name)


def spec_of(op: Op, ctx: EmitCtx) -> kernels.ConvSpec:
    channels, k = ctx.type(op.inputs[0]).numel, int(op.attr("kernel"))  # type: ignore[arg-type]
    groups = op.attr("groups")
    rows = int(groups) if groups is not None else channels  # type: ignore[arg-type]
    return kernels.ConvSpec(channels, rows, k, ctx.has_param(op, "bias"))


def conv(op: Op, ctx: EmitCtx) -> None:
    spec = spec_of(op, ctx)
    x = _input(op, ctx)
    params = [ctx.param(op, "weight"), *([ctx.param(op, "bias")] if spec.bias else [])]
    key = ctx.key(ctx.base(op, op.params[0][0]))
    if spec.kernel == 1:  # no history: the same pointwise product in both modes, the empty state untouched
        ctx.set(op.outputs[0].name, _te(ctx, kernels.prefill(spec), "causal_conv", x, *params))
        return
    if ctx.mode == "prefill":
        y = _te(ctx, kernels.prefill(spec), "causal_conv", x, *params)
        ctx.cache_out(key, _te(ctx, kernels.prefill_state(spec), "causal_conv_state", x))
    else:
        state = ctx.cache_in(key)
        y = _te(ctx, kernels.decode(spec), "causal_conv_step", x, state, *params)
        ctx.cache_out(key, _te(ctx, kernels.decode_state(spec), "causal_conv_state_step", x, state))
    ctx.set(op.outputs[0].name, y)
