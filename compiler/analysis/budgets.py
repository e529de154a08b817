"""Budgets: check declared (or command-line) limits against the static cost report.

Metrics: params, non_embedding_params, active_params (exact counts; active: MoE experts count
top_k of n, see `active.py`); cache (minimal state) and cache_alloc (what the generated module
allocates) in bytes at batch/seq/dtype; activations (training estimate, bytes); flops_per_token
(decode FLOPs of the token at position seq - 1); prefill_flops (batch x prefill at seq). A
violation is E0402; its labels point at the layers that contribute most, with their numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from livc.compiler.analysis.costs import Cost, CostReport, Row
from livc.compiler.analysis.evaluate import DEFAULT_SEQ, Context, numbers
from livc.compiler.ir.nodes import Budget, DType, Model
from livc.dsl.diagnostics import Diagnostic, Label, error
from livc.dsl.lexicon import number_value
from livc.dsl.source import NO_SPAN, SourceFile, Span

_CLI_BUDGET = re.compile(
    r"(?P<metric>[a-z_]+)(@(?P<seq>[0-9][0-9A-Za-z_.]*))?\s*(?P<op><=|<)\s*(?P<limit>[0-9][0-9A-Za-z_.]*)\Z"
)


def budget_context(budget: Budget) -> Context:
    """The context a budget is measured at: its batch/seq/dtype arguments, else batch 1, seq 4096."""
    args = dict(budget.args)
    dtype = args.get("dtype")
    return Context(
        batch=int(args.get("batch", 1) or 1),
        seq=int(args.get("seq", DEFAULT_SEQ) or DEFAULT_SEQ),
        dtype=DType(dtype) if isinstance(dtype, str) else None,
    )


PARAM_METRICS = ("params", "non_embedding_params", "active_params")  # exact counts, no batch/seq


def measure(metric: str, cost: Cost, ctx: Context, dtype_bytes: int, embedding: int = 0, inactive: int = 0) -> float:
    """`metric` of `cost` at `ctx`; `embedding` and `inactive` are the parameters the param metrics leave out."""
    n = numbers(cost, ctx, dtype_bytes)
    return {
        "params": n.params,
        "non_embedding_params": n.params - embedding,
        "active_params": n.params - inactive,
        "cache": n.cache_min_bytes,
        "cache_alloc": n.cache_alloc_bytes,
        "activations": n.activation_bytes,
        "flops_per_token": n.decode_flops,
        "prefill_flops": n.prefill_flops,
    }[metric]


def _fmt(metric: str, value: float) -> str:
    if metric in ("cache", "cache_alloc", "activations"):
        return f"{value / 2**20:,.2f} MiB ({int(value):,} bytes)"
    return f"{value:,.0f}"


def _top_rows(report: CostReport, budget: Budget, ctx: Context, k: int = 3) -> list[tuple[Row, float]]:
    scored = [
        (row, measure(budget.metric, row.total, ctx, report.dtype_bytes, inactive=row.inactive_params))
        for row in report.rows
    ]
    if budget.metric == "non_embedding_params":
        scored = [(r, v) for r, v in scored if r.key != "embedding"]
    return sorted(scored, key=lambda rv: -rv[1])[:k]


def _labels(model: Model, top: list[tuple[Row, float]], metric: str) -> tuple[Label, ...]:
    spans: dict[tuple[int, int, str], list[str]] = {}
    values: dict[tuple[int, int, str], float] = {}
    for row, value in top:
        span = _row_span(model, row)
        key = (span.start, span.end, span.source.name)
        spans.setdefault(key, []).append(row.key)
        values[key] = values.get(key, 0) + value
    out = []
    for row, _ in top:
        span = _row_span(model, row)
        key = (span.start, span.end, span.source.name)
        if key in spans and span.source.text:
            rows = spans.pop(key)
            where = ", ".join(r if not r.isdigit() else f"layer {r}" for r in rows)
            out.append(Label(span, f"{where}: {_fmt(metric, values[key])}"))
    return tuple(out)


def _row_span(model: Model, row: Row) -> Span:
    if row.key.isdigit():
        return model.layers[int(row.key)].sublayers[0].block.span
    block = {"embedding": model.embedding, "head": model.head, "final_norm": model.final_norm}.get(row.key)
    return block.span if block is not None else model.span


def check_budget(model: Model, report: CostReport, budget: Budget) -> Diagnostic | None:
    ctx = budget_context(budget)
    value = measure(
        budget.metric, report.total, ctx, report.dtype_bytes, report.embedding_params, report.inactive_params
    )
    over = value >= budget.limit if budget.strict else value > budget.limit
    if not over:
        return None
    top = _top_rows(report, budget, ctx)
    notes = tuple(
        f"{r.label} ({'layer ' + r.key if r.key.isdigit() else r.key}): {_fmt(budget.metric, v)}" for r, v in top
    )
    where = f" at batch {ctx.batch}, seq {ctx.seq}" if budget.metric not in PARAM_METRICS else ""
    return error(
        "E0402",
        f"budget exceeded: {budget.metric} = {_fmt(budget.metric, value)}{where}",
        budget.span if budget.span is not NO_SPAN else model.span,
        f"limit {'<' if budget.strict else '<='} {_fmt(budget.metric, budget.limit)}",
        secondary=_labels(model, top, budget.metric),
        notes=("largest contributors: " + "; ".join(notes),),
    )


def check_budgets(model: Model, report: CostReport, extra: tuple[Budget, ...] = ()) -> list[Diagnostic]:
    return [d for b in model.budgets + extra if (d := check_budget(model, report, b)) is not None]


@dataclass(frozen=True)
class BudgetSyntaxError(Exception):
    text: str
    reason: str


def parse_cli_budget(text: str, dtype: str = "bf16", batch: int = 1) -> Budget:
    """`params<=400M`, `cache@32768<=64MiB`, `flops_per_token@4K<2G` -> Budget (span on `<command line>`)."""
    from livc.compiler.ir import primitives as prim

    m = _CLI_BUDGET.match(text.strip())
    if m is None:
        raise BudgetSyntaxError(text, "expected METRIC[@SEQ]<=LIMIT, e.g. params<=400M or cache@32768<=64MiB")
    metric = m["metric"]
    if metric not in prim.BUDGET_METRICS:
        raise BudgetSyntaxError(text, f"unknown metric '{metric}'; metrics: {', '.join(prim.BUDGET_METRICS)}")
    limit, seq = number_value(m["limit"]), number_value(m["seq"]) if m["seq"] else None
    if limit is None or (m["seq"] and not isinstance(seq, int)):
        raise BudgetSyntaxError(text, "malformed number")
    args: tuple[tuple[str, object], ...] = ()
    if "seq" in prim.BUDGET_METRICS[metric]:
        args = (("seq", seq or DEFAULT_SEQ),) + (
            (("batch", batch), ("dtype", dtype)) if metric != "flops_per_token" else ()
        )
    source = SourceFile("<command line>", text)
    return Budget(
        metric=metric,
        args=args,
        limit=limit,
        strict=m["op"] == "<",  # type: ignore[arg-type]
        span=Span(source, 0, len(text)),
    )
