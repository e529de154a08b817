"""Static costs and budget verdicts of a candidate's .liv text, computed before any training.

`static_costs(text, objectives, budgets)` compiles the text with the ordinary pipeline (the same
analysis as `livc cost`) and returns `Statics`: every cost an objective or a budget needs (params,
non_embedding_params, active_params, cache@SEQ bytes, flops@SEQ), the budget constraint values
(`value / limit - 1`, feasible when <= 0) and, for a candidate over a budget, the reason. A text that
`livc check` rejects yields `error` (that is a decode bug upstream; the engine records it as a failure).
Non-goals: measured costs (latency is measured by the workers), cost models other than livc's.
"""

from __future__ import annotations

from dataclasses import dataclass

from livc.compiler.analysis.budgets import budget_context, measure
from livc.compiler.analysis.costs import CostReport
from livc.compiler.analysis.evaluate import DEFAULT_SEQ, Context
from livc.compiler.check import check_source
from livc.compiler.ir.nodes import Budget
from livc.compiler.pipeline import analyze_checked
from livc.dsl.render import render_all_text
from livc.search.config import Objective

_METRIC = {"cache": "cache", "flops": "flops_per_token"}


@dataclass(frozen=True)
class Statics:
    costs: dict[str, float]
    constraints: tuple[float, ...]  # one per budget: value / limit - 1
    over: str | None  # why the candidate is over budget (None = within every budget)
    error: str | None = None  # the compiler rejected the text


def static_costs(text: str, objectives: tuple[Objective, ...], budgets: tuple[Budget, ...]) -> Statics:
    analyzed = analyze_checked(check_source(text, "<candidate>"))
    if not analyzed.compiled.models or not analyzed.compiled.ok:
        problems = render_all_text(analyzed.compiled.diagnostics).strip() or "no model"
        return Statics({}, tuple(1.0 for _ in budgets), None, f"livc check rejected the candidate: {problems}")
    report = analyzed.reports[0]
    costs = _costs(report, objectives, budgets)
    values = [_budget_value(report, b) for b in budgets]
    constraints = tuple(violation(v, b) for v, b in zip(values, budgets))
    over = [_over_text(v, b) for v, b, g in zip(values, budgets, constraints) if g > 0]
    return Statics(costs, constraints, "; ".join(over) if over else None)


def _costs(report: CostReport, objectives: tuple[Objective, ...], budgets: tuple[Budget, ...]) -> dict[str, float]:
    costs: dict[str, float] = {
        "params": report.params,
        "non_embedding_params": report.non_embedding_params,
        "active_params": report.active_params,
        f"cache@{DEFAULT_SEQ}": _measure(report, "cache", Context(seq=DEFAULT_SEQ)),  # for the report's plots
    }
    for o in objectives:
        if o.name in _METRIC and o.seq is not None:
            costs[o.label] = _measure(report, _METRIC[o.name], Context(seq=o.seq))
    for b in budgets:
        costs[budget_label(b)] = _budget_value(report, b)
    return costs


def _measure(report: CostReport, metric: str, ctx: Context) -> float:
    return measure(metric, report.total, ctx, report.dtype_bytes, report.embedding_params, report.inactive_params)


def _budget_value(report: CostReport, budget: Budget) -> float:
    return _measure(report, budget.metric, budget_context(budget))


def violation(value: float, budget: Budget) -> float:
    limit = float(budget.limit)
    if limit <= 0:
        return 1.0 if value > 0 or budget.strict else -1.0
    ratio = value / limit - 1.0
    return ratio + 1e-12 if budget.strict and ratio == 0 else ratio


def budget_label(budget: Budget) -> str:
    """`params`, `cache@4096` (the budget's metric and, for sequence metrics, its length)."""
    seq = dict(budget.args).get("seq")
    return f"{budget.metric}@{seq}" if seq is not None else budget.metric


def _over_text(value: float, budget: Budget) -> str:
    op = "<" if budget.strict else "<="
    return f"{budget_label(budget)} = {value:,.0f} exceeds {op} {float(budget.limit):,.0f}"
