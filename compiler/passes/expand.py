"""Pass `expand`: make every kind of sharing explicit as parameter identity.

- `share weights`: the target's parameters become the source's (layers must match op for op);
- `share featurizer`: the target's featurizer parameters become the source's;
- `share features g, ...`: the target no longer computes groups g; a `shared_feature` op imports the
  source's values. A token mixer whose K and V are both imported reads a cache it does not own: attr
  `cache_owner` names the sublayer that owns it (`layers[i][j]`, followed through chains of sharing to the
  one that stores it) and `cache_entry` that sublayer's attention (its output name) over exactly the same
  K and V, so a block with several attentions reads one entry per attention (`cache_key`);
- Mixture-of-Recursions: layers of recursion step r > 0 use step 0's parameters (norms included);
  with `kv = kv_share`, their attention K/V are imported from step 0; router parameters are added.
Incompatible sharing is E0314. Postcondition: `model.shares == ()`; unused parameters removed.
"""

from __future__ import annotations

import dataclasses
import re

from livc.compiler.ir.nodes import Block, Model, Op, Param, Role, Share, Sublayer, Value
from livc.compiler.passes.rewrite import (
    before_repeats,
    dead_code,
    drop_unused_params,
    prune_features,
    rename_inputs,
    rename_params_in_block,
    replace_sublayer,
)
from livc.dsl.diagnostics import DiagnosticSink, error
from livc.dsl.source import NO_SPAN, Span


class Incompatible(Exception):
    pass


def _ops(block: Block, roles: set[Role] | None) -> list[Op]:
    return [op for s in block.sections if roles is None or s.role in roles for op in s.ops]


def param_mapping(src: Block, dst: Block, roles: set[Role] | None = None) -> dict[str, str]:
    """dst param id -> src param id, pairing ops in order; raises Incompatible if they differ."""
    a, b = _ops(src, roles), _ops(dst, roles)
    if [op.prim for op in a] != [op.prim for op in b]:
        raise Incompatible(f"{dst.name} and {src.name} have different operations ({_first_difference(a, b)})")
    mapping: dict[str, str] = {}
    for sop, dop in zip(a, b):
        if [r for r, _ in sop.params] != [r for r, _ in dop.params]:
            raise Incompatible(f"{dop.prim} parameters differ")
        mapping.update({dp: sp for (_, sp), (_, dp) in zip(sop.params, dop.params)})
    return mapping


def _first_difference(src: list[Op], dst: list[Op]) -> str:
    """Where two op lists part: 'op 4 is `rope` in the source, `shared_feature` in the target'."""
    i = next((i for i, (x, y) in enumerate(zip(src, dst)) if x.prim != y.prim), min(len(src), len(dst)))
    return f"op {i + 1} is {_op_at(src, i)} in the source, {_op_at(dst, i)} in the target"


def _op_at(ops: list[Op], i: int) -> str:
    return f"`{ops[i].prim}`" if i < len(ops) else "missing"


def _check_shapes(model: Model, mapping: dict[str, str]) -> None:
    shapes = {p.id: p.shape for p in model.params}
    for dst, src in mapping.items():
        if shapes.get(dst) != shapes.get(src):
            raise Incompatible(f"{dst} {shapes.get(dst)} vs {src} {shapes.get(src)}")


def _sub(model: Model, ref: tuple[int, int | None]) -> Sublayer:
    return model.layers[ref[0]].sublayers[ref[1] or 0]


def _share_weights(model: Model, src: tuple[int, int | None], dst: tuple[int, int | None]) -> Model:
    subs = range(len(model.layers[dst[0]].sublayers)) if dst[1] is None else [dst[1]]
    for j in subs:
        s, d = _sub(model, (src[0], j if src[1] is None else src[1])), _sub(model, (dst[0], j))
        model = replace_sublayer(model, dst[0], j, _tied_sublayer(model, s, d))
    return model


def _tied_sublayer(model: Model, src: Sublayer, dst: Sublayer) -> Sublayer:
    mapping = param_mapping(src.block, dst.block)
    if src.norm is not None and dst.norm is not None:
        mapping |= param_mapping(src.norm, dst.norm)
    _check_shapes(model, mapping)
    norm = rename_params_in_block(dst.norm, mapping) if dst.norm is not None else None
    return dataclasses.replace(dst, block=rename_params_in_block(dst.block, mapping), norm=norm)


def _share_featurizer(model: Model, src: tuple[int, int | None], dst: tuple[int, int | None]) -> Model:
    s, d = _sub(model, src), _sub(model, dst)
    mapping = param_mapping(s.block, d.block, {Role.FEATURIZER})
    _check_shapes(model, mapping)
    return replace_sublayer(
        model, dst[0], dst[1] or 0, dataclasses.replace(d, block=rename_params_in_block(d.block, mapping))
    )


def _feature(block: Block, group: str) -> Value:
    for f in block.features:
        name, value = f.name.split("=", 1)
        if name == group:
            return Value(name=value, type=f.type)
    raise Incompatible(f"{block.name} has no feature group '{group}'")


def import_values(block: Block, imports: list[tuple[str, Value, str]], source: Block) -> Block:
    """Replace values computed in `block` by `shared_feature` ops: (local value, the source block's value,
    source label). Token mixers reading only imported K/V get the source's cache (`_mark_cache_owner`)."""
    new_ops, mapping, origins = [], {}, {}
    for local, value, label in imports:
        name = f"{local}_shared"
        new_ops.append(
            Op(
                prim="shared_feature",
                inputs=(),
                outputs=(Value(name=name, type=value.type),),
                attrs=(("source", label),),
            )
        )
        mapping[local] = name
        origins[name] = (value.name, label.rsplit(".", 1)[1])
    renamed = rename_inputs(block, mapping)
    renamed = _mark_cache_owner(renamed, origins, imports[0][2].rsplit(".", 1)[0], source)
    features = tuple(
        dataclasses.replace(
            f, name=f.name.split("=")[0] + "=" + mapping.get(f.name.split("=")[1], f.name.split("=")[1])
        )
        for f in renamed.features
    )
    sections = list(renamed.sections)
    first = next((i for i, s in enumerate(sections) if s.role is Role.FEATURIZER), 0)
    sections[first] = dataclasses.replace(sections[first], ops=tuple(new_ops) + sections[first].ops)
    return prune_features(dead_code(dataclasses.replace(renamed, sections=tuple(sections), features=features)))


def _mark_cache_owner(block: Block, origins: dict[str, tuple[str, str]], owner: str, source: Block) -> Block:
    """A token mixer whose K and V both come from another layer uses that layer's cache: the entry of the
    source attention over the same K and V (`origins`: imported value -> the source's value, its group)."""

    def mark(op: Op) -> Op:
        if op.prim not in ("attention", "linear_attention", "gated_scan"):
            return op
        hits = [name in origins for name in op.inputs[1:3]]
        if all(hits):
            if op.prim != "attention":  # the backends reject shared recurrent state (no entry to name)
                return dataclasses.replace(op, attrs=op.attrs + (("cache_owner", owner),))
            entry = _owner_entry(op, block.name, source, origins, owner)
            return dataclasses.replace(op, attrs=op.attrs + (("cache_owner", owner), ("cache_entry", entry)))
        if any(hits):
            raise Incompatible(
                f"{block.name} would take only one of its keys/values from {owner}: share both "
                "groups that feed its token mixer (e.g. `share features k, v`) so one cache serves both"
            )
        return op

    return dataclasses.replace(
        block, sections=tuple(dataclasses.replace(s, ops=tuple(mark(op) for op in s.ops)) for s in block.sections)
    )


def _owner_entry(op: Op, reader: str, source: Block, origins: dict[str, tuple[str, str]], owner: str) -> str:
    """The output name of `source`'s attention that caches exactly the K and V `op` imports (heads before
    any repeat, as caches store them) with a window at least `op`'s; Incompatible if there is none."""
    producers = {o.name: p for p in source.ops for o in p.outputs}
    wanted = tuple(before_repeats(origins[name][0], producers) for name in op.inputs[1:3])
    pairs = [a for a in source.ops if a.prim == "attention" and _kv_of(a, producers) == wanted]
    if not pairs:
        k, v = (origins[name][1] for name in op.inputs[1:3])
        raise Incompatible(
            f"attention {op.outputs[0].name} of {reader} would read keys '{k}' and values '{v}' from {owner}, "
            "but no attention there attends over both, so no cache holds them: share the groups of one "
            "attention of the source"
        )
    ours = _window(op)
    covering = [a for a in pairs if _window(a) >= ours]
    if not covering:
        theirs = max(_window(a) for a in pairs)
        raise Incompatible(
            f"{reader} attends {'all' if ours == float('inf') else int(ours)} past tokens "
            f"but {owner} keeps only {int(theirs)} (its sliding window): the shared cache would be too short"
        )
    return covering[0].outputs[0].name


def _kv_of(op: Op, producers: dict[str, Op]) -> tuple[str, str]:
    return before_repeats(op.inputs[1], producers), before_repeats(op.inputs[2], producers)


def _window(op: Op) -> float:
    """An attention's window (inf for full attention)."""
    window = op.attr("window")
    return float(window) if isinstance(window, int) else float("inf")


def cache_key(op: Op) -> str | None:
    """The cache key stem (add ".k" / ".v") a shared attention reads, e.g. "layers.0.0.y2"; None for an op
    that owns its cache. Backends use this instead of guessing the owner's attention."""
    owner, entry = op.attr("cache_owner"), op.attr("cache_entry")
    if not owner:
        return None
    return _LABEL.sub(r".\1", str(owner)).lstrip(".") + f".{entry}"


_LABEL = re.compile(r"\[(\d+)\]")


def _follow_chains(model: Model) -> Model:
    """A shared attention whose owner's attention itself reads another layer's cache reads that cache: every
    `cache_owner` / `cache_entry` ends at the attention that stores it (owners are earlier layers, so layers
    are resolved in order and an owner is already final)."""
    for i, layer in enumerate(model.layers):
        for j, sub in enumerate(layer.sublayers):
            block = _rooted(model, sub.block)
            if block is not sub.block:
                model = replace_sublayer(model, i, j, dataclasses.replace(sub, block=block))
    return model


def _rooted(model: Model, block: Block) -> Block:
    def root(op: Op) -> Op:
        if op.prim != "attention" or not op.attr("cache_owner"):
            return op
        i, j = (int(n) for n in _LABEL.findall(str(op.attr("cache_owner"))))
        owner = model.layers[i].sublayers[j].block
        entry = next((a for a in owner.ops if a.outputs[0].name == op.attr("cache_entry")), None)
        if entry is None or not entry.attr("cache_owner"):  # a missing entry: the backends report it
            return op
        moved = {"cache_owner": entry.attr("cache_owner"), "cache_entry": entry.attr("cache_entry")}
        return dataclasses.replace(op, attrs=tuple((k, moved.get(k, v)) for k, v in op.attrs))

    sections = tuple(dataclasses.replace(s, ops=tuple(root(op) for op in s.ops)) for s in block.sections)
    return block if sections == block.sections else dataclasses.replace(block, sections=sections)


def _base_type(block: Block, value: Value) -> object:
    """The type of a feature before any `repeat_heads` (its stored head layout)."""
    producers = {o.name: op for op in block.ops for o in op.outputs}
    types = {o.name: o.type for op in block.ops for o in op.outputs}
    return types.get(before_repeats(value.name, producers), value.type)


def _share_features(model: Model, share: Share, dst: tuple[int, int | None]) -> Model:
    s, d = _sub(model, share.source), _sub(model, dst)
    label = f"layers[{share.source[0]}][{share.source[1] or 0}]"
    imports = []
    for group in share.groups:
        theirs, ours = _feature(s.block, group), _feature(d.block, group)
        if theirs.type != ours.type or _base_type(s.block, theirs) != _base_type(d.block, ours):
            raise Incompatible(
                f"feature '{group}' is stored as {_base_type(s.block, theirs)} in {share_label(share)} "
                f"but as {_base_type(d.block, ours)} in layers[{dst[0]}][{dst[1] or 0}] "
                "(different head layouts)"
            )
        imports.append((ours.name, theirs, f"{label}.{group}"))
    block = import_values(d.block, imports, s.block)
    return replace_sublayer(model, dst[0], dst[1] or 0, dataclasses.replace(d, block=block))


def share_label(share: Share) -> str:
    return f"layers[{share.source[0]}][{share.source[1] or 0}]"


def _apply(model: Model, share: Share) -> Model:
    for dst in share.targets:
        if share.kind == "features" and dst[0] <= share.source[0]:
            raise Incompatible(
                f"layers[{dst[0]}] cannot use features of {share_label(share)}: features flow "
                "from an earlier layer to later ones (decoding computes layers in order)"
            )
        if share.kind == "weights":
            model = _share_weights(model, share.source, dst)
        elif share.kind == "featurizer":
            model = _share_featurizer(model, share.source, dst)
        else:
            model = _share_features(model, share, dst)
    return model


def _report(sink: DiagnosticSink, span: Span, message: str, code: str = "E0314") -> None:
    sink.report(error(code, "incompatible sharing", span, message))


def _recursion(model: Model, sink: DiagnosticSink) -> Model | None:
    rec = model.recursion
    if rec is None:
        return model
    for step in rec.steps[1:]:
        for base, layer in zip(rec.steps[0], step):
            try:
                model = _share_weights(model, (base, None), (layer, None))
                if rec.kv == "kv_share":
                    model = _share_kv(model, base, layer)
            except Incompatible as exc:
                _report(sink, model.span, f"MoR layer {layer} cannot reuse layer {base}: {exc}", "E0311")
                return None
    return _with_routers(model)


def _share_kv(model: Model, base: int, layer: int) -> Model:
    for j, sub in enumerate(model.layers[layer].sublayers):
        src = model.layers[base].sublayers[j].block
        attn_src = [op for op in src.ops if op.prim == "attention"]
        attn_dst = [op for op in sub.block.ops if op.prim == "attention"]
        if not attn_src or not attn_dst:
            continue
        label = f"layers[{base}][{j}]"
        types = {o.name: o.type for op in src.ops for o in op.outputs}
        imports = [
            (
                attn_dst[0].inputs[i],
                Value(name=attn_src[0].inputs[i], type=types[attn_src[0].inputs[i]]),
                f"{label}.{'kv'[i - 1]}",
            )
            for i in (1, 2)
        ]
        block = import_values(sub.block, imports, src)
        model = replace_sublayer(model, layer, j, dataclasses.replace(sub, block=block))
    return model


def _with_routers(model: Model) -> Model:
    rec = model.recursion
    assert rec is not None
    d = model.d_model
    if rec.router == "expert_choice":
        params = tuple(Param(id=f"recursion.router.{r}.weight", shape=(d,)) for r in range(rec.recursions))
    else:
        params = (Param(id="recursion.router.weight", shape=(rec.recursions, d)),)
    model = dataclasses.replace(model, recursion=dataclasses.replace(rec, router_params=tuple(p.id for p in params)))
    return drop_unused_params(model, params)


def run(model: Model, sink: DiagnosticSink) -> Model | None:
    failed = False
    for share in model.shares:
        try:
            model = _apply(model, share)
        except Incompatible as exc:
            _report(sink, share.span if share.span is not NO_SPAN else model.span, str(exc))
            failed = True
    if failed:
        return None
    expanded = _recursion(dataclasses.replace(model, shares=()), sink)
    expanded = _follow_chains(expanded) if expanded is not None else None
    return drop_unused_params(expanded) if expanded is not None and expanded.recursion is None else expanded
