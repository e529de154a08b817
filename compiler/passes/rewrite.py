"""Small IR rewriting helpers shared by passes: parameter renaming, value replacement, dead code."""

from __future__ import annotations

import dataclasses

from livc.compiler.ir.nodes import Block, Layer, Model, Op, Param, Section, Sublayer


def rename_params_in_block(block: Block, mapping: dict[str, str]) -> Block:
    def op_fn(op: Op) -> Op:
        return dataclasses.replace(op, params=tuple((r, mapping.get(p, p)) for r, p in op.params))

    return map_ops(block, op_fn)


def map_ops(block: Block, fn: object) -> Block:
    sections = tuple(dataclasses.replace(s, ops=tuple(fn(op) for op in s.ops)) for s in block.sections)  # type: ignore[operator]
    return dataclasses.replace(block, sections=sections)


def rename_inputs(block: Block, mapping: dict[str, str]) -> Block:
    def op_fn(op: Op) -> Op:
        return dataclasses.replace(op, inputs=tuple(mapping.get(i, i) for i in op.inputs))

    renamed = map_ops(block, op_fn)
    return dataclasses.replace(renamed, output=mapping.get(block.output, block.output))


def dead_code(block: Block) -> Block:
    """Remove ops none of whose outputs are used (by a later op or as the block output)."""
    live = {block.output}
    kept_rev: list[tuple[int, Op]] = []
    ops = [(i, op) for i, s in enumerate(block.sections) for op in s.ops]
    for index, op in reversed(ops):
        if any(o.name in live for o in op.outputs):
            kept_rev.append((index, op))
            live.update(op.inputs)
    if len(kept_rev) == len(ops):
        return block
    keep = {id(op) for _, op in kept_rev}
    sections = tuple(dataclasses.replace(s, ops=tuple(op for op in s.ops if id(op) in keep)) for s in block.sections)
    return dataclasses.replace(block, sections=sections)


def prune_features(block: Block) -> Block:
    """Drop feature records whose value no op produces any more (after sharing removed them)."""
    produced = {o.name for op in block.ops for o in op.outputs} | {block.input.name}
    features = tuple(f for f in block.features if f.name.split("=", 1)[1] in produced)
    return block if len(features) == len(block.features) else dataclasses.replace(block, features=features)


def before_repeats(name: str, producers: dict[str, Op]) -> str:
    """The value that `name` repeats heads of (itself if it is not a `repeat_heads` output)."""
    op = producers.get(name)
    while op is not None and op.prim == "repeat_heads":
        name = op.inputs[0]
        op = producers.get(name)
    return name


def used_param_ids(model: Model) -> set[str]:
    return {pid for block in all_blocks(model) for op in block.ops for _, pid in op.params}


def all_blocks(model: Model) -> list[Block]:
    blocks = [model.embedding]
    for layer in model.layers:
        for sub in layer.sublayers:
            blocks.append(sub.block)
            if sub.norm is not None:
                blocks.append(sub.norm)
    blocks += [b for b in (model.final_norm, model.head) if b is not None]
    return blocks


def named_blocks(model: Model) -> list[tuple[str, Block]]:
    """(instance prefix, block) in the backends' instance order: the embedding; per sublayer its norm
    (`layers.i.j.norm`) then its block (`layers.i.j`); the final norm; the head. Prefixes are the state-dict
    and cache-key prefixes both backends use."""
    named = [("embedding", model.embedding)]
    for layer in model.layers:
        for j, sub in enumerate(layer.sublayers):
            named += [(f"layers.{layer.index}.{j}.norm", sub.norm)] if sub.norm is not None else []
            named.append((f"layers.{layer.index}.{j}", sub.block))
    return named + ([("final_norm", model.final_norm)] if model.final_norm else []) + [("head", model.head)]


def drop_unused_params(model: Model, extra: tuple[Param, ...] = ()) -> Model:
    used = used_param_ids(model) | {p.id for p in extra}
    unique = {p.id: p for p in model.params + extra}
    kept = tuple(p for p in unique.values() if p.id in used)
    return dataclasses.replace(model, params=kept)


def replace_sublayer(model: Model, i: int, j: int, sub: Sublayer) -> Model:
    layer = model.layers[i]
    subs = layer.sublayers[:j] + (sub,) + layer.sublayers[j + 1 :]
    layers = model.layers[:i] + (dataclasses.replace(layer, sublayers=subs),) + model.layers[i + 1 :]
    return dataclasses.replace(model, layers=layers)


def insert_ops(section: Section, ops: tuple[Op, ...]) -> Section:
    return dataclasses.replace(section, ops=ops + section.ops)


__all__ = ["Layer"]
