"""Pass `canonicalize`: remove identity ops and dead code. Idempotent.

- `repeat_heads(t, 1)` and `split(t, 1)` are identities: their uses are rewired to the input;
- ops whose results are never used are removed (dead code), then unused parameters.
"""

from __future__ import annotations

import dataclasses

from livc.compiler.ir.nodes import Block, Model, Sublayer
from livc.compiler.passes.rewrite import dead_code, drop_unused_params, prune_features, rename_inputs


def _identity(op_prim: str, attrs: dict[str, object]) -> bool:
    return (op_prim == "repeat_heads" and attrs.get("times") == 1) or (op_prim == "split" and attrs.get("parts") == 1)


def simplify(block: Block) -> Block:
    mapping = {op.outputs[0].name: op.inputs[0] for op in block.ops if _identity(op.prim, dict(op.attrs))}
    if not mapping:
        return prune_features(dead_code(block))
    renamed = rename_inputs(block, mapping)
    features = tuple(
        dataclasses.replace(f, name=f"{f.name.split('=')[0]}={mapping.get(f.name.split('=')[1], f.name.split('=')[1])}")
        for f in renamed.features
    )
    return prune_features(dead_code(dataclasses.replace(renamed, features=features)))


def _sublayer(sub: Sublayer) -> Sublayer:
    norm = simplify(sub.norm) if sub.norm is not None else None
    block = simplify(sub.block)
    return sub if block is sub.block and norm is sub.norm else dataclasses.replace(sub, block=block, norm=norm)


def run(model: Model, sink: object = None) -> Model:
    layers = tuple(
        dataclasses.replace(layer, sublayers=tuple(_sublayer(s) for s in layer.sublayers)) for layer in model.layers
    )
    final = simplify(model.final_norm) if model.final_norm is not None else None
    model = dataclasses.replace(
        model, embedding=simplify(model.embedding), layers=layers, final_norm=final, head=simplify(model.head)
    )
    extra = tuple(p for p in model.params if model.recursion and p.id in model.recursion.router_params)
    return drop_unused_params(model, extra)
