"""Emitters of the stateless primitives: projections, reshapes, rope, norms, scale, embed, head, elementwise.

Each matches the PyTorch backend's helper (backends/pytorch/templates/helpers/*.py, emit_ops.py) in f32.
Values are [1, T, *per-token shape]; positions are 0..T-1 in prefill and `ctx.pos` in decode.
Non-goal: stateful or token-mixing prims (emit/conv.py, attention.py, scans.py ...).
"""

from __future__ import annotations

import re

import numpy as np
from tvm import relax, te, tirx

from livc.backends.tvm import matmul
from livc.backends.tvm.context import EmitCtx
from livc.backends.tvm.errors import unsupported
from livc.compiler.ir.nodes import Op


def _out(op: Op, ctx: EmitCtx, expr: relax.Expr, i: int = 0) -> None:
    ctx.set(op.outputs[i].name, expr)


def _reshape(ctx: EmitCtx, x: relax.Expr, shape: tuple[int, ...]) -> relax.Expr:
    return ctx.bb.emit(relax.op.reshape(x, relax.ShapeExpr([1, ctx.seq, *shape])))


def _flat_input(op: Op, ctx: EmitCtx) -> relax.Expr:
    t = ctx.type(op.inputs[0])
    x = ctx.value(op.inputs[0])
    return x if len(t.shape) == 1 else _reshape(ctx, x, (t.numel,))


def linear(op: Op, ctx: EmitCtx) -> None:
    bias = ctx.param(op, "bias") if ctx.has_param(op, "bias") else None
    y = matmul.linear(ctx, _flat_input(op, ctx), ctx.weight(op), bias)
    shape = op.outputs[0].type.shape
    _out(op, ctx, y if len(shape) == 1 else _reshape(ctx, y, shape))


def _grouped(groups: int, with_bias: bool):  # noqa: ANN202 - a TE builder
    def build(x: te.Tensor, w: te.Tensor, *bias: te.Tensor) -> te.Tensor:
        out, gin = (int(s) for s in w.shape)
        gout = out // groups
        r = te.reduce_axis((0, gin), name="r")

        def body(b, t, o):  # noqa: ANN001, ANN202
            acc = te.sum(x[b, t, (o // gout) * gin + r] * w[o, r], axis=r)
            return acc

        y = te.compute((x.shape[0], x.shape[1], out), body, name="grouped_linear")
        if not with_bias:
            return y
        return te.compute(y.shape, lambda b, t, o: y[b, t, o] + bias[0][o], name="grouped_bias")

    return build


def grouped_linear(op: Op, ctx: EmitCtx) -> None:
    """weight [out, in / g]: output block o // (out / g) reads input group o // (out / g) (helpers/grouped.py)."""
    args = [_flat_input(op, ctx), ctx.param(op, "weight")]
    with_bias = ctx.has_param(op, "bias")
    args += [ctx.param(op, "bias")] if with_bias else []
    _out(op, ctx, ctx.bb.emit_te(_grouped(int(op.attr("groups")), with_bias), *args))  # type: ignore[arg-type]


def split(op: Op, ctx: EmitCtx) -> None:
    x = _flat_input(op, ctx)
    width = op.outputs[0].type.shape[-1]
    for i, _ in enumerate(op.outputs):
        part = relax.op.strided_slice(x, axes=[2], begin=[i * width], end=[(i + 1) * width])
        _out(op, ctx, ctx.bb.emit(part), i)


def split_heads(op: Op, ctx: EmitCtx) -> None:
    _out(op, ctx, _reshape(ctx, ctx.value(op.inputs[0]), op.outputs[0].type.shape))


def merge_heads(op: Op, ctx: EmitCtx) -> None:
    _out(op, ctx, _reshape(ctx, ctx.value(op.inputs[0]), op.outputs[0].type.shape))


def repeat_heads(op: Op, ctx: EmitCtx) -> None:
    """repeat_interleave on the head axis: [h0, h0, h1, h1] for times 2."""
    x = ctx.value(op.inputs[0])
    _out(op, ctx, ctx.bb.emit(relax.op.repeat(x, int(op.attr("times")), axis=2)))  # type: ignore[arg-type]


def _inv_freq(rot: int, theta: float) -> np.ndarray:
    exponent = np.arange(0, rot, 2, dtype=np.float32) / np.float32(rot)
    return (np.float32(1.0) / (np.float32(theta) ** exponent)).astype(np.float32)


def _rope(rot: int):  # noqa: ANN202 - a TE builder
    half = rot // 2

    def build(x: te.Tensor, inv: te.Tensor, *pos: tirx.PrimExpr) -> te.Tensor:
        def body(b, t, h, i):  # noqa: ANN001, ANN202
            p = (t + pos[0] if pos else t).astype("float32")
            f = p * inv[tirx.floormod(i, half)]
            partner = tirx.if_then_else(i < half, -x[b, t, h, i + half], x[b, t, h, i - half])
            rotated = x[b, t, h, i] * tirx.cos(f) + partner * tirx.sin(f)
            return tirx.if_then_else(i < rot, rotated, x[b, t, h, i])

        return te.compute(x.shape, body, name="rope")

    return build


def apply_rope(op: Op, ctx: EmitCtx) -> None:
    """helpers/rope.py: HF rotate_half on the first int(hd * fraction) dims, inv_freq = 1 / theta^(2i / rot)."""
    hd = ctx.type(op.inputs[0]).shape[-1]
    rot = int(hd * float(op.attr("fraction", 1.0)))  # type: ignore[arg-type]
    inv = relax.const(_inv_freq(rot, float(op.attr("theta"))), "float32")  # type: ignore[arg-type]
    pos = () if ctx.pos is None else (ctx.pos,)  # a tir var must be an explicit kernel argument
    y = ctx.bb.emit_te(_rope(rot), ctx.value(op.inputs[0]), inv, *pos)
    _out(op, ctx, y)


def _ones(n: int, value: float = 1.0) -> relax.Expr:
    return relax.const(np.full((n,), value, dtype=np.float32), "float32")


def rmsnorm(op: Op, ctx: EmitCtx) -> None:
    n = op.outputs[0].type.shape[-1]
    w = ctx.param(op, "weight") if ctx.has_param(op, "weight") else _ones(n)
    eps = float(op.attr("eps"))  # type: ignore[arg-type]
    _out(op, ctx, ctx.bb.emit(relax.op.nn.rms_norm(ctx.value(op.inputs[0]), w, axes=[-1], epsilon=eps)))


def layernorm(op: Op, ctx: EmitCtx) -> None:
    n = op.outputs[0].type.shape[-1]
    w = ctx.param(op, "weight") if ctx.has_param(op, "weight") else _ones(n)
    b = ctx.param(op, "bias") if ctx.has_param(op, "bias") else _ones(n, 0.0)
    eps = float(op.attr("eps"))  # type: ignore[arg-type]
    y = relax.op.nn.layer_norm(ctx.value(op.inputs[0]), w, b, axes=[-1], epsilon=eps)
    _out(op, ctx, ctx.bb.emit(y))


def scale(op: Op, ctx: EmitCtx) -> None:
    _out(op, ctx, ctx.bb.emit(relax.op.multiply(ctx.value(op.inputs[0]), ctx.param(op, "weight"))))


def embed(op: Op, ctx: EmitCtx) -> None:
    _out(op, ctx, matmul.gather_rows(ctx, ctx.weight(op), ctx.value(op.inputs[0])))


def lm_head(op: Op, ctx: EmitCtx) -> None:
    """Logits x @ W.T; a tied head names the embedding table's id (expand applies tying)."""
    _out(op, ctx, matmul.linear(ctx, _flat_input(op, ctx), ctx.weight(op), None))


def shared_feature(op: Op, ctx: EmitCtx) -> None:
    """The source layer's exported (un-repeated) value, keyed like torch `features`."""
    key = re.sub(r"\[(\d+)\]", r".\1", str(op.attr("source"))).lstrip(".")
    if key not in ctx.features:
        raise unsupported(f"{ctx.prefix}: shared_feature", f"{key} is not exported before this layer")
    _out(op, ctx, ctx.features[key])


def _softplus(v: tirx.PrimExpr) -> tirx.PrimExpr:
    """F.softplus (beta 1, threshold 20): x above 20 is returned as is."""
    return tirx.if_then_else(v > 20.0, v, tirx.log1p(tirx.exp(v)))


def _logsigmoid(v: tirx.PrimExpr) -> tirx.PrimExpr:
    """log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)), the stable form torch uses."""
    return tirx.min(v, tirx.const(0.0, "float32")) - tirx.log1p(tirx.exp(-tirx.abs(v)))


_UNARY = {
    "silu": lambda v: v * tirx.sigmoid(v),
    "gelu": lambda v: 0.5 * v * (1.0 + tirx.erf(v * 0.7071067811865476)),
    "relu": lambda v: tirx.max(v, tirx.const(0.0, "float32")),
    "sigmoid": tirx.sigmoid,
    "softplus": _softplus,
    "tanh": tirx.tanh,
    "exp": tirx.exp,
    "sin": tirx.sin,
    "elu_plus_one": lambda v: tirx.if_then_else(v > 0.0, v + 1.0, tirx.exp(v)),
    "logsigmoid": _logsigmoid,
    "neg": lambda v: -v,
}
UNARY_PRIMS = tuple(_UNARY)


def unary(op: Op, ctx: EmitCtx) -> None:
    fn = _UNARY[op.prim]

    def build(x: te.Tensor) -> te.Tensor:
        return te.compute(x.shape, lambda *i: fn(x(*i)), name=op.prim)

    _out(op, ctx, ctx.bb.emit_te(build, ctx.value(op.inputs[0])))


_BINARY = {
    "add": relax.op.add,
    "sub": relax.op.subtract,
    "mul": relax.op.multiply,
    "div": relax.op.divide,
}
BINARY_PRIMS = tuple(_BINARY)


def binary(op: Op, ctx: EmitCtx) -> None:
    """Two values, or a value and a scalar literal (attrs "left" / "right", as emit_ops.binary)."""
    attrs, names = dict(op.attrs), iter(op.inputs)
    operands = [
        relax.const(float(attrs[side]), "float32") if side in attrs else ctx.value(next(names))  # type: ignore[arg-type]
        for side in ("left", "right")
    ]
    _out(op, ctx, ctx.bb.emit(_BINARY[op.prim](operands[0], operands[1])))
