"""The parameter values a root model is elaborated with.

A root model is a `model M(...) { ... }` definition or an instance `model Small = M(d = 512)`
(instances of instances too). Its values come from, weakest first: the definition's defaults, the
arguments of each instance on the way from the definition, and the `-D` overrides. Every value is
checked against the parameter's declared type (E0301); unknown parameters (E0203), duplicates
(E0210), instances of non-models (E0301) and instance cycles (E0307) are diagnosed here.

`-D` values are parsed from a synthetic source file `<-D name=value>` and may only be literals
(numbers, strings, booleans, `none`, dtype/symbol names, lists, arithmetic on those).
"""

from __future__ import annotations

from dataclasses import dataclass

from livc.compiler.elaboration.calls import NOFIT, coerce_for_type, type_text
from livc.compiler.elaboration.evaluate import Env, Evaluator
from livc.compiler.elaboration.overrides import Override
from livc.compiler.elaboration.values import POISON, DefRef, DType, Symbol, Value, type_name
from livc.compiler.ir import primitives as prim
from livc.compiler.resolution.scope import suggest
from livc.dsl import ast as A
from livc.dsl.diagnostics import DiagnosticSink, Label, error
from livc.dsl.parser import parse_expression
from livc.dsl.source import SourceFile, Span

MAX_INSTANCE_DEPTH = 32
Given = dict[str, tuple[A.Arg, Value]]  # parameter name -> (the argument that set it, its value)


@dataclass(frozen=True)
class RootModel:
    """A model to compile: `name`, built from the definition `node` of `module` with `given` values."""

    name: str
    module: str
    node: A.Def
    given: tuple[tuple[str, tuple[A.Arg, Value]], ...]
    span: Span

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name.name for p in self.node.params)


# ---- instances: `model Small = M(...)` ----------------------------------------------------------


def root_model(ev: Evaluator, module: str, item: A.Def | A.ModelInst) -> RootModel | None:
    if isinstance(item, A.Def):
        return RootModel(item.name.name, module, item, (), item.span)  # type: ignore[arg-type]
    return _instance(ev, module, item, [])


def _instance(ev: Evaluator, module: str, item: A.ModelInst, chain: list[str]) -> RootModel | None:
    if not isinstance(item.value, A.Call):
        return None  # reported by the resolver
    marker = f"{module}:{item.name.name}"
    if marker in chain or len(chain) >= MAX_INSTANCE_DEPTH:
        ev.fail("E0307", f"model '{item.name.name}' is an instance of itself", item.value.func.span, "cycle")
        return None
    base = _base(ev, module, item, chain + [marker])
    if base is None:
        return None
    args = _call_args(ev, module, item.value, base)
    if args is None:
        return None
    given = {**dict(base.given), **args}
    return RootModel(item.name.name, base.module, base.node, tuple(given.items()), item.span)  # type: ignore[arg-type]


def _base(ev: Evaluator, module: str, item: A.ModelInst, chain: list[str]) -> RootModel | None:
    assert isinstance(item.value, A.Call)
    callee = ev.eval(item.value.func, Env(module))
    match callee:
        case _ if callee is POISON:
            return None
        case DefRef(node=A.Def(kind=A.DefKind.MODEL) as node):
            return RootModel(callee.name, callee.module, node, (), node.span)  # type: ignore[arg-type]
        case DefRef(node=A.ModelInst() as inner):
            return _instance(ev, callee.module, inner, chain)
    what = callee.node.kind.value if isinstance(callee, DefRef) and isinstance(callee.node, A.Def) else None
    ev.fail(
        "E0301",
        f"`model {item.name.name} = ...` needs a model to instantiate",
        item.value.func.span,
        f"this is {'a ' + what if what else _a(type_name(callee))}, not a model",
    )
    return None


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def _call_args(ev: Evaluator, module: str, call: A.Call, base: RootModel) -> Given | None:
    """The instance's arguments by parameter name (positional ones in declaration order); None on errors."""
    names = base.param_names
    given: Given = {}
    positional = [a for a in call.args if a.name is None]
    ok = len(positional) <= len(names)
    if not ok:
        ev.fail(
            "E0206",
            f"model '{base.name}' takes at most {len(names)} positional argument(s)",
            positional[len(names)].span,
            f"{len(positional)} given",
        )
    for index, arg in enumerate(call.args):
        if arg.name is None and index >= len(names):
            continue
        name = names[index] if arg.name is None else arg.name.name
        ok &= _add(ev.sink, base, given, name, arg, ev.eval(arg.value, Env(module)))
    return given if ok else None


def _add(sink: DiagnosticSink, base: RootModel, given: Given, name: str, arg: A.Arg, value: Value) -> bool:
    """Record `name = value` for `base`; False (after reporting) if it has no such parameter or it is set."""
    where = arg.name.span if arg.name is not None else arg.span
    if name not in base.param_names:
        sink.report(
            error(
                "E0203",
                f"model '{base.name}' has no parameter '{name}'",
                where,
                "unknown parameter",
                help=suggest(name, set(base.param_names)) or _params_help(base),
            )
        )
    elif name in given:
        sink.report(
            error(
                "E0210",
                f"parameter '{name}' is set twice",
                arg.span,
                "again here",
                secondary=(Label(given[name][0].span, "first here"),),
            )
        )
    else:
        given[name] = (arg, value)
        return True
    return False


def _params_help(model: RootModel) -> str:
    names = model.param_names
    return f"its parameters are {', '.join(names)}" if names else f"'{model.name}' has no parameters"


# ---- -D overrides ------------------------------------------------------------------------------


def apply_overrides(
    ev: Evaluator, module: str, models: list[RootModel], overrides: tuple[Override, ...]
) -> list[RootModel | None]:
    """`models` with the overrides' values on top; a model whose override failed is None."""
    result: list[RootModel | None] = list(models)
    extra: dict[str, Given] = {m.name: {} for m in models}
    failed: set[str] = set()
    specific = {(o.model, o.name) for o in overrides if o.model is not None}
    for override in overrides:
        targets = _targets(ev.sink, models, override)
        value = _override_value(ev, module, override) if targets else None
        for target in targets:
            if override.model is None and (target.name, override.name) in specific:
                continue  # `-D M.d=...` beats `-D d=...` for M
            if value is None:
                failed.add(target.name)
                continue
            arg, raw = value
            if not _add(ev.sink, target, extra[target.name], override.name, arg, _named(target, override.name, raw)):
                failed.add(target.name)
    for index, model in enumerate(models):
        if model.name in failed:
            result[index] = None
        elif extra[model.name]:
            given = {**dict(model.given), **extra[model.name]}
            result[index] = RootModel(model.name, model.module, model.node, tuple(given.items()), model.span)
    return result


def _override_source(override: Override) -> tuple[SourceFile, int, int]:
    """The synthetic file `<-D M.d=512>` and the offsets of the name and of the value in it."""
    text = override.display
    shown = text if text.isprintable() else ascii(text)[1:-1]
    value_start = len(text) - len(override.text)
    return SourceFile(f"<-D {shown}>", text), value_start - 1 - len(override.name), value_start


def _name_span(override: Override) -> Span:
    source, name_start, value_start = _override_source(override)
    return Span(source, name_start, value_start - 1)


def _targets(sink: DiagnosticSink, models: list[RootModel], override: Override) -> list[RootModel]:
    if override.model is not None:
        chosen = [m for m in models if m.name == override.model]
        if not chosen:
            _no_model(sink, models, override)
        return chosen
    chosen = [m for m in models if override.name in m.param_names]
    if not chosen:
        every = {p for m in models for p in m.param_names}
        hint = suggest(override.name, every) or (f"parameters are {', '.join(sorted(every))}" if every else None)
        sink.report(
            error(
                "E0203",
                f"no model in this file has a parameter '{override.name}'",
                _name_span(override),
                "unknown parameter",
                help=hint,
            )
        )
    return chosen


def _no_model(sink: DiagnosticSink, models: list[RootModel], override: Override) -> None:
    source, name_start, _ = _override_source(override)
    assert override.model is not None
    names = [m.name for m in models]
    hint = suggest(override.model, set(names)) or (f"models are {', '.join(names)}" if names else "it has no model")
    sink.report(
        error(
            "E0201",
            f"no model '{override.model}' in this file",
            Span(source, 0, len(override.model)),
            "unknown model",
            help=hint,
        )
    )


def _override_value(ev: Evaluator, module: str, override: Override) -> tuple[A.Arg, Value] | None:
    source, name_start, value_start = _override_source(override)
    local = DiagnosticSink()
    expr = parse_expression(source, value_start, local)
    if expr is not None and not local.items:
        _check_literal(expr, local)
    for diag in local.items:
        ev.sink.report(diag)
    if expr is None or local.items:
        return None
    value = ev.eval(expr, Env(module))
    if value is POISON:
        return None
    name = A.Ident(name=override.name, span=Span(source, name_start, value_start - 1))
    return A.Arg(name=name, value=expr, span=Span(source, name_start, len(source.text))), value


def _check_literal(expr: A.Expr, sink: DiagnosticSink) -> None:
    """Only constants: literals, dtype and symbol names, lists and arithmetic on those."""
    match expr:
        case A.Number() | A.String() | A.Bool() | A.NoneLit():
            return
        case A.Name(ident=ident) if ident.name in prim.DTYPES or ident.name in prim.SYMBOLS:
            return
        case A.Name(ident=ident) if ident.name in ("inf", "nan"):
            sink.report(error("E0304", "an override value must be finite", expr.span, f"{ident.name} is not finite"))
        case A.Name(ident=ident):
            sink.report(
                error(
                    "E0201",
                    f"cannot find '{ident.name}'",
                    expr.span,
                    "not a literal, dtype or symbol",
                    help=f'an override value is a literal; for a string write "{ident.name}"',
                )
            )
        case A.UnaryOp():
            _check_literal(expr.operand, sink)
        case A.BinOp():
            _check_literal(expr.left, sink)
            _check_literal(expr.right, sink)
        case A.ListExpr():
            for element in expr.elements:
                _check_literal(element, sink)
        case _:
            sink.report(
                error("E0301", "an override value must be a literal", expr.span, "not a literal", help="e.g. -D d=512")
            )


def _named(model: RootModel, name: str, value: Value) -> Value:
    """A string naming a dtype or symbol, for a parameter of that type (Python callers pass strings)."""
    param = next((p for p in model.node.params if p.name.name == name), None)
    if param is not None and isinstance(value, str) and not param.type.is_list:
        if param.type.name.name == "dtype" and value in prim.DTYPES:
            return DType(value)
        if param.type.name.name == "symbol" and value in prim.SYMBOLS:
            return Symbol(value)
    return value


# ---- binding -----------------------------------------------------------------------------------


def bind_params(ev: Evaluator, model: RootModel) -> dict[str, Value]:
    """Every parameter's value, checked against its declared type; failures are POISON."""
    given = dict(model.given)
    bound: dict[str, Value] = {}
    for param in model.node.params:
        name = param.name.name
        if name in given:
            arg, value = given[name]
            span = arg.value.span
        elif param.default is not None:
            value, span = ev.eval(param.default, Env(model.module, dict(bound))), param.default.span
        else:
            value, span = POISON, param.span
        bound[name] = _typed(ev, model, param, value, span)
    return bound


def _typed(ev: Evaluator, model: RootModel, param: A.Param, value: Value, span: Span) -> Value:
    if value is POISON:
        return POISON
    converted = coerce_for_type(param.type)(value)
    if converted is not NOFIT:
        return converted  # type: ignore[return-value]
    shown = f" {value}" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    return ev.fail(
        "E0301",
        f"parameter '{param.name.name}' of model '{model.name}' is declared {type_text(param.type)}",
        span,
        f"got {type_name(value)}{shown}",
    )
