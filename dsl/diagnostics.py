"""Diagnostics as data.

Detection code creates `Diagnostic` values and reports them into a `DiagnosticSink`; rendering
(rustc-style text or JSON) lives in `render.py`. A phase raises `CompileError` once, at its end, if
the sink holds errors — so one run reports many independent errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import Enum

from livc.dsl.codes import CODES
from livc.dsl.source import Span


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Label:
    span: Span
    message: str = ""


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    primary: Label
    secondary: tuple[Label, ...] = ()
    notes: tuple[str, ...] = ()
    help: str | None = None
    severity: Severity = Severity.ERROR

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unregistered diagnostic code {self.code}")


def error(
    code: str,
    message: str,
    span: Span,
    label: str = "",
    *,
    secondary: tuple[Label, ...] = (),
    notes: tuple[str, ...] = (),
    help: str | None = None,
) -> Diagnostic:
    """Shorthand for the common case: one error with a primary label."""
    return Diagnostic(code, message, Label(span, label), secondary, notes, help)


def warning(
    code: str,
    message: str,
    span: Span,
    label: str = "",
    *,
    secondary: tuple[Label, ...] = (),
    notes: tuple[str, ...] = (),
    help: str | None = None,
) -> Diagnostic:
    """A warning (a `W....` code): shown and counted, an error only under `--deny-warnings`."""
    return Diagnostic(code, message, Label(span, label), secondary, notes, help, Severity.WARNING)


def _key(diag: Diagnostic) -> tuple[object, ...]:
    """What makes two reports the same fact: code, severity, message and primary location."""
    span = diag.primary.span
    return (diag.code, diag.severity, diag.message, span.source.name, span.start, span.end)


def count(diags: Iterable[Diagnostic], severity: Severity) -> int:
    """How many of `diags` have `severity` (errors decide exit codes; warnings are counted and shown)."""
    return sum(d.severity is severity for d in diags)


def has_errors(diags: Iterable[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diags)


@dataclass
class DiagnosticSink:
    """Collects diagnostics of one run, without duplicates, in report order.

    One root cause, one error: a report with the code, message and primary span of an earlier
    one is folded into it, even if its secondary labels or notes differ (the same broken line of
    a LIV instantiated with other arguments, in every layer). The first report is kept as is and
    gets a note counting the other instantiations.
    """

    items: list[Diagnostic] = field(default_factory=list)
    _seen: dict[tuple[object, ...], tuple[int, list[Diagnostic]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        items, self.items = self.items, []
        for diag in items:
            self.report(diag)

    def report(self, diag: Diagnostic) -> None:
        key = _key(diag)
        seen = self._seen.get(key)
        if seen is None:
            self._seen[key] = (len(self.items), [diag])
            self.items.append(diag)
            return
        index, variants = seen
        if any((diag.secondary, diag.notes) == (v.secondary, v.notes) for v in variants):
            return
        variants.append(diag)
        more = len(variants) - 1
        first = variants[0]
        note = f"the same error occurs in {more} more instantiation{'s' if more > 1 else ''}"
        self.items[index] = replace(first, notes=(*first.notes, note))

    @property
    def has_errors(self) -> bool:
        return has_errors(self.items)

    def raise_if_errors(self) -> None:
        if self.has_errors:
            raise CompileError(tuple(self.items))


class CompileError(Exception):
    """Raised at a phase boundary; carries every diagnostic collected so far."""

    def __init__(self, diagnostics: tuple[Diagnostic, ...]) -> None:
        super().__init__(f"{len(diagnostics)} diagnostic(s)")
        self.diagnostics = diagnostics
