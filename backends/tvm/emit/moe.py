"""Emitter of moe: top-k mixture of SwiGLU experts with a linear softmax router (helpers/moe.py).

probs = softmax(x router^T); the top k are kept and renormalised. Prefill computes every expert densely and
adds each expert's output times its gate weight in expert order (0 for an expert a token did not choose), which
is torch's gather / index_add result: the same terms summed in the same order. Decode computes only the k chosen
experts: each chosen expert's stacked weights are taken by index (any storage format: every stored array of a
stacked weight has the expert axis first, weights.py) and applied as a GEMV through matmul.linear. Shared experts
are a plain SwiGLU added to the routed output. The auxiliary loss is training-only (torch appends it to `aux`,
which inference passes as None).

Preconditions: x [1, T, d] f32; expert weights [E, hidden, d] / [E, d, hidden] as matrix weights (plan.py).
Non-goals: capacity limits or dropped tokens (torch has none either).
"""

from __future__ import annotations

from tvm import relax, te, tirx

from livc.backends.tvm import matmul, weights
from livc.backends.tvm.context import EmitCtx
from livc.backends.tvm.matmul import Weight
from livc.compiler.ir.nodes import Op


def _swiglu(ctx: EmitCtx, x: relax.Expr, w1: Weight, w3: Weight, w2: Weight) -> relax.Expr:
    """w2(silu(w1 x) * w3 x)."""
    a = matmul.linear(ctx, x, w1, None)
    b = matmul.linear(ctx, x, w3, None)
    hidden = ctx.bb.emit(relax.op.multiply(relax.op.nn.silu(a), b))
    return matmul.linear(ctx, hidden, w2, None)


def _expert(ctx: EmitCtx, w: Weight, experts: int, index: relax.Expr | int) -> Weight:
    """Expert `index` (a Python int, or an int tensor [1]) of a stacked weight [E, out, inp], as a 2-D Weight."""
    specs = weights.storage((experts, w.out, w.inp), w.fmt)
    parts = []
    for arr, (_, shape, _) in zip(w.inputs, specs, strict=True):
        if isinstance(index, int):
            one = relax.op.strided_slice(arr, axes=[0], begin=[index], end=[index + 1])
        else:
            one = relax.op.take(arr, index, axis=0)
        parts.append(ctx.bb.emit(relax.op.reshape(one, relax.ShapeExpr(list(shape[1:])))))
    return Weight(w.fmt, tuple(parts), w.out, w.inp)


def _route(ctx: EmitCtx, x: relax.Expr, router: relax.Expr, top_k: int) -> tuple[relax.Expr, relax.Expr]:
    """(weights [1, T, k] renormalised over the top k, indices [1, T, k] int32), largest first like torch.topk."""
    logits = ctx.bb.emit(relax.op.matmul(x, relax.op.permute_dims(router)))
    probs = ctx.bb.emit(relax.op.nn.softmax(logits, axis=-1))
    top = ctx.bb.emit(relax.op.topk(probs, top_k, axis=-1, ret_type="both", largest=True, dtype="int32"))
    values = ctx.bb.emit(relax.TupleGetItem(top, 0))
    indices = ctx.bb.emit(relax.TupleGetItem(top, 1))
    total = relax.op.sum(values, axis=[-1], keepdims=True)
    return ctx.bb.emit(relax.op.divide(values, total)), indices


def _dense_gates(ctx: EmitCtx, gate: relax.Expr, indices: relax.Expr, experts: int) -> relax.Expr:
    """[1, T, E]: the renormalised weight of expert e for each token, 0 where e is not among its top k."""

    def build(w: te.Tensor, idx: te.Tensor) -> te.Tensor:
        k = te.reduce_axis((0, int(w.shape[-1])), name="j")

        def body(b, t, e):  # noqa: ANN001, ANN202
            return te.sum(tirx.if_then_else(idx[b, t, k] == e.astype("int32"), w[b, t, k], 0.0), axis=k)

        return te.compute((w.shape[0], w.shape[1], experts), body, name="moe_gates")

    return ctx.bb.emit_te(build, gate, indices)


def _column(ctx: EmitCtx, x: relax.Expr, j: int) -> relax.Expr:
    return ctx.bb.emit(relax.op.strided_slice(x, axes=[2], begin=[j], end=[j + 1]))


def moe(op: Op, ctx: EmitCtx) -> None:
    x = ctx.value(op.inputs[0])
    experts, top_k = int(op.attr("experts")), int(op.attr("top_k"))  # type: ignore[arg-type]
    w1, w3, w2 = (ctx.weight(op, r) for r in ("w1", "w3", "w2"))
    gate, indices = _route(ctx, x, ctx.param(op, "router"), top_k)
    out: relax.Expr | None = None
    if ctx.mode == "prefill":
        gates = _dense_gates(ctx, gate, indices, experts)
        terms = [(e, _column(ctx, gates, e)) for e in range(experts)]
    else:
        terms = [
            (ctx.bb.emit(relax.op.reshape(_column(ctx, indices, j), [1])), _column(ctx, gate, j)) for j in range(top_k)
        ]
    for index, weight in terms:
        parts = [_expert(ctx, w, experts, index) for w in (w1, w3, w2)]
        y = ctx.bb.emit(relax.op.multiply(_swiglu(ctx, x, *parts), weight))
        out = y if out is None else ctx.bb.emit(relax.op.add(out, y))
    assert out is not None
    if ctx.has_param(op, "shared_w1"):
        shared = _swiglu(ctx, x, *(ctx.weight(op, r) for r in ("shared_w1", "shared_w3", "shared_w2")))
        out = ctx.bb.emit(relax.op.add(out, shared))
    ctx.set(op.outputs[0].name, out)
