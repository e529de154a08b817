"""Static checks over every definition body, independent of argument values.

- every name refers to a parameter, an earlier local, a module-level symbol or a builtin (E0201);
- parameter and `let` type annotations name a known type (E0305);
- a `liv` has each section at most once, in order, with a known structure name (E0211, E0305),
  and its channel_mix ends in `return`; an `op` returns (E0308);
- `return` only ends a channel_mix section or an op body (E0211, returns.py);
- model bodies only set known fields, each once (E0309, E0205).
Runs on all definitions, used or not, so library code is checked even before anything calls it.
"""

from __future__ import annotations

from collections.abc import Iterator

from livc.compiler.ir import primitives as prim
from livc.compiler.resolution.loader import Program
from livc.compiler.resolution.returns import check_returns
from livc.compiler.resolution.scope import BUILTIN_NAMES, TYPE_NAMES, Table, broken_import_names, suggest
from livc.compiler.resolution.std_index import import_hint
from livc.dsl import ast as A
from livc.dsl.diagnostics import DiagnosticSink, Label, error

_SECTION_ORDER = (A.SectionKind.FEATURIZER, A.SectionKind.TOKEN_MIX, A.SectionKind.CHANNEL_MIX)
_STRUCTURES = {A.SectionKind.TOKEN_MIX: prim.TOKEN_STRUCTURES, A.SectionKind.CHANNEL_MIX: prim.CHANNEL_STRUCTURES}


def names_in(expr: A.Expr) -> Iterator[A.Name]:
    """Every `Name` read by an expression, left to right (attribute names and keyword names are not reads).

    Iterative, so a flat chain of 10,000 terms (`1 + 1 + ...`, a left-leaning tree) does not recurse.
    """
    stack: list[A.Expr] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, A.Name):
            yield node
        else:
            stack.extend(reversed(_subexpressions(node)))


def _subexpressions(expr: A.Expr) -> list[A.Expr]:
    match expr:
        case A.BinOp():
            return [expr.left, expr.right]
        case A.UnaryOp():
            return [expr.operand]
        case A.IfExpr():
            return [expr.cond, expr.then, expr.orelse]
        case A.Call():
            return [expr.func, *(arg.value for arg in expr.args)]
        case A.Attribute():
            return [expr.value]
        case A.Index():
            return [expr.value, expr.index] + ([expr.stop] if expr.stop is not None else [])
        case A.ListExpr():
            return list(expr.elements)
        case A.With():
            return [expr.value, expr.wrapper]
    return []


class Resolver:
    def __init__(self, table: Table, sink: DiagnosticSink, poisoned: frozenset[str] = frozenset()) -> None:
        self.table = table
        self.sink = sink
        self.poisoned = poisoned  # names bound by imports that failed (their error is already reported)

    def check_expr(self, expr: A.Expr, local: set[str]) -> None:
        for name in names_in(expr):
            ident = name.ident.name
            if ident in local or ident in self.table or ident in BUILTIN_NAMES or ident in self.poisoned:
                continue
            hint = suggest(ident, local | set(self.table) | BUILTIN_NAMES) or import_hint(ident)
            self.sink.report(
                error("E0201", f"cannot find '{ident}' in this scope", name.span, "not defined", help=hint)
            )

    def check_type(self, ref: A.TypeRef | None) -> None:
        if ref is not None and ref.name.name not in TYPE_NAMES:
            self.sink.report(
                error(
                    "E0305",
                    f"unknown type '{ref.name.name}'",
                    ref.name.span,
                    f"types are {', '.join(sorted(TYPE_NAMES))}",
                    help=suggest(ref.name.name, TYPE_NAMES),
                )
            )

    def check_params(self, params: tuple[A.Param, ...]) -> set[str]:
        local: set[str] = set()
        for param in params:
            self.check_type(param.type)
            if param.default is not None:
                self.check_expr(param.default, local)
            if param.name.name in local:
                self.sink.report(
                    error(
                        "E0205",
                        f"parameter '{param.name.name}' is declared twice",
                        param.name.span,
                        "duplicate parameter",
                    )
                )
            local.add(param.name.name)
        return local

    # ---- statements -----------------------------------------------------------------------
    def check_body(self, body: tuple[A.Stmt, ...], local: set[str]) -> set[str]:
        for stmt in body:
            self.check_stmt(stmt, local)
        return local

    def check_stmt(self, stmt: A.Stmt, local: set[str]) -> None:
        match stmt:
            case A.Let():
                self.check_type(stmt.type)
                self.check_expr(stmt.value, local)
                local.add(stmt.name.name)
            case A.Assign():
                self.check_expr(stmt.value, local)
                local.update(t.name for t in stmt.targets)
            case A.Require():
                self.check_expr(stmt.cond, local)
            case A.Return():
                self.check_expr(stmt.value, local)
            case A.If():
                self.check_expr(stmt.cond, local)
                then_names = self.check_body(stmt.body, set(local))
                else_names = self.check_body(stmt.orelse, set(local))
                local.update(then_names | else_names)
            case A.Section():
                self.check_body(stmt.body, local)
            case A.Field():
                self.check_expr(stmt.value, local)
            case A.Override():
                for expr in (stmt.index, stmt.stop, stmt.value):
                    if expr is not None:
                        self.check_expr(expr, local)
            case A.Share():
                for ref in (stmt.source, *stmt.targets):
                    self.check_expr(ref, local | {"layers"})
            case A.Budget():
                for item in stmt.items:
                    if isinstance(item, A.BudgetItem):
                        for arg in item.args:
                            self.check_expr(arg.value, local)
                        self.check_expr(item.limit, local)


def _returns(body: tuple[A.Stmt, ...]) -> bool:
    """Whether every path through `body` ends in a return."""
    for stmt in body:
        if isinstance(stmt, A.Return):
            return True
        if isinstance(stmt, A.If) and stmt.orelse and _returns(stmt.body) and _returns(stmt.orelse):
            return True
    return False


def _check_sections(definition: A.Def, sink: DiagnosticSink) -> None:
    seen: dict[A.SectionKind, A.Section] = {}
    for stmt in definition.body:
        if not isinstance(stmt, A.Section):
            continue
        _check_section(stmt, seen, sink)
        seen.setdefault(stmt.kind, stmt)
    for kind in (A.SectionKind.TOKEN_MIX, A.SectionKind.CHANNEL_MIX):
        if kind not in seen:
            sink.report(
                error(
                    "E0308",
                    f"liv '{definition.name.name}' has no {kind.value} section",
                    definition.name.span,
                    f"missing `{kind.value}`",
                    help="a LIV names its token-mixing and channel-mixing parts",
                )
            )
    channel = seen.get(A.SectionKind.CHANNEL_MIX)
    if channel is not None and not _returns(channel.body):
        sink.report(
            error(
                "E0308", "channel_mix does not return the LIV's output", channel.span, "add `return <expr>` at the end"
            )
        )


def _check_section(section: A.Section, seen: dict[A.SectionKind, A.Section], sink: DiagnosticSink) -> None:
    if section.kind in seen:
        sink.report(
            error(
                "E0211",
                f"second {section.kind.value} section",
                section.span,
                "duplicate section",
                secondary=(Label(seen[section.kind].span, "first one here"),),
            )
        )
    later = [k for k in seen if _SECTION_ORDER.index(k) > _SECTION_ORDER.index(section.kind)]
    if later:
        sink.report(
            error(
                "E0211",
                f"{section.kind.value} after {later[0].value}",
                section.span,
                "out of order",
                help="sections come in the order featurizer, token_mix, channel_mix",
            )
        )
    allowed = _STRUCTURES.get(section.kind)
    if allowed is None:
        if section.structure is not None:
            sink.report(
                error("E0305", "featurizer sections take no structure name", section.structure.span, "remove this")
            )
        return
    if section.structure is None or section.structure.name not in allowed:
        span = section.structure.span if section.structure is not None else section.span
        got = section.structure.name if section.structure is not None else "nothing"
        sink.report(
            error(
                "E0305",
                f"unknown {section.kind.value} structure '{got}'",
                span,
                f"expected one of {', '.join(allowed)}",
                help=suggest(got, set(allowed)) if section.structure is not None else None,
            )
        )


def _check_sections_only_in_livs(definition: A.Def, sink: DiagnosticSink) -> None:
    for stmt in definition.body:
        if isinstance(stmt, A.Section) and definition.kind is not A.DefKind.LIV:
            sink.report(
                error(
                    "E0211",
                    f"sections are only allowed in `liv` definitions, not in `{definition.kind.value}`",
                    stmt.span,
                    "not allowed here",
                )
            )
        if isinstance(stmt, (A.Field, A.Override, A.Share, A.Budget)) and definition.kind is not A.DefKind.MODEL:
            sink.report(
                error("E0211", "only models have fields, overrides, sharing and budgets", stmt.span, "not allowed here")
            )
        if isinstance(stmt, (A.Assign, A.Return, A.If)) and definition.kind is A.DefKind.MODEL:
            sink.report(
                error(
                    "E0211",
                    "models bind values with `let` and set fields with `name: value`",
                    stmt.span,
                    "not allowed in a model",
                )
            )


def _check_model_fields(definition: A.Def, sink: DiagnosticSink) -> None:
    seen: dict[str, A.Field] = {}
    for stmt in definition.body:
        if not isinstance(stmt, A.Field):
            continue
        name = stmt.name.name
        if name not in prim.MODEL_FIELDS:
            sink.report(
                error(
                    "E0309",
                    f"unknown model field '{name}'",
                    stmt.name.span,
                    "not a model field",
                    help=suggest(name, set(prim.MODEL_FIELDS)) or f"fields are {', '.join(prim.MODEL_FIELDS)}",
                )
            )
        elif name in seen:
            sink.report(
                error(
                    "E0205",
                    f"field '{name}' is set twice",
                    stmt.name.span,
                    "set again here",
                    secondary=(Label(seen[name].name.span, "first set here"),),
                )
            )
        seen.setdefault(name, stmt)
    missing = [f for f in prim.REQUIRED_MODEL_FIELDS if f not in seen]
    if missing:
        sink.report(
            error(
                "E0309",
                f"model '{definition.name.name}' has no {', '.join(missing)}",
                definition.name.span,
                f"missing field{'s' if len(missing) > 1 else ''}",
            )
        )
    for param in definition.params:
        if param.default is None:
            sink.report(
                error(
                    "E0309",
                    f"model parameter '{param.name.name}' needs a default",
                    param.span,
                    "no default",
                    help="a model is built from its defaults; change them with `-D NAME=VALUE`"
                    " or an instance `model Small = Model(NAME = VALUE)`",
                )
            )


def _check_def_shape(item: A.Def, sink: DiagnosticSink) -> None:
    for diag in check_returns(item) if item.kind is not A.DefKind.MODEL else ():
        sink.report(diag)
    match item.kind:
        case A.DefKind.LIV:
            _check_sections(item, sink)
        case A.DefKind.OP if not _returns(item.body):
            sink.report(
                error("E0308", f"op '{item.name.name}' does not return a value", item.name.span, "add `return <expr>`")
            )
        case A.DefKind.MODEL:
            _check_model_fields(item, sink)


def _check_model_inst(item: A.ModelInst, sink: DiagnosticSink) -> None:
    if not isinstance(item.value, A.Call):
        sink.report(
            error(
                "E0309",
                f"model '{item.name.name}' must be defined by a call of a model",
                item.value.span,
                "not a call",
                help=f"write `model {item.name.name} = OtherModel(name = value, ...)`",
            )
        )


def check_definition(item: A.Item, table: Table, sink: DiagnosticSink, poisoned: frozenset[str] = frozenset()) -> None:
    resolver = Resolver(table, sink, poisoned)
    match item:
        case A.Let():
            resolver.check_type(item.type)
            resolver.check_expr(item.value, set())
        case A.FnDef():
            local = resolver.check_params(item.params)
            resolver.check_type(item.result)
            resolver.check_expr(item.body, local)
        case A.Def():
            local = resolver.check_params(item.params)
            if item.kind is not A.DefKind.MODEL:
                local |= set(prim.INPUT_NAMES)
            resolver.check_body(item.body, local)
            _check_sections_only_in_livs(item, sink)
            _check_def_shape(item, sink)
        case A.ModelInst():
            resolver.check_expr(item.value, set())
            _check_model_inst(item, sink)


def resolve_program(program: Program, tables: dict[str, Table], sink: DiagnosticSink) -> None:
    for key, loaded in program.modules.items():
        poisoned = broken_import_names(loaded)
        for item in loaded.ast.items:
            check_definition(item, tables[key], sink, poisoned)
