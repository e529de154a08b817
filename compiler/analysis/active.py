"""Active parameters per token: what a token's forward pass touches (the Mixtral/Jamba convention).

Every parameter is active except the routed experts a token does not choose: of a `moe` op with
`experts` n and `top_k` k, the expert weights (w1, w3, w2) count k/n; its router and its shared
experts count fully. As for `params`, a tensor is counted once, where it first appears, in the
walk order of `costs.analyze` (embedding, layers with each sublayer's norm then block, final norm,
head), so per-row numbers add up to the model's.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from livc.compiler.ir.nodes import Block, Model

EXPERT_ROLES = frozenset({"w1", "w3", "w2"})


def _rows(model: Model) -> Iterator[tuple[str, tuple[Block, ...]]]:
    yield "embedding", (model.embedding,)
    for index, layer in enumerate(model.layers):
        yield str(index), tuple(b for s in layer.sublayers for b in (s.norm, s.block) if b is not None)
    for key, block in (("final_norm", model.final_norm), ("head", model.head)):
        if block is not None:
            yield key, (block,)


def inactive_by_row(model: Model) -> dict[str, int]:
    """Parameters a token does not use, per report row key (rows without any are left out)."""
    sizes = {p.id: math.prod(p.shape) for p in model.params}
    seen: set[str] = set()
    out: dict[str, int] = {}
    for key, blocks in _rows(model):
        inactive = 0
        for op in (op for block in blocks for op in block.ops):
            experts, top_k = int(op.attr("experts", 0) or 0), int(op.attr("top_k", 0) or 0)
            for role, pid in op.params:
                if pid in seen:
                    continue
                seen.add(pid)
                if op.prim == "moe" and role in EXPERT_ROLES and experts > 0:
                    inactive += sizes[pid] * (experts - top_k) // experts
        if inactive:
            out[key] = inactive
    return out
