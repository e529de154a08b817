"""Mixture-of-Recursions (model.recursion) for the TVM backend: `lower_recursion(lowering, h) -> h`, the hook
lower.py calls in place of the layer loop.

Inference semantics of helpers/mor.py `Recursion` (eval mode with a cache, the only mode TVM builds):
- prefix layers (not in any step, before the first step's first layer), the recursion, then suffix layers,
  like the generated `_run`;
- expert_choice: per step r, gate = sigmoid(h . router_r), chosen = active & (gate > 0.5) (causal per token, so
  prefill + decode equal the parallel forward; the capacity top-k is training-only), h += chosen * gate * alpha *
  (step_r(h) - h), active = chosen;
- token_choice: probs = softmax(h router^T), depth = argmax, weight = max; step r moves the tokens with
  depth >= r by g = (weight * alpha if depth == r else 1);
- the step is computed for every token and blended (torch does the same);
- kv = recursion_wise: attention at step r sees only the keys chosen at step r (`features["key_mask"]`, read by
  emit/attention.py); prefill writes `recursion.<r>.valid[:, :T]`, decode writes column `pos` and masks the
  cache with the whole row. kv_share needs nothing here (the IR's cache_owner / shared_feature carry it).

Preconditions: Lowering of lower.py; the plan holds the routers (`Recursion.router_params`) as f32 params.
Non-goals: the training-time capacity selection and auxiliary losses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tvm import relax, te, tirx

from livc.backends.tvm.errors import UNSUPPORTED, TvmError
from livc.compiler.ir.nodes import Model, Recursion

if TYPE_CHECKING:
    from livc.backends.tvm.lower import Lowering


def outer_layers(model: Model) -> tuple[list[int], list[int]]:
    """(prefix, suffix) layer indices around the recursion (view._recursion)."""
    rec = model.recursion
    assert rec is not None
    inside = {i for step in rec.steps for i in step}
    first = min(inside)
    rest = [i for i in range(len(model.layers)) if i not in inside]
    return [i for i in rest if i < first], [i for i in rest if i > first]


def _router(lowering: Lowering, pid: str) -> relax.Expr:
    if pid not in lowering.inputs.params:
        raise TvmError(
            UNSUPPORTED,
            f"model.recursion: router parameter {pid} is not an input of the build plan "
            "(plan.make_plan must include Recursion.router_params)",
        )
    return lowering.inputs.params[pid]


def _emit(lowering: Lowering, expr: relax.Expr) -> relax.Expr:
    return lowering.bb.emit(expr)


def _blend(lowering: Lowering, h: relax.Expr, out: relax.Expr, weight: relax.Expr) -> relax.Expr:
    """h + weight[..., None] * (out - h)."""
    w = relax.op.expand_dims(weight, axis=-1)
    return _emit(lowering, relax.op.add(h, relax.op.multiply(w, relax.op.subtract(out, h))))


def _valid_prefill(lowering: Lowering, old: relax.Expr, chosen: relax.Expr) -> relax.Expr:
    """valid[:, :T] = chosen, the rest as it was."""
    max_len = lowering.plan.max_len

    def build(v: te.Tensor, c: te.Tensor) -> te.Tensor:
        seq = c.shape[1]

        def body(b, j):  # noqa: ANN001, ANN202
            return tirx.if_then_else(j < seq, c[b, tirx.min(j, seq - 1)], v[b, j])

        return te.compute((1, max_len), body, name="mor_valid_prefill")

    return lowering.bb.emit_te(build, old, chosen)


def _valid_decode(lowering: Lowering, old: relax.Expr, chosen: relax.Expr) -> relax.Expr:
    """valid[:, pos] = chosen[:, 0]."""
    pos, max_len = lowering.pos, lowering.plan.max_len
    assert pos is not None

    def build(v: te.Tensor, c: te.Tensor, p: tirx.PrimExpr) -> te.Tensor:
        return te.compute((1, max_len), lambda b, j: tirx.if_then_else(j == p, c[b, 0], v[b, j]), name="mor_valid")

    return lowering.bb.emit_te(build, old, chosen, pos)


def _key_mask(lowering: Lowering, rec: Recursion, r: int, chosen: relax.Expr) -> relax.Expr | None:
    """The key mask of step r ([1, T] in prefill, the valid row [1, max_len] in decode), updating the cache."""
    if rec.kv != "recursion_wise":
        return None
    key = f"recursion.{r}.valid"
    if key not in lowering.inputs.cache:
        raise TvmError(UNSUPPORTED, f"model.recursion: no cache entry {key} in the plan")
    old = lowering.inputs.cache[key]
    if lowering.mode == "prefill":
        lowering.inputs.cache[key] = _valid_prefill(lowering, old, chosen)
        return chosen
    lowering.inputs.cache[key] = _valid_decode(lowering, old, chosen)
    return lowering.inputs.cache[key]


def _step(lowering: Lowering, rec: Recursion, r: int, h: relax.Expr, chosen: relax.Expr) -> relax.Expr:
    mask = _key_mask(lowering, rec, r, chosen)
    if mask is not None:
        lowering.inputs.features["key_mask"] = mask
    out = h
    for i in rec.steps[r]:
        out = lowering.layer(i, out)
    lowering.inputs.features.pop("key_mask", None)
    return out


def _alpha(rec: Recursion) -> float:
    args = dict(rec.router_args)
    return float(args.get("alpha", 0.1 if rec.router == "expert_choice" else 1.0))  # type: ignore[arg-type]


def _expert_choice(lowering: Lowering, rec: Recursion, h: relax.Expr) -> relax.Expr:
    alpha = relax.const(_alpha(rec), "float32")
    active: relax.Expr | None = None
    for r in range(len(rec.steps)):
        logits = _emit(lowering, relax.op.matmul(h, _router(lowering, rec.router_params[r])))  # [1, T]
        gate = _emit(lowering, relax.op.sigmoid(logits))
        above = relax.op.astype(relax.op.greater(gate, relax.const(0.5, "float32")), "float32")
        chosen = _emit(lowering, above if active is None else relax.op.multiply(active, above))
        out = _step(lowering, rec, r, h, chosen)
        weight = _emit(lowering, relax.op.multiply(relax.op.multiply(chosen, gate), alpha))
        h = _blend(lowering, h, out, weight)
        active = chosen
    return h


def _token_choice(lowering: Lowering, rec: Recursion, h: relax.Expr) -> relax.Expr:
    router = _router(lowering, rec.router_params[0])
    logits = _emit(lowering, relax.op.matmul(h, relax.op.permute_dims(router)))  # [1, T, steps]
    probs = _emit(lowering, relax.op.nn.softmax(logits, axis=-1))
    depth = _emit(lowering, relax.op.argmax(probs, axis=-1))
    weight = _emit(lowering, relax.op.max(probs, axis=-1))
    scaled = _emit(lowering, relax.op.multiply(weight, relax.const(_alpha(rec), "float32")))
    ones = relax.op.ones_like(weight)
    for r in range(len(rec.steps)):
        level = relax.const(r, str(depth.ty.dtype))
        chosen = _emit(lowering, relax.op.astype(relax.op.greater_equal(depth, level), "float32"))
        out = _step(lowering, rec, r, h, chosen)
        g = relax.op.where(relax.op.equal(depth, level), scaled, ones)
        h = _blend(lowering, h, out, _emit(lowering, relax.op.multiply(chosen, g)))
    return h


def lower_recursion(lowering: Lowering, h: relax.Expr) -> relax.Expr:
    """prefix layers -> the recursion -> suffix layers on the residual stream h [1, T, d]."""
    rec = lowering.model.recursion
    assert rec is not None
    prefix, suffix = outer_layers(lowering.model)
    for i in prefix:
        h = lowering.layer(i, h)
    if rec.router == "expert_choice":
        h = _expert_choice(lowering, rec, h)
    elif rec.router == "token_choice":
        h = _token_choice(lowering, rec, h)
    else:
        raise TvmError(UNSUPPORTED, f"model.recursion: router {rec.router!r} has no TVM lowering")
    for i in suffix:
        h = lowering.layer(i, h)
    return h
