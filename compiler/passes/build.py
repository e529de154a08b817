"""Pass `build`: ElaboratedModel -> ir.Model at the LIV level, with every shape checked.

Preconditions: the model elaborated without errors. Every sublayer gets its own parameters
(prefix `layers.i.j`), its own wrapper norm (`layers.i.j.norm`); sharing is applied later by
`expand`. Each block is built independently, so shape errors in several blocks are all reported.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from livc.compiler.elaboration.evaluate import Evaluator
from livc.compiler.elaboration.model import ElaboratedModel
from livc.compiler.elaboration.values import Instance, LayerV
from livc.compiler.elaboration.values import Sublayer as SublayerV
from livc.compiler.ir.nodes import (
    Block,
    Budget,
    DType,
    Layer,
    Model,
    Op,
    Param,
    Recursion,
    Share,
    Sublayer,
    TensorType,
    Wrap,
)
from livc.compiler.passes.block_builder import BlockBuilder, BuildFailed, _attr
from livc.compiler.passes.build_checks import dead_weights, declared_width, embedding_width, tied_vocab
from livc.compiler.passes.inputs import input_errors
from livc.dsl.diagnostics import Label, error

_WRAPS = {"pre_norm": Wrap.PRE_NORM, "post_norm": Wrap.POST_NORM, "no_residual": Wrap.NONE}


@dataclass
class ModelBuilder:
    ev: Evaluator
    model: ElaboratedModel
    params: dict[str, tuple[int, ...]] = field(default_factory=dict)
    failed: bool = False
    tied: str | None = None
    memo: dict[object, tuple[Block, dict[str, tuple[int, ...]]] | None] = field(default_factory=dict)

    def block(self, instance: Instance, prefix: str, input_type: TensorType) -> Block | None:
        """Build an instance; identical instances are built once and re-prefixed (their errors reported once)."""
        key = (instance.definition, instance.args, input_type, self.tied)
        if key not in self.memo:
            self.memo[key] = self._build(instance, input_type)
        built = self.memo[key]
        if built is None:
            self.failed = True
            return None
        template, shapes = built
        for pid, shape in shapes.items():
            self.params[_reprefix(pid, prefix)] = shape
        return _with_prefix(template, prefix, instance)

    def _build(self, instance: Instance, input_type: TensorType) -> tuple[Block, dict[str, tuple[int, ...]]] | None:
        shapes: dict[str, tuple[int, ...]] = {}
        builder = BlockBuilder(self.ev, instance, _PLACEHOLDER, input_type, shapes, tied_embedding=self.tied)
        try:
            block = builder.build()
        except BuildFailed:
            return None
        for diag in dead_weights(block, _PLACEHOLDER):
            self.ev.sink.report(diag)
        return block, shapes

    def width_check(self, block: Block | None, expected: TensorType, what: str) -> bool:
        if block is None:
            return False
        out = _output_type(block)
        if out != expected:
            self.failed = True
            self.ev.sink.report(
                error(
                    "E0312",
                    f"{what} returns {out} but the residual stream is {expected}",
                    block.span,
                    f"{block.name}(...) changes the width",
                    notes=("every sublayer maps the model width to itself",),
                )
            )
            return False
        return True

    def checked(self, instance: Instance, prefix: str, d: TensorType, what: str) -> Block | None:
        """Build an instance applied to the residual stream `d` and check its widths."""
        block = self.block(instance, prefix, d)
        if self.width_check(block, d, what) and (diag := declared_width(self.model, instance, d)) is not None:
            self.failed = True
            self.ev.sink.report(diag)
        return block

    def sublayer(self, sub: SublayerV, prefix: str, d: TensorType) -> Sublayer | None:
        block = self.checked(sub.op, prefix, d, sub.op.name)
        wrap, norm_inst = self._wrapper(sub)
        norm = self.checked(norm_inst, f"{prefix}.norm", d, f"the norm of {prefix}") if norm_inst is not None else None
        if block is None:
            return None
        return Sublayer(block=block, wrap=wrap, norm=norm)

    def _wrapper(self, sub: SublayerV) -> tuple[Wrap, Instance | None]:
        if sub.wrapper is None:
            return Wrap.PRE_NORM, self.model.norm
        norm = dict(sub.wrapper.args).get("norm")
        return _WRAPS[sub.wrapper.name], norm if isinstance(norm, Instance) else None

    def layer(self, index: int, layer: LayerV, d: TensorType) -> Layer | None:
        subs = [self.sublayer(s, f"layers.{index}.{j}", d) for j, s in enumerate(layer.sublayers)]
        if any(s is None for s in subs):
            return None
        return Layer(index=index, sublayers=tuple(s for s in subs if s is not None))


_PLACEHOLDER = "\x00"


def _reprefix(pid: str, prefix: str) -> str:
    return prefix + pid[1:] if pid.startswith(_PLACEHOLDER) else pid


def _with_prefix(block: Block, prefix: str, instance: Instance) -> Block:
    def op(o: Op) -> Op:
        return dataclasses.replace(o, params=tuple((r, _reprefix(p, prefix)) for r, p in o.params))

    sections = tuple(dataclasses.replace(s, ops=tuple(op(o) for o in s.ops)) for s in block.sections)
    return dataclasses.replace(block, sections=sections, span=instance.span)


def _output_type(block: Block) -> TensorType:
    for op in block.ops:
        for value in op.outputs:
            if value.name == block.output:
                return value.type
    return block.input.type


def _embedding_weight(block: Block) -> str | None:
    for op in block.ops:
        if op.prim == "embed":
            return op.param("weight")
    return None


def build_model(ev: Evaluator, model: ElaboratedModel) -> Model | None:
    misused = input_errors(model)
    for diag in misused:
        ev.sink.report(diag)
    if misused:
        return None
    mb = ModelBuilder(ev, model)
    embedding = mb.block(model.embedding, "embedding", TensorType(shape=()))
    if embedding is None:
        return None
    mb.tied = _embedding_weight(embedding)
    d = _output_type(embedding)
    if len(d.shape) != 1:
        ev.sink.report(
            error("E0312", "the embedding must produce a flat [d] vector", model.embedding.span, f"produces {d}")
        )
        return None
    if (wrong := embedding_width(model, d)) is not None:
        ev.sink.report(wrong)
        return None
    layers = [mb.layer(i, layer, d) for i, layer in enumerate(model.layers)]
    final_norm = mb.checked(model.final_norm, "final_norm", d, "final_norm") if model.final_norm is not None else None
    head = mb.block(model.head, "head", d)
    if head is not None and (diag := declared_width(model, model.head, d) or tied_vocab(model, embedding, head)):
        mb.failed = True
        ev.sink.report(diag)
    if mb.failed or head is None or any(layer is None for layer in layers):
        return None
    return Model(
        name=model.name,
        dtype=DType(model.dtype.name),
        d_model=d.shape[0],
        vocab=_output_type(head).shape[0],
        embedding=embedding,
        layers=tuple(layer for layer in layers if layer is not None),
        final_norm=final_norm,
        head=head,
        params=tuple(Param(id=k, shape=v) for k, v in mb.params.items()),
        budgets=tuple(
            Budget(
                metric=b.metric,
                args=tuple((k, _attr(v)) for k, v in b.args),
                limit=b.limit,
                strict=b.strict,
                span=b.span,
            )
            for b in model.budgets
        ),
        context=model.context,
        span=model.span,
        recursion=_recursion(model, len(layers)),
        shares=tuple(
            Share(
                kind=s.kind.value,
                groups=s.groups,
                source=(s.source.layer, s.source.sublayer),
                targets=tuple((t.layer, t.sublayer) for t in s.targets),
                span=s.span,
            )
            for s in model.shares
        ),
    )


def mor_steps(sharing: str, recursions: int, n_layers: int) -> tuple[tuple[int, ...], ...]:
    """Layer indices of each recursion step (the r-th use of the shared weights)."""
    offset = 1 if sharing.startswith("middle") else 0
    base = (n_layers - 2 * offset) // recursions
    if sharing.endswith("cycle"):
        return tuple(tuple(offset + r * base + i for i in range(base)) for r in range(recursions))
    return tuple(tuple(offset + u * recursions + r for u in range(base)) for r in range(recursions))


def _recursion(model: ElaboratedModel, n_layers: int) -> Recursion | None:
    mor = model.recursion
    if mor is None:
        return None
    return Recursion(
        recursions=mor.recursions,
        sharing=mor.sharing,
        router=mor.router.name,
        capacities=mor.capacities,
        kv=mor.kv,
        steps=mor_steps(mor.sharing, mor.recursions, n_layers),
        router_args=tuple((k, _attr(v)) for k, v in mor.router.args if k != "capacities"),
    )


__all__ = ["build_model", "Label"]
