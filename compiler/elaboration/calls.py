"""Binding call arguments to parameters, and checking values against declared types."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from livc.compiler.elaboration.values import POISON, BuilderV, DType, ListV, Symbol, TensorV, Value, type_name
from livc.compiler.ir import primitives as prim
from livc.compiler.resolution.scope import suggest
from livc.dsl import ast as A
from livc.dsl.diagnostics import DiagnosticSink, Label, error
from livc.dsl.source import Span


class _NoFit:
    def __repr__(self) -> str:
        return "NOFIT"


NOFIT = _NoFit()
Coerce = Callable[[Value], object]  # returns the (converted) value, or NOFIT if it does not fit


@dataclass(frozen=True)
class ParamSpec:
    """A parameter as the binder sees it; `default` is a thunk evaluated with the params bound so far."""

    name: str
    type_text: str
    coerce: Coerce
    default: Callable[[dict[str, Value]], Value] | None
    span: Span | None = None


def _is_int(v: Value) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _scalar(name: str) -> Coerce:
    match name:
        case "int":
            return lambda v: v if _is_int(v) else NOFIT
        case "float":
            return lambda v: float(v) if _is_int(v) or isinstance(v, float) else NOFIT
        case "bool":
            return lambda v: v if isinstance(v, bool) else NOFIT
        case "dtype":
            return lambda v: v if isinstance(v, DType) else NOFIT
        case "symbol":
            return lambda v: v if isinstance(v, Symbol) else NOFIT
    return lambda v: v


def _list_of(inner: Coerce) -> Coerce:
    def coerce(v: Value) -> object:
        if not isinstance(v, ListV):
            return NOFIT
        items = [inner(item) for item in v.items]
        return NOFIT if any(i is NOFIT for i in items) else ListV(tuple(items))  # type: ignore[arg-type]

    return coerce


def _optional(inner: Coerce) -> Coerce:
    return lambda v: v if v is None else inner(v)


def coerce_for_type(ref: A.TypeRef) -> Coerce:
    base = _scalar(ref.name.name)
    if ref.is_list:
        base = _list_of(base)
    return _optional(base) if ref.optional else base


def type_text(ref: A.TypeRef) -> str:
    text = f"[{ref.name.name}]" if ref.is_list else ref.name.name
    return text + ("?" if ref.optional else "")


_KIND_COERCE: dict[prim.Kind, Coerce] = {
    prim.Kind.TENSOR: lambda v: v if isinstance(v, TensorV) else NOFIT,
    prim.Kind.INT: _scalar("int"),
    prim.Kind.FLOAT: _scalar("float"),
    prim.Kind.BOOL: _scalar("bool"),
    prim.Kind.SYMBOL: _scalar("symbol"),
    prim.Kind.FILTER: lambda v: (
        v if isinstance(v, BuilderV) and v.name in ("implicit_filter", "modal_filter") else NOFIT
    ),
    prim.Kind.INTS: _list_of(_scalar("int")),
    prim.Kind.ANY: lambda v: v,
}


def specs_for_signature(sig: prim.Signature) -> list[ParamSpec]:
    specs = []
    for p in sig.params:
        coerce = _KIND_COERCE[p.kind]
        default = p.default
        if default == prim.NONE:
            coerce, default = _optional(coerce), None
            specs.append(ParamSpec(p.name, p.kind.value + "?", coerce, lambda _b: None))
            continue
        thunk = None if default is None else _constant_default(default)
        specs.append(ParamSpec(p.name, p.kind.value, coerce, thunk))
    return specs


def _constant_default(default: object) -> Callable[[dict[str, Value]], Value]:
    value: Value = Symbol(default) if isinstance(default, str) else default  # type: ignore[assignment]
    return lambda _bound: value


@dataclass
class Binder:
    sink: DiagnosticSink

    def bind(
        self, callee: str, specs: list[ParamSpec], args: list[tuple[A.Arg, Value]], call_span: Span
    ) -> dict[str, Value] | None:
        """Match arguments to parameters; report every problem; None if any argument is unusable."""
        given: dict[str, tuple[Span, Value]] = {}
        ok = self._positional(callee, specs, args, given) & self._keywords(callee, specs, args, given)
        bound: dict[str, Value] = {}
        meant = _misspelled(specs, args)
        for spec in specs:
            if spec.name in meant and spec.name not in given:
                ok = False  # already reported as an unknown keyword with "did you mean" (no second error)
                continue
            ok &= self._bind_one(callee, spec, given, bound, call_span)
        return bound if ok else None

    def _positional(
        self, callee: str, specs: list[ParamSpec], args: list[tuple[A.Arg, Value]], given: dict[str, tuple[Span, Value]]
    ) -> bool:
        positional = [(a, v) for a, v in args if a.name is None]
        if len(positional) > len(specs):
            extra = positional[len(specs)][0]
            self.sink.report(
                error(
                    "E0206",
                    f"'{callee}' takes at most {len(specs)} positional argument(s)",
                    extra.span,
                    f"{len(positional)} given",
                )
            )
            return False
        for spec, (arg, value) in zip(specs, positional):
            given[spec.name] = (arg.span, value)
        return True

    def _keywords(
        self, callee: str, specs: list[ParamSpec], args: list[tuple[A.Arg, Value]], given: dict[str, tuple[Span, Value]]
    ) -> bool:
        names = {s.name for s in specs}
        ok = True
        for arg, value in args:
            if arg.name is None:
                continue
            key = arg.name.name
            if key not in names:
                self.sink.report(
                    error(
                        "E0203",
                        f"'{callee}' has no parameter '{key}'",
                        arg.name.span,
                        "unknown keyword",
                        help=suggest(key, names),
                    )
                )
                ok = False
            elif key in given:
                self.sink.report(
                    error(
                        "E0210",
                        f"argument '{key}' given twice",
                        arg.span,
                        "again here",
                        secondary=(Label(given[key][0], "first here"),),
                    )
                )
                ok = False
            else:
                given[key] = (arg.span, value)
        return ok

    def _bind_one(
        self,
        callee: str,
        spec: ParamSpec,
        given: dict[str, tuple[Span, Value]],
        bound: dict[str, Value],
        call_span: Span,
    ) -> bool:
        if spec.name in given:
            span, value = given[spec.name]
        elif spec.default is not None:
            span, value = call_span, spec.default(bound)
        else:
            self.sink.report(
                error(
                    "E0204", f"missing argument '{spec.name}' for '{callee}'", call_span, f"'{spec.name}' is required"
                )
            )
            return False
        if value is POISON:
            return False
        converted = spec.coerce(value)
        if converted is NOFIT:
            self.sink.report(
                error(
                    "E0301",
                    f"'{spec.name}' of '{callee}' must be {spec.type_text}",
                    span,
                    f"got {type_name(value)} {_show(value)}".rstrip(),
                )
            )
            return False
        bound[spec.name] = converted  # type: ignore[assignment]
        return True


def _show(value: Value) -> str:
    if isinstance(value, (bool, int, float)):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return ""


def _misspelled(specs: list[ParamSpec], args: list[tuple[A.Arg, Value]]) -> set[str]:
    """Parameters that an unknown keyword argument is a near-miss of (`hiden` for `hidden`)."""
    names = sorted(s.name for s in specs)
    unknown = [a.name.name for a, _ in args if a.name is not None and a.name.name not in names]
    return {m for key in unknown for m in difflib.get_close_matches(key, names, n=1, cutoff=0.7)}
