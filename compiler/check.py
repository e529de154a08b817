"""`livc check`: load, resolve and elaborate a program, collecting every diagnostic.

Phases: load (parse + imports) -> symbol tables -> static resolution -> evaluation of module
constants -> elaboration of every model in the root module. Later phases still run when earlier
ones reported errors: failed values are poisoned, so independent errors are all reported once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from livc.compiler.elaboration.elaborate import elaborate_model
from livc.compiler.elaboration.evaluate import Evaluator
from livc.compiler.elaboration.model import ElaboratedModel
from livc.compiler.resolution.loader import Program, load_path, load_text
from livc.compiler.resolution.resolve import resolve_program
from livc.compiler.resolution.scope import LocalDef, build_tables
from livc.dsl import ast as A
from livc.dsl.diagnostics import Diagnostic, DiagnosticSink, error
from livc.dsl.source import SourceFile, Span


@dataclass(frozen=True)
class CheckResult:
    program: Program | None
    models: tuple[ElaboratedModel, ...]
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not any(d.severity.value == "error" for d in self.diagnostics)


def check_program(program: Program, sink: DiagnosticSink) -> tuple[ElaboratedModel, ...]:
    tables = build_tables(program, sink)
    resolve_program(program, tables, sink)
    ev = Evaluator(program, tables, sink)
    for key, loaded in program.modules.items():
        for item in loaded.ast.items:
            if isinstance(item, A.Let):
                ev.global_value(key, LocalDef(key, item), item.span)
    root = program.modules.get(program.root)
    if root is None:
        return ()
    models = [elaborate_model(ev, program.root, d) for d in root.ast.items if _is_model(d)]
    return tuple(m for m in models if m is not None)


def _is_model(item: A.Item) -> bool:
    return isinstance(item, A.Def) and item.kind is A.DefKind.MODEL


def _too_deep(sink: DiagnosticSink, name: str, text: str) -> None:
    source = SourceFile(name, text)
    sink.report(
        error(
            "E0110",
            "program nested too deeply",
            Span(source, 0, min(1, len(text))),
            "livc gave up here",
            help="split long expressions into `let` bindings",
        )
    )


def check_source(text: str, name: str = "<string>") -> CheckResult:
    """Check in-memory text; never raises for any input."""
    sink = DiagnosticSink()
    try:
        program = load_text(text, name, sink)
        models = check_program(program, sink)
    except RecursionError:
        _too_deep(sink, name, text)
        return CheckResult(None, (), tuple(sink.items))
    return CheckResult(program, models, tuple(sink.items))


def check_path(path: Path) -> CheckResult:
    """Check a file on disk; never raises for any input."""
    sink = DiagnosticSink()
    try:
        program = load_path(path, sink)
        models = check_program(program, sink) if program is not None else ()
    except RecursionError:
        _too_deep(sink, str(path), path.read_text(encoding="utf-8", errors="replace"))
        return CheckResult(None, (), tuple(sink.items))
    return CheckResult(program, models, tuple(sink.items))


def check_text(text: str, name: str = "<string>") -> tuple[Diagnostic, ...]:
    return check_source(text, name).diagnostics
