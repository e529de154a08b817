"""`livc check`: load, resolve and elaborate a program, collecting every diagnostic.

Phases: load (parse + imports) -> symbol tables -> static resolution -> evaluation of module
constants -> elaboration of every model in the root module, with `-D` overrides applied. Later
phases still run when earlier ones reported errors: failed values are poisoned, so independent
errors are all reported once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from livc.compiler.analysis.budget_lints import budget_items, budget_lints
from livc.compiler.elaboration.elaborate import elaborate_root
from livc.compiler.elaboration.evaluate import Evaluator
from livc.compiler.elaboration.model import ElaboratedModel
from livc.compiler.elaboration.overrides import Override
from livc.compiler.resolution.lints import source_lints
from livc.compiler.resolution.loader import Program, load_path, load_text, read_file
from livc.compiler.resolution.resolve import resolve_program
from livc.compiler.resolution.scope import LocalDef, build_tables
from livc.dsl import ast as A
from livc.dsl.diagnostics import Diagnostic, DiagnosticSink, error, has_errors
from livc.dsl.source import SourceFile, Span


@dataclass(frozen=True)
class CheckResult:
    program: Program | None
    models: tuple[ElaboratedModel, ...]
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


def check_program(
    program: Program, sink: DiagnosticSink, overrides: tuple[Override, ...] = ()
) -> tuple[ElaboratedModel, ...]:
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
    models = elaborate_root(ev, program.root, root.ast.items, overrides)
    if not sink.has_errors:
        report_warnings(root.ast, models, sink)
    return models


def report_warnings(module: A.Module, models: tuple[ElaboratedModel, ...], sink: DiagnosticSink) -> None:
    """Warnings (W0xxx) about the root file's text and its models' budgets, for error-free programs."""
    items = budget_items(module)
    for diag in source_lints(module) + [d for m in models for d in budget_lints(m, items)]:
        sink.report(diag)


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


def check_source(text: str, name: str = "<string>", overrides: tuple[Override, ...] = ()) -> CheckResult:
    """Check in-memory text, with model parameters set by `overrides`; never raises for any input."""
    sink = DiagnosticSink()
    try:
        program = load_text(text, name, sink)
        models = check_program(program, sink, tuple(overrides))
    except RecursionError:
        _too_deep(sink, name, text)
        return CheckResult(None, (), tuple(sink.items))
    return CheckResult(program, models, tuple(sink.items))


def check_path(path: Path, overrides: tuple[Override, ...] = ()) -> CheckResult:
    """Check a file on disk, with model parameters set by `overrides`; never raises for any input."""
    sink = DiagnosticSink()
    try:
        program = load_path(path, sink)
        models = check_program(program, sink, tuple(overrides)) if program is not None else ()
    except RecursionError:
        _too_deep(sink, str(path), read_file(path)[0] or "")
        return CheckResult(None, (), tuple(sink.items))
    return CheckResult(program, models, tuple(sink.items))


def check_text(text: str, name: str = "<string>") -> tuple[Diagnostic, ...]:
    return check_source(text, name).diagnostics
