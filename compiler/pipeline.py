"""The compiler pipeline, as one explicit ordered tuple of named stages.

    load -> resolve -> elaborate   (front end: compiler.check)   -> ElaboratedModel
    build -> expand -> canonicalize -> lower                     -> ir.Model after each stage

`compile_checked` runs the front end and then the IR stages up to `stop_after`, running the IR
verifier after `build` and after every IR stage (it is cheap: ~1% of compiling examples/lfm2_1_2b.liv).
A verifier failure is a compiler bug, raised as `InternalError` naming the stage and the problems,
never a silently wrong module; `verify=False` skips it (for tests and `livc ir` on broken IR).
Errors in the program are reported into one sink; a stage that fails returns None for that model and
later stages are skipped for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from livc.compiler.analysis.budgets import check_budgets
from livc.compiler.analysis.costs import CostReport, analyze
from livc.compiler.check import CheckResult, check_path, check_source
from livc.compiler.elaboration.evaluate import Evaluator
from livc.compiler.elaboration.model import ElaboratedModel
from livc.compiler.elaboration.overrides import Override
from livc.compiler.ir.nodes import Budget, Model
from livc.compiler.ir.verify import verify as verify_ir
from livc.compiler.passes import canonicalize, expand, lower
from livc.compiler.passes.build import build_model
from livc.compiler.resolution.scope import build_tables
from livc.dsl.diagnostics import Diagnostic, DiagnosticSink, has_errors

Stage = Callable[[Model, DiagnosticSink], Model | None]

IR_STAGES: tuple[tuple[str, Stage], ...] = (
    ("expand", expand.run),
    ("canonicalize", canonicalize.run),
    ("lower", lower.run),
)
STAGE_NAMES = ("build",) + tuple(name for name, _ in IR_STAGES)


@dataclass(frozen=True)
class Compiled:
    check: CheckResult
    models: tuple[Model, ...]
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


class InternalError(Exception):
    """The compiler broke an IR invariant: a bug in livc, not in the program (the CLI exits 70)."""

    def __init__(self, model: str, stage: str, problems: tuple[str, ...]) -> None:
        self.model, self.stage, self.problems = model, stage, problems
        listed = "".join(f"\n  - {p}" for p in problems[:_SHOWN])
        more = f"\n  ... and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        super().__init__(f"IR verifier failed for model {model} after stage '{stage}':{listed}{more}")


_SHOWN = 20


def _verify(model: Model, stage: str) -> None:
    problems = verify_ir(model, stage=stage)
    if problems:
        raise InternalError(model.name, stage, tuple(problems))


def run_stages(model: Model, sink: DiagnosticSink, stop_after: str = "lower", verify: bool = True) -> Model | None:
    if verify:
        _verify(model, "build")
    if stop_after == "build":
        return model
    current: Model | None = model
    for name, stage in IR_STAGES:
        assert current is not None
        current = stage(current, sink)
        if current is None:
            return None
        if verify:
            _verify(current, name)
        if name == stop_after:
            break
    return current


def compile_checked(check: CheckResult, stop_after: str = "lower", verify: bool = True) -> Compiled:
    sink = DiagnosticSink(list(check.diagnostics))
    if not check.ok or check.program is None:
        return Compiled(check, (), tuple(sink.items))
    ev = Evaluator(check.program, build_tables(check.program, DiagnosticSink()), sink)
    models = []
    for elaborated in check.models:
        built = build_model(ev, elaborated)
        final = run_stages(built, sink, stop_after, verify) if built is not None else None
        if final is not None:
            models.append(final)
    return Compiled(check, tuple(models), tuple(sink.items))


def compile_path(
    path: Path, stop_after: str = "lower", verify: bool = True, *, overrides: tuple[Override, ...] = ()
) -> Compiled:
    return compile_checked(check_path(path, overrides), stop_after, verify)


def compile_source(
    text: str,
    name: str = "<string>",
    stop_after: str = "lower",
    verify: bool = True,
    *,
    overrides: tuple[Override, ...] = (),
) -> Compiled:
    return compile_checked(check_source(text, name, overrides), stop_after, verify)


def elaborated_models(result: Compiled) -> tuple[ElaboratedModel, ...]:
    return result.check.models


@dataclass(frozen=True)
class Analyzed:
    """Compiled models with their cost reports; budget violations are in `diagnostics`."""

    compiled: Compiled
    reports: tuple[CostReport, ...]
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


def analyze_checked(check: CheckResult, extra_budgets: tuple[Budget, ...] = (), verify: bool = True) -> Analyzed:
    compiled = compile_checked(check, "lower", verify)
    reports = tuple(analyze(m) for m in compiled.models)
    budget_diags = [d for m, r in zip(compiled.models, reports) for d in check_budgets(m, r, extra_budgets)]
    return Analyzed(compiled, reports, compiled.diagnostics + tuple(budget_diags))


def analyze_path(
    path: Path, extra_budgets: tuple[Budget, ...] = (), verify: bool = True, *, overrides: tuple[Override, ...] = ()
) -> Analyzed:
    return analyze_checked(check_path(path, overrides), extra_budgets, verify)
