"""Module-level symbol tables and builtin names.

Each loaded module gets a table from name to what it denotes: a local definition (`let`, `fn`,
`liv`, `op`, `model`, `model X = Y(...)`), an imported module namespace, or a name imported from another module.
Duplicate definitions (E0205) and names missing from an imported module (E0209) are diagnosed here.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from livc.compiler.ir import primitives as prim
from livc.compiler.resolution.loader import LoadedModule, Program
from livc.dsl import ast as A
from livc.dsl.diagnostics import DiagnosticSink, Label, error
from livc.dsl.lexicon import identifier_problem


@dataclass(frozen=True, slots=True)
class LocalDef:
    module: str
    node: A.Let | A.FnDef | A.Def | A.ModelInst


@dataclass(frozen=True, slots=True)
class ModuleAlias:
    module: str
    node: A.Import


@dataclass(frozen=True, slots=True)
class ImportedName:
    module: str  # the module the name comes from
    name: str
    node: A.ImportName


Symbol = LocalDef | ModuleAlias | ImportedName
Table = dict[str, Symbol]

BUILTIN_NAMES = frozenset(
    set(prim.PRIMITIVES) | set(prim.BUILDERS) | set(prim.SYMBOLS) | set(prim.DTYPES) | set(prim.SCALAR_FUNCTIONS)
)
TYPE_NAMES = frozenset({"int", "float", "bool", "dtype", "symbol"})


def _defined_ident(item: A.Item) -> A.Ident | None:
    match item:
        case A.Let() | A.FnDef() | A.Def() | A.ModelInst():
            return item.name
    return None


def _import_binding(item: A.Import) -> str | None:
    if item.alias is not None:
        return item.alias.name
    if item.module.path is not None:
        stem = Path(item.module.path.value).stem
        return stem if identifier_problem(stem) is None else None
    return item.module.dotted[-1].name


def build_tables(program: Program, sink: DiagnosticSink) -> dict[str, Table]:
    tables: dict[str, Table] = {key: {} for key in program.modules}
    for key, loaded in program.modules.items():
        resolved = dict((id(imp), k) for imp, k in loaded.imports)
        for item in loaded.ast.items:
            _bind_item(tables[key], key, item, resolved, sink)
    for key in program.modules:
        _check_imported_names(tables, key, sink)
    return tables


def _bind(table: Table, name: A.Ident, symbol: Symbol, sink: DiagnosticSink) -> None:
    previous = table.get(name.name)
    if previous is not None:
        first = previous.node.name if isinstance(previous, LocalDef) else previous.node
        sink.report(
            error(
                "E0205",
                f"'{name.name}' is defined more than once",
                name.span,
                "redefined here",
                secondary=(Label(first.span, "first defined here"),),
            )
        )
        return
    table[name.name] = symbol


def _bind_item(table: Table, key: str, item: A.Item, resolved: dict[int, str], sink: DiagnosticSink) -> None:
    ident = _defined_ident(item)
    if ident is not None:
        assert isinstance(item, (A.Let, A.FnDef, A.Def, A.ModelInst))
        _bind(table, ident, LocalDef(key, item), sink)
    elif isinstance(item, A.Import) and id(item) in resolved:
        binding = _import_binding(item)
        if binding is None:
            sink.report(
                error(
                    "E0106", "this import needs `as NAME`", item.module.span, "the file name is not a valid identifier"
                )
            )
            return
        _bind(
            table,
            A.Ident(name=binding, span=(item.alias or item.module).span),
            ModuleAlias(resolved[id(item)], item),
            sink,
        )
    elif isinstance(item, A.FromImport) and id(item) in resolved:
        for name in item.names:
            _bind(table, name.bound, ImportedName(resolved[id(item)], name.name.name, name), sink)


def _check_imported_names(tables: dict[str, Table], key: str, sink: DiagnosticSink) -> None:
    for symbol in list(tables[key].values()):
        if not isinstance(symbol, ImportedName):
            continue
        source_table = tables.get(symbol.module, {})
        target = source_table.get(symbol.name)
        if target is None or not isinstance(target, LocalDef):
            hint = suggest(symbol.name, [n for n, s in source_table.items() if isinstance(s, LocalDef)])
            sink.report(
                error(
                    "E0209",
                    f"'{symbol.name}' is not defined in '{symbol.module}'",
                    symbol.node.name.span,
                    "not found in that module",
                    help=hint,
                )
            )
            del tables[key][symbol.node.bound.name]


def broken_import_names(loaded: LoadedModule) -> frozenset[str]:
    """Names that the failed imports of a module would have bound: they are poisoned, not undefined."""
    names: set[str] = set()
    for item in loaded.broken:
        if isinstance(item, A.FromImport):
            names.update(n.bound.name for n in item.names)
        elif (binding := _import_binding(item)) is not None:
            names.add(binding)
    return frozenset(names)


def suggest(name: str, candidates: list[str] | set[str] | frozenset[str]) -> str | None:
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.7)
    return f"did you mean '{close[0]}'?" if close else None


def lookup(tables: dict[str, Table], module: str, name: str) -> LocalDef | ModuleAlias | None:
    """Follow imported names to the definition they denote."""
    symbol = tables.get(module, {}).get(name)
    if isinstance(symbol, ImportedName):
        target = tables.get(symbol.module, {}).get(symbol.name)
        return target if isinstance(target, LocalDef) else None
    return symbol
