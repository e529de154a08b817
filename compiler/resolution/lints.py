"""Warnings about a file's own text, found without evaluating anything.

- W0002: an imported name (`from m import A`) or module (`import m`) that the file never reads;
- W0005: a parameter of a `fn`/`liv`/`op`/`model`, or a `let` inside a definition, that is never
  read. A `liv`/`op` parameter named `d` counts as used: the compiler checks it against the
  width of the operator's input. Names starting with `_` are exempt; module-level `let`s are not
  checked (another file may import them).
Precondition: the module resolved (names are found by identifier, so a read of a shadowing local
also counts as a read of the outer name: the lint errs on the side of silence).
Non-goals: unused definitions (a library defines what others use), dead weights (W0001, build).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

from livc.dsl import ast as A
from livc.dsl.diagnostics import Diagnostic, warning


def source_lints(module: A.Module) -> list[Diagnostic]:
    return _unused_imports(module) + [d for item in module.items for d in _unused_locals(item)]


def reads(node: object) -> Iterator[str]:
    """Every identifier that `node` reads (a `Name`), at any depth (iterative: long flat chains are fine)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, A.Name):
            yield current.ident.name
        elif isinstance(current, tuple):
            stack.extend(reversed(current))
        elif dataclasses.is_dataclass(current) and not isinstance(current, A.Ident):
            stack.extend(getattr(current, f.name) for f in reversed(dataclasses.fields(current)) if f.name != "span")


# ---- W0002 ----------------------------------------------------------------------------------


def _bindings(item: A.Item) -> list[tuple[str, A.Ident | A.ImportName | A.ModuleRef]]:
    match item:
        case A.FromImport():
            return [(name.bound.name, name) for name in item.names]
        case A.Import() if item.alias is not None:
            return [(item.alias.name, item.alias)]
        case A.Import() if item.module.path is not None:
            return [(Path(item.module.path.value).stem, item.module)]
        case A.Import():
            return [(item.module.dotted[-1].name, item.module)]
    return []


def _unused_imports(module: A.Module) -> list[Diagnostic]:
    used = {name for item in module.items if not isinstance(item, (A.Import, A.FromImport)) for name in reads(item)}
    return [
        warning(
            "W0002",
            f"'{name}' is imported but never used",
            where.span,
            "unused import",
            help="remove it from the import",
        )
        for item in module.items
        for name, where in _bindings(item)
        if name not in used and not name.startswith("_")
    ]


# ---- W0005 ----------------------------------------------------------------------------------


def _lets(body: tuple[A.Stmt, ...]) -> Iterator[A.Let]:
    for stmt in body:
        match stmt:
            case A.Let():
                yield stmt
            case A.Section():
                yield from _lets(stmt.body)
            case A.If():
                yield from _lets(stmt.body)
                yield from _lets(stmt.orelse)


def _unused_locals(item: A.Item) -> list[Diagnostic]:
    if not isinstance(item, (A.FnDef, A.Def)):
        return []
    kind = "fn" if isinstance(item, A.FnDef) else item.kind.value
    used = set(reads(item.params)) | set(reads(item.body))
    if kind in ("liv", "op"):
        used.add("d")
    out = [_unused_param(p, kind, item.name.name) for p in item.params if p.name.name not in used]
    if isinstance(item, A.Def):
        out += [_unused_let(let) for let in _lets(item.body) if let.name.name not in used]
    return [d for d in out if d is not None]


def _unused_param(param: A.Param, kind: str, owner: str) -> Diagnostic | None:
    if param.name.name.startswith("_"):
        return None
    return warning(
        "W0005",
        f"parameter '{param.name.name}' of {kind} {owner} is never used",
        param.name.span,
        "unused parameter",
        help="remove it, or use it",
    )


def _unused_let(let: A.Let) -> Diagnostic | None:
    if let.name.name.startswith("_"):
        return None
    return warning(
        "W0005", f"'{let.name.name}' is bound but never used", let.name.span, "unused `let`", help="remove it"
    )
