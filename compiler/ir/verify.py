"""The IR verifier: invariants every stage keeps, as a list of located messages (empty = valid).

Checked for every model:
- SSA: in each block every op input is defined earlier (the block input counts as defined;
  `shared_feature` ops take no inputs) and every value is defined once; the block output exists;
  feature records `group=value` name existing values of the same type;
- every op's `prim` is known (`passes.shapes.RULES` plus `shared_feature`);
- parameters: ids are unique, every id an op names is in `model.params`, every param in the table is
  named by an op or listed in `model.recursion.router_params`;
- types: each op's outputs are what its shape rule gives for its input types and attrs, and its
  parameters have the shapes the rule gives by role. The rule is called with the primitive's tensor
  parameter names (`primitives.PRIMITIVES[prim].params`, in order) bound to the input types and the
  attrs by name. Exceptions: `long_conv` keeps its filter as a string attr in the IR
  (`"implicit_filter(order = 64, ...)"`), so only "output type == input type" is checked for it; a tied
  `lm_head` names the embedding table, which must be [vocab, d];
- widths: the embedding maps [] -> [d_model], every sublayer block and norm and the final norm map
  [d_model] -> [d_model], the head maps [d_model] -> [vocab];
- sections: token mixers sit only in token_mix or body sections;
- a `shared_feature` op's `source` attr (`layers[i][j].group`) names a feature group of that sublayer,
  of the type the op imports;
- layer indices are 0..n-1; sharing declarations and recursion steps name existing layers; recursion
  steps are disjoint and of equal length, one per recursion.
With `stage` given (a pipeline stage name), also its postconditions: after `expand`,
`model.shares == ()`; after `lower`, blocks have only `body` sections.

Messages start with where: `layers[3][0] GQA: op 5 (attention): ...`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

from livc.compiler.ir.nodes import Block, Model, Op, Param, Role, TensorType
from livc.compiler.ir.primitives import PRIMITIVES, Kind
from livc.compiler.passes.shapes import RULES, ShapeError, Typed
from livc.compiler.passes.structure import TOKEN_MIXERS

__all__ = ["KNOWN_PRIMS", "STAGES", "verify"]

STAGES = ("build", "expand", "canonicalize", "lower")
KNOWN_PRIMS = frozenset(RULES) | {"shared_feature"}
# Tensor operands of the rules that are not language primitives (operators and negation).
_OPERATOR_OPERANDS = {
    "add": ("left", "right"),
    "sub": ("left", "right"),
    "mul": ("left", "right"),
    "div": ("left", "right"),
    "neg": ("t",),
}
_SOURCE = re.compile(r"layers\[(\d+)\]\[(\d+)\]\.(\w+)")
_TOKEN_MIX_ROLES = (Role.TOKEN_MIX, Role.BODY)
_RULE_FAILURES = (KeyError, TypeError, ValueError, AssertionError, IndexError, AttributeError)

Types = dict[str, TensorType]


def verify(model: Model, stage: str | None = None) -> list[str]:
    """Every violated invariant of `model`, located; `stage` adds that stage's postconditions."""
    if stage is not None and stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r} (expected one of {', '.join(STAGES)})")
    params = {p.id: p for p in model.params}
    problems = _param_table(model)
    for where, block, expected in _blocks(model):
        problems += _block(block, f"{where} {block.name}", params, expected, stage)
    return problems + _shared_features(model) + _layers(model) + _recursion(model) + _shares(model, stage)


# ---- model level -------------------------------------------------------------------------------


def _blocks(model: Model) -> Iterator[tuple[str, Block, tuple[TensorType, TensorType]]]:
    """(where, block, expected input -> output types) for every block of the model."""
    d, scalar = TensorType(shape=(model.d_model,)), TensorType(shape=())
    yield "embedding", model.embedding, (scalar, d)
    for i, layer in enumerate(model.layers):
        for j, sub in enumerate(layer.sublayers):
            if sub.norm is not None:
                yield f"layers[{i}][{j}].norm", sub.norm, (d, d)
            yield f"layers[{i}][{j}]", sub.block, (d, d)
    if model.final_norm is not None:
        yield "final_norm", model.final_norm, (d, d)
    yield "head", model.head, (d, TensorType(shape=(model.vocab,)))


def _param_table(model: Model) -> list[str]:
    counts = Counter(p.id for p in model.params)
    problems = [f"params: @{pid} is declared {n} times" for pid, n in counts.items() if n > 1]
    used = {pid for _, block, _ in _blocks(model) for op in block.ops for _, pid in op.params}
    routers = model.recursion.router_params if model.recursion is not None else ()
    problems += [f"params: @{pid} is not used by any op" for pid in counts if pid not in used and pid not in routers]
    return problems + [
        f"recursion: router parameter @{pid} is not in the parameter table" for pid in routers if pid not in counts
    ]


def _shared_features(model: Model) -> list[str]:
    return [
        f"{where} {block.name}: op {index} (shared_feature): {message}"
        for where, block, _ in _blocks(model)
        for index, op in enumerate(block.ops)
        if op.prim == "shared_feature"
        for message in _shared_source(model, op)
    ]


def _shared_source(model: Model, op: Op) -> list[str]:
    source = op.attr("source")
    found = _SOURCE.fullmatch(source) if isinstance(source, str) else None
    if found is None:
        return [f"source {source!r} is not 'layers[i][j].group'"]
    i, j, group = int(found[1]), int(found[2]), found[3]
    if not _exists(model, (i, j)):
        return [f"source {source} is not a sublayer of this model"]
    features = {f.name.partition("=")[0]: f.type for f in model.layers[i].sublayers[j].block.features}
    if group not in features:
        return [f"source {source}: that block has no feature group '{group}'"]
    imported = [v.type for v in op.outputs]
    return [] if imported == [features[group]] else [f"imports {_types(op)} but {source} is {features[group]}"]


def _layers(model: Model) -> list[str]:
    return [f"layers[{i}]: has index {layer.index}" for i, layer in enumerate(model.layers) if layer.index != i]


def _recursion(model: Model) -> list[str]:
    rec, n = model.recursion, len(model.layers)
    if rec is None:
        return []
    problems = (
        []
        if len(rec.steps) == rec.recursions
        else [f"recursion: {len(rec.steps)} steps for {rec.recursions} recursions"]
    )
    if len({len(step) for step in rec.steps}) > 1:
        problems.append(f"recursion: steps have different lengths {[len(step) for step in rec.steps]}")
    seen = Counter(i for step in rec.steps for i in step)
    problems += [f"recursion: layer {i} is in {k} steps" for i, k in sorted(seen.items()) if k > 1]
    return problems + [
        f"recursion: step {r} names layer {i}, but the model has {n} layers"
        for r, step in enumerate(rec.steps)
        for i in step
        if not 0 <= i < n
    ]


def _shares(model: Model, stage: str | None) -> list[str]:
    if stage is not None and stage != "build" and model.shares:
        return [f"shares: {len(model.shares)} sharing declarations remain after expand"]
    return [
        f"shares[{k}]: {_where(loc)} is not a sublayer of this model"
        for k, share in enumerate(model.shares)
        for loc in (share.source, *share.targets)
        if not _exists(model, loc)
    ]


def _exists(model: Model, loc: tuple[int, int | None]) -> bool:
    i, j = loc
    return 0 <= i < len(model.layers) and (j is None or 0 <= j < len(model.layers[i].sublayers))


def _where(loc: tuple[int, int | None]) -> str:
    return f"layers[{loc[0]}]" + (f"[{loc[1]}]" if loc[1] is not None else "")


# ---- blocks ----------------------------------------------------------------------------------


def _block(
    block: Block, label: str, params: dict[str, Param], expected: tuple[TensorType, TensorType], stage: str | None
) -> list[str]:
    types: Types = {block.input.name: block.input.type}
    problems: list[str] = []
    for index, op in enumerate(block.ops):
        problems += [f"{label}: op {index} ({op.prim}): {m}" for m in _op(op, types, params)]
        problems += [f"{label}: op {index} ({op.prim}): defines %{v.name} twice" for v in op.outputs if v.name in types]
        types.update({v.name: v.type for v in op.outputs})
    problems += [f"{label}: {m}" for m in _interface(block, types, expected) + _features(block, types)]
    return problems + [f"{label}: {m}" for m in _sections(block, stage)]


def _interface(block: Block, types: Types, expected: tuple[TensorType, TensorType]) -> list[str]:
    if block.output not in types:
        return [f"output %{block.output} is not defined"]
    actual = (block.input.type, types[block.output])
    if actual == expected:
        return []
    return [f"maps {actual[0]} -> {actual[1]}, expected {expected[0]} -> {expected[1]}"]


def _features(block: Block, types: Types) -> list[str]:
    problems = []
    for feature in block.features:
        group, _, name = feature.name.partition("=")
        if not name:
            problems.append(f"feature record '{feature.name}' is not group=value")
        elif name not in types:
            problems.append(f"feature {group} names undefined value %{name}")
        elif types[name] != feature.type:
            problems.append(f"feature {group} is recorded as {feature.type} but %{name} is {types[name]}")
    return problems


def _sections(block: Block, stage: str | None) -> list[str]:
    problems = [
        f"section {k} is {s.role.value}, but lowered blocks have only body sections"
        for k, s in enumerate(block.sections)
        if stage == "lower" and s.role is not Role.BODY
    ]
    index = 0
    for section in block.sections:
        for op in section.ops:
            if op.prim in TOKEN_MIXERS and section.role not in _TOKEN_MIX_ROLES:
                problems.append(
                    f"op {index} ({op.prim}): {op.prim} mixes tokens but sits in a {section.role.value} section"
                )
            index += 1
    return problems


# ---- ops -------------------------------------------------------------------------------------


def _op(op: Op, types: Types, params: dict[str, Param]) -> list[str]:
    if op.prim not in KNOWN_PRIMS:
        return [f"unknown primitive '{op.prim}'"]
    problems = [
        f"parameter @{pid} ({role}) is not in the parameter table" for role, pid in op.params if pid not in params
    ]
    if op.prim == "shared_feature":
        return problems + (["shared_feature takes no inputs"] if op.inputs else [])
    undefined = [name for name in op.inputs if name not in types]
    problems += [f"uses undefined value %{name}" for name in undefined]
    if undefined:
        return problems
    return problems + _typing(op, [types[name] for name in op.inputs], params)


def _tensor_operands(op: Op) -> tuple[str, ...]:
    signature = PRIMITIVES.get(op.prim)
    if signature is not None:
        return tuple(p.name for p in signature.params if p.kind is Kind.TENSOR)
    scalars = {name for name, _ in op.attrs}
    return tuple(name for name in _OPERATOR_OPERANDS.get(op.prim, ("t",)) if name not in scalars)


_TYPED_OK: set[object] = set()  # signatures already verified: a process-wide memo of a pure check
_TYPED_OK_LIMIT = 100_000


def _typing(op: Op, inputs: list[TensorType], params: dict[str, Param]) -> list[str]:
    """Shape-rule check of one op; identical signatures (10,000 identical layers) are checked once."""
    shapes = tuple((role, params[pid].shape if pid in params else None) for role, pid in op.params)
    key = (op.prim, op.attrs, tuple(inputs), tuple(v.type for v in op.outputs), shapes)
    try:
        if key in _TYPED_OK:
            return []
    except TypeError:  # an unhashable attr: no memo
        return _typing_uncached(op, inputs, params)
    problems = _typing_uncached(op, inputs, params)
    if not problems:
        if len(_TYPED_OK) >= _TYPED_OK_LIMIT:
            _TYPED_OK.clear()
        _TYPED_OK.add(key)
    return problems


def _typing_uncached(op: Op, inputs: list[TensorType], params: dict[str, Param]) -> list[str]:
    if op.prim == "long_conv":  # the filter is a string in the IR: check only that the shape is kept
        same = len(inputs) == 1 and [v.type for v in op.outputs] == inputs
        return [] if same else [f"outputs {_types(op)} but long_conv keeps its input type {inputs}"]
    names = _tensor_operands(op)
    if len(names) != len(inputs):
        return [f"takes {len(names)} tensor inputs ({', '.join(names)}), got {len(inputs)}"]
    try:
        typed = RULES[op.prim](dict(op.attrs) | dict(zip(names, inputs, strict=True)))
    except ShapeError as exc:
        return [f"the shape rule rejects its inputs: {exc}"]
    except _RULE_FAILURES as exc:
        return [f"the shape rule cannot run on these attrs: {type(exc).__name__}: {exc}"]
    return _outputs(op, typed) + _param_shapes(op, _expected_params(op, typed, inputs), params)


def _types(op: Op) -> str:
    return "(" + ", ".join(str(v.type) for v in op.outputs) + ")"


def _outputs(op: Op, typed: Typed) -> list[str]:
    if len(op.outputs) != len(typed.outputs):
        return [f"has {len(op.outputs)} outputs, but the shape rule gives {len(typed.outputs)}"]
    return [
        f"output %{v.name} is {v.type} but the shape rule gives {list(shape)}"
        for v, shape in zip(op.outputs, typed.outputs, strict=True)
        if v.type.shape != shape
    ]


def _expected_params(op: Op, typed: Typed, inputs: list[TensorType]) -> dict[str, tuple[int, ...]]:
    if op.prim == "lm_head" and op.attr("tied"):
        vocab = op.attr("vocab")
        return {"weight": (vocab, *inputs[0].shape)} if isinstance(vocab, int) else {}
    return dict(typed.params)


def _param_shapes(op: Op, expected: dict[str, tuple[int, ...]], params: dict[str, Param]) -> list[str]:
    actual = dict(op.params)
    problems = [f"has no parameter for role '{role}'" for role in expected if role not in actual]
    problems += [
        f"has parameter role '{role}' that the shape rule does not give" for role in actual if role not in expected
    ]
    return problems + [
        f"parameter @{pid} ({role}) is {list(params[pid].shape)} but the shape rule gives {list(expected[role])}"
        for role, pid in actual.items()
        if role in expected and pid in params and params[pid].shape != expected[role]
    ]
