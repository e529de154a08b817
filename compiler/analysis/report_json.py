"""JSON forms of cost reports and budget results (the shapes are documented in docs/cli.md).

Exact quantities stay exact: parameter counts, cache bytes and every cost that evaluates to an
integer are JSON integers; symbolic costs are structured polynomials (one object per term, with its
coefficient and its atoms), never pre-formatted strings only. Non-integral rationals (the capacity
of a Mixture-of-Recursions step) are a float plus the exact `[numerator, denominator]`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from livc.compiler.analysis.budgets import budget_context, measure
from livc.compiler.analysis.costs import Cost, CostReport, Row
from livc.compiler.analysis.evaluate import Context, numbers
from livc.compiler.ir.nodes import Budget, Model
from livc.compiler.ir.sym import Atom, Monomial, Number, Poly

JSON = dict[str, Any]


def number_json(value: Number) -> int | float | None:
    """An exact integer when the value is one, else a float (None for a non-finite float)."""
    if isinstance(value, Fraction) and value.denominator == 1:
        return int(value)
    if isinstance(value, int):
        return value
    f = float(value)
    if not math.isfinite(f):
        return None
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def rational_json(value: Number) -> JSON:
    """`{"value": float-or-int}` plus `"exact": [p, q]` for a non-integral Fraction."""
    out: JSON = {"value": number_json(value)}
    if isinstance(value, Fraction) and value.denominator != 1:
        out["exact"] = [value.numerator, value.denominator]
    return out


_ATOM_KINDS = {"sym": "sym", "min": "min", "log": "log2x"}  # log: log2(2·var), the FFT-convolution factor


def atom_json(atom: Atom) -> JSON:
    """`{"kind": "sym", "var": "L"}`, `{"kind": "min", "var": "L", "arg": W}` or `{"kind": "log2x", "var": "L"}`."""
    if atom.kind == "min":
        return {"kind": "min", "var": atom.name, "arg": atom.arg}
    return {"kind": _ATOM_KINDS[atom.kind], "var": atom.name}


def _factors(mono: Monomial) -> list[JSON]:
    powers: dict[Atom, int] = {}
    for a in mono:
        powers[a] = powers.get(a, 0) + 1
    return [{"atom": atom_json(a), "power": p} for a, p in sorted(powers.items())]


def poly_json(poly: Poly) -> JSON:
    """`{"text": "...", "terms": [{"coeff": 12288, "monomial": [{"atom": {...}, "power": 2}]}, ...]}`."""
    terms = []
    for mono, coeff in sorted(poly.terms.items(), key=lambda mc: (-len(mc[0]), mc[0])):
        term: JSON = {"coeff": number_json(coeff), "monomial": _factors(mono)}
        if isinstance(coeff, Fraction) and coeff.denominator != 1:
            term["coeff_exact"] = [coeff.numerator, coeff.denominator]
        terms.append(term)
    return {"text": str(poly), "terms": terms}


def _scaled(poly: Poly, ctx: Context, scale: int) -> int | float | None:
    value = poly.evaluate(**ctx.env())
    return number_json(value * scale if isinstance(value, int) else float(value) * scale)


def cost_values(cost: Cost, ctx: Context, dtype_bytes: int) -> JSON:
    """The cost at one context: FLOPs for the batch, bytes for the batch at the context's dtype."""
    n = numbers(cost, ctx, dtype_bytes)
    return {
        "params": n.params,
        "prefill_flops": _scaled(cost.prefill, ctx, ctx.batch),
        "decode_flops": _scaled(cost.decode, ctx, ctx.batch),
        "cache_min_bytes": n.cache_min_bytes,
        "cache_alloc_bytes": n.cache_alloc_bytes,
        "activation_bytes": n.activation_bytes,
    }


def cost_symbolic(cost: Cost) -> JSON:
    return {
        "prefill_flops": poly_json(cost.prefill),
        "decode_flops": poly_json(cost.decode),
        "cache_min_elements": poly_json(cost.cache_min),
        "cache_alloc_elements": poly_json(cost.cache_alloc),
        "activation_elements": poly_json(cost.activations),
    }


def context_json(ctx: Context) -> JSON:
    return {"batch": ctx.batch, "seq": ctx.seq, "dtype": ctx.dtype.value if ctx.dtype else None}


def _row_json(row: Row, ctx: Context, dtype_bytes: int) -> JSON:
    return {
        "key": row.key,
        "label": row.label,
        "capacity": rational_json(row.capacity),
        "shared_params": row.shared_params,
        "active_params": row.active_params,
        **cost_values(row.total, ctx, dtype_bytes),
        "parts": {name: c.params for name, c in row.parts},
    }


@dataclass(frozen=True)
class BudgetResult:
    """One budget measured: its value, its limit and the margin (limit - value; negative = exceeded)."""

    budget: Budget
    context: Context
    value: int | float

    @property
    def ok(self) -> bool:
        return self.value < self.budget.limit if self.budget.strict else self.value <= self.budget.limit

    @property
    def margin(self) -> int | float:
        return self.budget.limit - self.value

    @property
    def source(self) -> str:
        return self.budget.span.source.name if self.budget.span.source.text else "<model>"


def budget_results(model: Model, report: CostReport, extra: tuple[Budget, ...] = ()) -> tuple[BudgetResult, ...]:
    """Every budget of the model (declared, then command-line) with its measured value."""
    out = []
    for budget in model.budgets + extra:
        ctx = budget_context(budget)
        value = measure(
            budget.metric, report.total, ctx, report.dtype_bytes, report.embedding_params, report.inactive_params
        )
        out.append(BudgetResult(budget, ctx, number_json(value) or 0))
    return tuple(out)


def budget_json(result: BudgetResult) -> JSON:
    b = result.budget
    return {
        "metric": b.metric,
        "args": {k: v for k, v in b.args},
        "op": "<" if b.strict else "<=",
        "limit": number_json(b.limit),
        "value": result.value,
        "margin": number_json(result.margin),
        "ok": result.ok,
        "source": result.source,
    }


def report_json(report: CostReport, ctx: Context, budgets: tuple[BudgetResult, ...] = (), rows: bool = True) -> JSON:
    """A model's report at `ctx`: totals (numbers and polynomials), budgets and (if `rows`) per-row costs."""
    out: JSON = {
        "model": report.model,
        "context": context_json(ctx),
        "params": report.params,
        "non_embedding_params": report.non_embedding_params,
        "active_params": report.active_params,
        "total": {**cost_values(report.total, ctx, report.dtype_bytes), "symbolic": cost_symbolic(report.total)},
        "budgets": [budget_json(b) for b in budgets],
    }
    if rows:
        out["rows"] = [_row_json(r, ctx, report.dtype_bytes) for r in report.rows]
    return out
