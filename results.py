"""What `livc check` and `livc cost` found, per file and model, rendered as text or one JSON document.

A `FileResult` holds one file's analysis (models, cost reports, budget results at the requested
context) and its diagnostics. `document` builds the JSON document described in docs/cli.md; the text
helpers render diagnostics (with the error/warning counts) and the one-line `check` summaries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from livc import __version__
from livc.compiler.analysis.costs import CostReport
from livc.compiler.analysis.evaluate import Context, default_seq
from livc.compiler.analysis.report import budget_line
from livc.compiler.analysis.report_json import BudgetResult, budget_results, report_json
from livc.compiler.elaboration.model import ElaboratedModel
from livc.compiler.ir.nodes import Budget, DType, Model
from livc.compiler.pipeline import Analyzed
from livc.dsl.diagnostics import Diagnostic, Severity, count, has_errors
from livc.dsl.render import render_text, to_json

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ModelResult:
    model: Model
    elaborated: ElaboratedModel
    report: CostReport
    context: Context
    budgets: tuple[BudgetResult, ...]


@dataclass(frozen=True)
class FileResult:
    file: str
    models: tuple[ModelResult, ...]
    diagnostics: tuple[Diagnostic, ...]

    @property
    def errors(self) -> int:
        return count(self.diagnostics, Severity.ERROR)

    @property
    def warnings(self) -> int:
        return count(self.diagnostics, Severity.WARNING)

    def ok(self, deny_warnings: bool = False) -> bool:
        return self.errors == 0 and not (deny_warnings and self.warnings)


def model_context(model: Model, batch: int, seq: int | None, dtype: DType | None) -> Context:
    """The requested context; without `--seq`, the model's `context:` (else 4096 tokens)."""
    return Context(batch=batch, seq=seq or default_seq(model), dtype=dtype)


def file_result(
    file: str, analyzed: Analyzed, batch: int, seq: int | None, dtype: DType | None, extra: tuple[Budget, ...]
) -> FileResult:
    models = tuple(
        ModelResult(m, e, r, model_context(m, batch, seq, dtype), budget_results(m, r, extra))
        for m, e, r in zip(analyzed.compiled.models, analyzed.compiled.check.models, analyzed.reports)
    )
    return FileResult(file, models if analyzed.ok else (), analyzed.diagnostics)


# ---------------------------------------------------------------------------------------------------------
# Text


def _colored(text: str, severity: Severity, color: bool) -> str:
    if not color:
        return text
    head, _, rest = text.partition("\n")
    code = "1;31" if severity is Severity.ERROR else "1;33"
    return f"\x1b[{code}m{head}\x1b[0m" + (f"\n{rest}" if rest else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def diagnostics_text(diags: Sequence[Diagnostic], color: bool = False, deny_warnings: bool = False) -> str:
    """Every diagnostic rustc-style, then `error: aborting due to 1 previous error; 2 warnings emitted`."""
    if not diags:
        return ""
    parts = [_colored(render_text(d), d.severity, color) for d in diags]
    errors, warnings = count(diags, Severity.ERROR), count(diags, Severity.WARNING)
    counted = f"{_plural(warnings, 'warning')} emitted" if warnings else ""
    if errors:
        parts.append(
            f"error: aborting due to {_plural(errors, 'previous error')}" + (f"; {counted}" if counted else "")
        )
    elif warnings and deny_warnings:
        parts.append(f"error: aborting due to {_plural(warnings, 'warning')} (--deny-warnings)")
    elif warnings:
        parts.append(f"warning: {counted}")
    return "\n\n".join(parts) + "\n"


def check_lines(result: FileResult) -> list[str]:
    """`FILE: ok: model M: 16 layers (...); 354,483,968 params; cache ...` and one line per budget."""
    if not result.models:
        return [f"{result.file}: ok (no models)"]
    lines = []
    for m in result.models:
        cache = m.report.total.cache_min
        lines.append(f"{result.file}: ok: {summary(m.elaborated)}; {m.report.params:,} params; cache {cache} elements")
        lines += [f"  {budget_line(b)}" for b in m.budgets]
    return lines


def summary(model: ElaboratedModel) -> str:
    kinds: dict[str, int] = {}
    for layer in model.layers:
        for sub in layer.sublayers:
            kinds[sub.op.name] = kinds.get(sub.op.name, 0) + 1
    ops = ", ".join(f"{n}x {k}" for k, n in kinds.items())
    extras = [f"{len(model.shares)} sharing declaration(s)"] if model.shares else []
    if model.recursion is not None:
        extras.append(f"MoR x{model.recursion.recursions} ({model.recursion.sharing})")
    extras += [f"{len(model.budgets)} budget(s)"] if model.budgets else []
    return f"model {model.name}: {_plural(len(model.layers), 'layer')} ({ops})" + "".join(f"; {e}" for e in extras)


# ---------------------------------------------------------------------------------------------------------
# JSON


def _model_json(m: ModelResult, rows: bool) -> dict[str, Any]:
    return {"layers": len(m.model.layers), **report_json(m.report, m.context, m.budgets, rows=rows)}


def document(
    command: str,
    results: Sequence[FileResult],
    deny_warnings: bool = False,
    rows: bool = False,
    extra_diagnostics: Sequence[Diagnostic] = (),
) -> dict[str, Any]:
    """The one JSON document a `--format json` run prints (see docs/cli.md)."""
    diags = [d for r in results for d in r.diagnostics] + list(extra_diagnostics)
    ok = all(r.ok(deny_warnings) for r in results) and not has_errors(diags)
    return {
        "livc": __version__,
        "schema": SCHEMA_VERSION,
        "command": command,
        "ok": ok,
        "files": [
            {"file": r.file, "ok": r.ok(deny_warnings), "models": [_model_json(m, rows) for m in r.models]}
            for r in results
        ],
        "diagnostics": [to_json(d) for d in diags],
        "summary": {
            "errors": count(diags, Severity.ERROR),
            "warnings": count(diags, Severity.WARNING),
        },
    }


def failure_document(command: str, kind: str, message: str) -> dict[str, Any]:
    """The JSON document of a run that stopped before any file was analysed (usage or internal error)."""
    return {
        "livc": __version__,
        "schema": SCHEMA_VERSION,
        "command": command,
        "ok": False,
        "files": [],
        "diagnostics": [],
        "summary": {"errors": 1, "warnings": 0},
        kind: message,
    }


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"
