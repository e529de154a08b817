"""Which implicit input each part of a model gets: the embedding reads `tokens`, the rest read `x`.

`tokens` (the token ids) exist only where the model is entered, so `embed(tokens, ...)` belongs in
the op used as `embedding:`; every sublayer, norm and the head read the residual stream `x`.
A definition that reads the other input is E0315, at the read, with the instantiation beside it
(the IR would otherwise use an undefined value). Non-goals: shapes (build, shapes.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from livc.compiler.elaboration.model import ElaboratedModel
from livc.compiler.elaboration.values import Instance
from livc.dsl import ast as A
from livc.dsl.diagnostics import Diagnostic, Label, error


def _names(node: object) -> Iterator[A.Name]:
    """Every `Name` under an AST node, in source order (iterative)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, A.Name):
            yield current
        elif isinstance(current, tuple):
            stack.extend(reversed(current))
        elif dataclasses.is_dataclass(current) and not isinstance(current, (A.Ident, A.Comment)):
            stack.extend(getattr(current, f.name) for f in reversed(dataclasses.fields(current)) if f.name != "span")


def _read_of(instance: Instance, name: str) -> A.Name | None:
    node = instance.definition.node
    if not isinstance(node, A.Def) or any(p.name.name == name for p in node.params):
        return None
    return _free_read(node.body, name)[0]


def _free_read(body: tuple[object, ...], name: str, bound: bool = False) -> tuple[A.Name | None, bool]:
    """The first read of `name` before the body binds it (a local `x = ...` shadows the input), and whether it binds."""
    for stmt in body:
        if isinstance(stmt, A.Section):
            read, bound = _free_read(stmt.body, name, bound)
        elif isinstance(stmt, A.If):
            read = None if bound else _first(stmt.cond, name)
            then_read, then_bound = _free_read(stmt.body, name, bound)
            else_read, else_bound = _free_read(stmt.orelse, name, bound)
            read, bound = read or then_read or else_read, then_bound and else_bound
        else:
            read = None if bound else _first(stmt, name)
            bound = bound or name in _bound_names(stmt)
        if read is not None:
            return read, bound
    return None, bound


def _first(node: object, name: str) -> A.Name | None:
    return next((n for n in _names(node) if n.ident.name == name), None)


def _bound_names(stmt: object) -> set[str]:
    if isinstance(stmt, A.Assign):
        return {t.name for t in stmt.targets}
    return {stmt.name.name} if isinstance(stmt, A.Let) else set()


def _misuse(instance: Instance, name: str, where: str, fix: str) -> Diagnostic | None:
    read = _read_of(instance, name)
    if read is None:
        return None
    return error(
        "E0315",
        f"{instance.name} reads `{name}`, which {where}",
        read.span,
        f"`{name}` is not available here",
        secondary=(Label(instance.span, f"{instance.name}(...) used here"),),
        help=fix,
    )


def input_errors(model: ElaboratedModel) -> tuple[Diagnostic, ...]:
    """E0315 for each definition of the model that reads an input it does not get (once per definition)."""
    found: dict[object, Diagnostic] = {}
    first = _misuse(model.embedding, "x", "the embedding does not get (it gets `tokens`)", _X_HELP)
    if first is not None:
        found[model.embedding.definition] = first
    subs = [s for layer in model.layers for s in layer.sublayers]
    others = [s.op for s in subs] + [dict(s.wrapper.args).get("norm") for s in subs if s.wrapper is not None]
    others += [model.norm, model.final_norm, model.head]
    checked = set()  # each definition once: a 10,000-layer model has a handful of definitions
    for instance in others:
        if isinstance(instance, Instance) and instance.definition not in checked:
            checked.add(instance.definition)
            diag = _misuse(instance, "tokens", "only the model's `embedding` gets", _TOKENS_HELP)
            if diag is not None and instance.definition not in found:
                found[instance.definition] = diag
    return tuple(found.values())


_TOKENS_HELP = "embed(tokens, vocab, d) belongs in the op used as `embedding:`; layers read the residual stream `x`"
_X_HELP = "the embedding maps `tokens` to the first residual stream, e.g. `return embed(tokens, vocab, d)`"
