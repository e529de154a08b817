"""The driver: an ir.Model and its Plan -> a Relax IRModule with `prefill` and `decode_step`.

    prefill(tokens (1, T) int32, *cache, *weights) -> (logits (1, vocab) of the last position, *cache)
    decode_step(tokens (1, 1) int32, pos R.Shape([pos]), *cache, *weights) -> (logits (1, vocab), *cache)

Cache and weights follow `plan.cache` and `plan.weight_inputs`. The model runs like the PyTorch module's
`_run`: embedding -> every sublayer through its wrapper (pre_norm / post_norm / none, with its norm block)
-> final norm -> head; blocks export shared features into `Inputs.features` (torch `features` keys);
repeat_heads that only feed attention K/V are not materialised (view._gqa_aliases). Prefill keeps only the
last position before a per-token final norm and head (like `prefill(last_only=True)`).

Mixture-of-Recursions is lowered by emit/mor.py (H3): `lower_recursion(lowering, h) -> h` runs the shared
layers on the hidden state between the prefix and suffix layers, using `Lowering.sublayer`. Without that
module a recursion model is E0701. Models with bidirectional attention get no `decode_step` (like torch,
whose decode_step raises). Preconditions: a canonicalize- or lower-stage model, a plan made from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import tvm
from tvm import relax, tirx

from livc.backends.pytorch.inference import SEQUENCE_PRIMS, decode_error
from livc.backends.pytorch.view import _exports, _gqa_aliases, _types, _unrepeated, param_base
from livc.backends.tvm.context import EmitCtx, Inputs, Mode
from livc.backends.tvm.emitters import emitter_for
from livc.backends.tvm.matmul import Weight
from livc.backends.tvm.plan import Plan
from livc.compiler.ir.nodes import Block, Model, Op, Sublayer, Wrap
from livc.compiler.passes.expand import cache_key


@dataclass
class Lowering:
    """One entry function being built: the model, the mode, its inputs; runs blocks and sublayers."""

    bb: relax.BlockBuilder
    model: Model
    plan: Plan
    mode: Mode
    seq: tirx.PrimExpr | int
    pos: tirx.Var | None
    pos_shape: relax.Expr | None
    inputs: Inputs
    exports: dict[str, set[str]] = field(default_factory=dict)

    def ctx(self, prefix: str, block: Block, kv_owner: dict[str, str] | None = None) -> EmitCtx:
        unrepeated = _unrepeated(block)
        types = _types(block)
        types.update(self._shared_types(block))
        return EmitCtx(
            bb=self.bb,
            mode=self.mode,
            seq=self.seq,
            pos=self.pos,
            max_len=self.plan.max_len,
            prefix=prefix,
            types=types,
            inputs=self.inputs,
            base=lambda op, role: param_base(str(op.param(role)), role),
            aliases={"tokens": "x", **_gqa_aliases(block, unrepeated)},
            unrepeated=unrepeated,
            kv_owner=kv_owner or {},
            pos_shape=self.pos_shape,
        )

    def _shared_types(self, block: Block) -> dict[str, object]:
        """A shared feature arrives as stored by its source (un-repeated heads), so it has the source's type."""
        out = {}
        for op in block.ops:
            if op.prim == "shared_feature":
                key = _source_key(op)
                if key in self.inputs.feature_types:
                    out[op.outputs[0].name] = self.inputs.feature_types[key]
        return out

    def block(self, prefix: str, block: Block, x: relax.Expr) -> relax.Expr:
        ctx = self.ctx(prefix, block, self._kv_owner(block))
        ctx.set(block.input.name, x)
        ctx.set("x", x)
        for op in block.ops:
            if op.outputs and op.outputs[0].name in ctx.aliases:
                continue
            emitter_for(op.prim, prefix)(op, ctx)
        self._export(prefix, block, ctx)
        return ctx.value(block.output)

    def _export(self, prefix: str, block: Block, ctx: EmitCtx) -> None:
        for feature in block.features:
            group, value = feature.name.split("=", 1)
            if group in self.exports.get(prefix, ()):
                self.inputs.features[f"{prefix}.{group}"] = ctx.kv(value)
                self.inputs.feature_types[f"{prefix}.{group}"] = ctx.kv_type(value)

    @staticmethod
    def _kv_owner(block: Block) -> dict[str, str]:
        """Shared attention name -> the owner's cache key stem (expand's cache_owner + cache_entry)."""
        return {op.outputs[0].name: key for op in block.ops if op.prim == "attention" and (key := cache_key(op))}

    def sublayer(self, i: int, j: int, h: relax.Expr) -> relax.Expr:
        """Layer i, sublayer j on the residual stream h (Sublayer.residual)."""
        sub: Sublayer = self.model.layers[i].sublayers[j]
        prefix = f"layers.{self.model.layers[i].index}.{j}"

        def norm(v: relax.Expr) -> relax.Expr:
            return self.block(f"{prefix}.norm", sub.norm, v) if sub.norm is not None else v

        if sub.wrap is Wrap.POST_NORM:
            return norm(self._add(h, self.block(prefix, sub.block, h)))
        if sub.wrap is Wrap.NONE:
            return self.block(prefix, sub.block, h)
        return self._add(h, self.block(prefix, sub.block, norm(h)))

    def layer(self, i: int, h: relax.Expr) -> relax.Expr:
        for j in range(len(self.model.layers[i].sublayers)):
            h = self.sublayer(i, j, h)
        return h

    def _add(self, a: relax.Expr, b: relax.Expr) -> relax.Expr:
        return self.bb.emit(relax.op.add(a, b))

    def last_position(self, h: relax.Expr) -> relax.Expr:
        if self.mode == "decode":
            return h
        return self.bb.emit(relax.op.strided_slice(h, axes=[1], begin=[self.seq - 1], end=[self.seq]))

    def run(self, tokens: relax.Expr) -> relax.Expr:
        """tokens -> logits (1, vocab) of the last position."""
        model = self.model
        h = self.block("embedding", model.embedding, tokens)
        h = self._layers(h)
        tail = [model.head] + ([model.final_norm] if model.final_norm else [])
        pointwise = not any(op.prim in SEQUENCE_PRIMS for blk in tail for op in blk.ops)
        h = self.last_position(h) if pointwise else h
        if model.final_norm is not None:
            h = self.block("final_norm", model.final_norm, h)
        logits = self.block("head", model.head, h)
        logits = logits if pointwise else self.last_position(logits)
        return self.bb.emit(relax.op.reshape(logits, relax.ShapeExpr([1, model.vocab])))

    def _layers(self, h: relax.Expr) -> relax.Expr:
        if self.model.recursion is None:
            for i in range(len(self.model.layers)):
                h = self.layer(i, h)
            return h
        from livc.backends.tvm.emit.mor import lower_recursion  # mor.py builds on this module: imported here

        return lower_recursion(self, h)


def _source_key(op: Op) -> str:
    return re.sub(r"\[(\d+)\]", r".\1", str(op.attr("source"))).lstrip(".")


# ---- entry functions


def _weight_vars(plan: Plan) -> tuple[list[relax.Var], dict[str, relax.Expr], dict[str, Weight]]:
    variables, params, grouped = [], {}, {}
    for w in plan.weight_inputs:
        var = relax.Var(w.name, relax.TensorType(w.shape, w.dtype))
        variables.append(var)
        if w.param in plan.matrices:
            grouped.setdefault(w.param, []).append(var)
        else:
            params[w.param] = var
    shapes = dict(plan.shapes)
    weights = {
        pid: Weight(plan.fmt, tuple(vs), int(shapes[pid][-2]), int(shapes[pid][-1])) for pid, vs in grouped.items()
    }
    return variables, params, weights


def _entry(bb: relax.BlockBuilder, model: Model, plan: Plan, mode: Mode) -> None:
    seq: tirx.PrimExpr | int = tirx.Var("T", "int64") if mode == "prefill" else 1
    tokens = relax.Var("tokens", relax.TensorType((1, seq), "int32"))
    pos = tirx.Var("pos", "int64") if mode == "decode" else None
    pos_shape = relax.Var("pos", relax.ShapeType([pos])) if pos is not None else None
    cache_vars = [relax.Var(e.key, relax.TensorType(e.shape, e.dtype)) for e in plan.cache]
    weight_vars, params, weights = _weight_vars(plan)
    inputs = Inputs(params, weights, {e.key: v for e, v in zip(plan.cache, cache_vars, strict=True)})
    lowering = Lowering(bb, model, plan, mode, seq, pos, pos_shape, inputs, _exports(model))
    args = [tokens, *([pos_shape] if pos_shape is not None else []), *cache_vars, *weight_vars]
    name = "prefill" if mode == "prefill" else "decode_step"
    with bb.function(name, args):
        with bb.dataflow():
            logits = lowering.run(tokens)
            out = bb.emit_output(relax.Tuple([logits, *(inputs.cache[e.key] for e in plan.cache)]))
        bb.emit_func_output(out)


def can_decode(model: Model) -> bool:
    """False for bidirectional attention (decode could not equal forward; torch's decode_step raises)."""
    return not decode_error(model)


def lower(model: Model, plan: Plan) -> tvm.IRModule:
    """The Relax module with `prefill` and (unless `can_decode` is False) `decode_step`."""
    bb = relax.BlockBuilder()
    _entry(bb, model, plan, "prefill")
    if can_decode(model):
        _entry(bb, model, plan, "decode")
    return bb.get()
