"""`.liv` text -> canonical Genome, for backbones that lie in the space (seed architectures).

The text is checked (with `vocab` set to the space's when the model has that parameter); each
sublayer must be an instance of a class the slot may take (same LIV, fixed arguments and hyper
values of the class), the layers must hold `per_layer` sublayers each, and every `share` must be
featurizer or feature-group sharing the space can express in canonical form. Finally the IR of
`decode(genome)` must equal the text's own IR (layers, norms, parameters, embedding, head), so an
encoded seed is exactly the architecture written. Anything else is a `SearchError` E0801 naming the
layer and why. Non-goals: approximate encodings (nearest genome), budgets, dtype and context (the
space's own are used).
"""

from __future__ import annotations

import dataclasses

from livc.compiler.check import check_source
from livc.compiler.elaboration.model import ElaboratedModel, LayerRef, ShareDecl
from livc.compiler.elaboration.overrides import Override, from_python
from livc.compiler.elaboration.values import Instance
from livc.compiler.ir.nodes import Model
from livc.compiler.pipeline import compile_source
from livc.dsl import ast as A
from livc.dsl.render import render_all_text
from livc.search.decode import decode
from livc.search.errors import SearchError
from livc.search.genome import Genome, SlotGene
from livc.search.repair import repair
from livc.search.space import SearchSpace


def _fail(message: str, help: str | None = None) -> SearchError:
    return SearchError("E0801", f"seed architecture does not fit the search space: {message}", help=help)


def elaborate(text: str, space: SearchSpace, name: str = "<seed>") -> tuple[ElaboratedModel, tuple[Override, ...]]:
    """The seed's one model, with `vocab` set to the space's when it has that parameter."""
    result, overrides = check_source(text, name), ()
    if result.ok and len(result.models) == 1 and _has_param(result.models[0], "vocab"):
        overrides = (from_python("vocab", space.vocab),)
        result = check_source(text, name, overrides)
    if not result.ok:
        raise SearchError("E0801", f"seed architecture {name} does not check:\n{render_all_text(result.diagnostics)}")
    if len(result.models) != 1:
        raise _fail(f"{name} defines {len(result.models)} models, a seed needs exactly one")
    return result.models[0], overrides


def _has_param(model: ElaboratedModel, param: str) -> bool:
    return any(k == param for k, _ in model.args)


def encode(text: str, space: SearchSpace, name: str = "<seed>") -> Genome:
    model, overrides = elaborate(text, space, name)
    _check_frame(model, space)
    slots = [_slot(space, s, sub.op, sub.wrapper) for s, sub in enumerate(_sublayers(model, space))]
    genome = repair(Genome(tuple(_shared(space, slots, model.shares))), space)
    _check_canonical(space, slots, model.shares, genome)
    _check_same_ir(model, text, name, overrides, space, genome)
    return genome


def _check_frame(model: ElaboratedModel, space: SearchSpace) -> None:
    if model.recursion is not None:
        raise _fail("Mixture-of-Recursions backbones are not in the space")
    width = dict(model.embedding.args).get("d")
    if width != space.width:
        raise _fail(f"the seed's width is {width}, the space's {space.width}")


def _sublayers(model: ElaboratedModel, space: SearchSpace) -> list:
    out = []
    for i, layer in enumerate(model.layers):
        if len(layer.sublayers) != space.per_layer:
            raise _fail(f"layer {i} has {len(layer.sublayers)} sublayer(s); the space puts {space.per_layer} in each")
        out.extend(layer.sublayers)
    if len(out) != space.slots:
        raise _fail(f"the seed has {len(out)} LIVs, the space {space.slots} slots")
    return out


def _slot(space: SearchSpace, slot: int, op: Instance, wrapper: object) -> SlotGene:
    where = f"layers[{slot // space.per_layer}][{slot % space.per_layer}]"
    if wrapper is not None:
        raise _fail(f"{where} has its own residual wrapper; the space uses the model's pre-norm")
    args = dict(op.args)
    tried = []
    for cls in space.allowed(slot):
        c = space.classes[cls]
        if (c.ctor.module, c.ctor.liv) != (op.definition.module, op.definition.name):
            continue
        tried.append(c.name)
        if any(args.get(k) != v for k, v in c.ctor.fixed):
            continue
        if all(args.get(h.name) in h.values for h in c.hypers):
            hypers = tuple(h.values.index(args[h.name]) for h in c.hypers)
            return SlotGene(cls, slot, 0, slot, 0, hypers)
    shown = ", ".join(f"{k} = {v}" for k, v in op.args if k != "d")
    names = ", ".join(space.classes[i].name for i in space.allowed(slot))
    reason = f"no class with these values (tried {', '.join(tried)})" if tried else f"slot {slot} takes {names}"
    raise _fail(f"{where} is {op.definition.name}({shown}): {reason}")


def _slot_of(space: SearchSpace, ref: LayerRef) -> int:
    if ref.sublayer is None:
        raise _fail("`share weights` of whole layers is not in the space")
    return ref.layer * space.per_layer + ref.sublayer


def _shared(space: SearchSpace, slots: list[SlotGene], shares: tuple[ShareDecl, ...]) -> list[SlotGene]:
    out = list(slots)
    for share in shares:
        if share.kind is A.ShareKind.WEIGHTS:
            raise _fail("`share weights` is not in the space (only featurizer and feature-group sharing)")
        source = _slot_of(space, share.source)
        for member in (source, *(_slot_of(space, t) for t in share.targets)):
            out[member] = _joined(space, out[member], share, source)
    return out


def _joined(space: SearchSpace, gene: SlotGene, share: ShareDecl, source: int) -> SlotGene:
    if share.kind is A.ShareKind.FEATURIZER:
        if gene.fz_strategy and gene.fz_group != source:
            raise _fail(f"a LIV shares featurizers with two sources ({gene.fz_group} and {source})")
        return dataclasses.replace(gene, fz_group=source, fz_strategy=1)
    op = space.classes[gene.cls]
    wanted = set(share.groups)
    matches = [i + 1 for i, groups in enumerate(op.fg_strategies) if set(groups) == wanted]
    if not matches:
        legal = "; ".join(", ".join(g) for g in op.fg_strategies) or "none"
        raise _fail(f"{op.name} cannot share features {', '.join(share.groups)} (legal: {legal})")
    if gene.fg_strategy and (gene.fg_group, gene.fg_strategy) != (source, matches[0]):
        raise _fail(f"a LIV takes features from two sources ({gene.fg_group} and {source})")
    return dataclasses.replace(gene, fg_group=source, fg_strategy=matches[0])


def _check_canonical(space: SearchSpace, slots: list[SlotGene], shares: tuple[ShareDecl, ...], genome: Genome) -> None:
    raw = _shared(space, slots, shares)
    for s, (a, b) in enumerate(zip(raw, genome.slots)):
        if a != b:
            raise _fail(
                f"the sharing of slot {s} is not canonical in this space",
                help="share only between LIVs of one class, from the earliest LIV of each group, with equal "
                "featurizer / feature shapes, and features only into later layers",
            )


def _ir(text: str, name: str, overrides: tuple[Override, ...]) -> Model | None:
    result = compile_source(text, name, stop_after="canonicalize", overrides=overrides)
    return result.models[0] if result.ok and len(result.models) == 1 else None


def _structure(model: Model) -> tuple:
    return (model.d_model, model.vocab, model.embedding, model.final_norm, model.head, model.params)


def _check_same_args(seed: ElaboratedModel, ours: ElaboratedModel, space: SearchSpace) -> None:
    pairs = zip(_sublayers(seed, space), _sublayers(ours, space))
    for s, (a, b) in enumerate(pairs):
        theirs, mine = dict(a.op.args), dict(b.op.args)
        diff = [k for k in theirs if theirs[k] != mine.get(k)]
        if diff:
            where = f"layers[{s // space.per_layer}][{s % space.per_layer}]"
            shown = ", ".join(f"{k} = {theirs[k]!r} (the space writes {mine.get(k)!r})" for k in diff)
            raise _fail(f"{where} {a.op.definition.name}: {shown}")


def _check_same_ir(
    model: ElaboratedModel, text: str, name: str, overrides: tuple[Override, ...], space: SearchSpace, genome: Genome
) -> None:
    decoded = decode(genome, space)
    _check_same_args(model, elaborate(decoded, space, "<decoded>")[0], space)
    seed, ours = _ir(text, name, overrides), _ir(decoded, "<decoded>", ())
    if seed is None or ours is None:
        raise _fail("the seed or its decoded genome does not compile")
    for i, (a, b) in enumerate(zip(seed.layers, ours.layers)):
        if a != b:
            raise _fail(f"layer {i} differs from the space's rendering of it (norms, defaults or sharing)")
    if _structure(seed) != _structure(ours):
        raise _fail("the embedding, final norm, head or parameters differ from the space's rendering")
