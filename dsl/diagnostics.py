"""Diagnostics as data.

Detection code creates `Diagnostic` values and reports them into a `DiagnosticSink`; rendering
(rustc-style text or JSON) lives in `render.py`. A phase raises `CompileError` once, at its end, if
the sink holds errors — so one run reports many independent errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass
class DiagnosticSink:
    """Collects diagnostics of one run, without duplicates, in report order."""

    items: list[Diagnostic] = field(default_factory=list)

    def report(self, diag: Diagnostic) -> None:
        if diag not in self.items:
            self.items.append(diag)

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.items)

    def raise_if_errors(self) -> None:
        if self.has_errors:
            raise CompileError(tuple(self.items))


class CompileError(Exception):
    """Raised at a phase boundary; carries every diagnostic collected so far."""

    def __init__(self, diagnostics: tuple[Diagnostic, ...]) -> None:
        super().__init__(f"{len(diagnostics)} diagnostic(s)")
        self.diagnostics = diagnostics
