"""Pass `lower`: flatten LIV sections into one primitive op list (`body`) per block.

The backends consume this form: a block is a straight-line list of primitives. The LIV structure
that was visible in sections survives as op attributes on the token mixer (`structure`,
`nonlinearity`, `sparsity`) so that costs and code generation need not look at sections.
Idempotent: a lowered model has only `body` sections.
"""

from __future__ import annotations

import dataclasses

from livc.compiler.ir.nodes import Block, Model, Op, Role, Section, Sublayer
from livc.compiler.passes.structure import TOKEN_MIXERS


def _annotate(op: Op, section: Section) -> Op:
    if section.role is not Role.TOKEN_MIX or op.prim not in TOKEN_MIXERS:
        return op
    extra = (("structure", section.structure), ("nonlinearity", section.nonlinearity), ("sparsity", section.sparsity))
    known = {k for k, _ in op.attrs}
    return dataclasses.replace(op, attrs=op.attrs + tuple(kv for kv in extra if kv[0] not in known))


def flatten(block: Block) -> Block:
    ops = tuple(_annotate(op, s) for s in block.sections for op in s.ops)
    return dataclasses.replace(block, sections=(Section(role=Role.BODY, structure=None, ops=ops),))


def _sublayer(sub: Sublayer) -> Sublayer:
    return dataclasses.replace(sub, block=flatten(sub.block), norm=flatten(sub.norm) if sub.norm else None)


def run(model: Model, sink: object = None) -> Model:
    layers = tuple(
        dataclasses.replace(layer, sublayers=tuple(_sublayer(s) for s in layer.sublayers)) for layer in model.layers
    )
    final = flatten(model.final_norm) if model.final_norm is not None else None
    return dataclasses.replace(
        model, embedding=flatten(model.embedding), layers=layers, final_norm=final, head=flatten(model.head)
    )
