"""Render cost reports: a per-layer table (rich), JSON for tools, side-by-side comparisons, plots."""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from livc.compiler.analysis.costs import Cost, CostReport, Row
from livc.compiler.analysis.evaluate import Context, numbers


def human(n: float, unit: str = "") -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def human_bytes(n: float) -> str:
    for scale, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {suffix}"
    return f"{n:.0f} B"


def _row_cells(row: Row, ctx: Context, dtype_bytes: int) -> list[str]:
    n = numbers(row.total, ctx, dtype_bytes)
    key = f"layer {row.key}" if row.key.isdigit() else row.key
    shared = f" (+{human(row.shared_params)} shared)" if row.shared_params else ""
    cap = f" x{row.capacity:.3g}" if row.capacity != 1.0 else ""
    return [
        key,
        row.label + cap,
        f"{n.params:,}{shared}",
        human(n.prefill_flops),
        human(n.decode_flops),
        human_bytes(n.cache_min_bytes),
        human_bytes(n.cache_alloc_bytes),
    ]


def table(report: CostReport, ctx: Context) -> Table:
    t = Table(
        title=f"{report.model} — batch {ctx.batch}, seq {ctx.seq:,}, {ctx.dtype.value if ctx.dtype else 'model dtype'}"
    )
    for col in (
        "",
        "operators",
        "params",
        f"prefill FLOPs @L={ctx.seq:,}",
        f"decode FLOPs @t={ctx.seq - 1:,}",
        "cache (min)",
        "cache (alloc)",
    ):
        t.add_column(col, justify="left" if col in ("", "operators") else "right")
    for row in report.rows:
        t.add_row(*_row_cells(row, ctx, report.dtype_bytes))
    total = Row(key="total", label="", total=report.total)
    t.add_row(*_row_cells(total, ctx, report.dtype_bytes), style="bold")
    return t


def summary_lines(report: CostReport, ctx: Context) -> list[str]:
    n = numbers(report.total, ctx, report.dtype_bytes)
    b = ctx.dtype.bytes if ctx.dtype else report.dtype_bytes
    return [
        f"parameters: {report.params:,} (non-embedding {report.non_embedding_params:,})",
        f"cache elements per sequence (min):   {report.total.cache_min}",
        f"cache elements per sequence (alloc): {report.total.cache_alloc}",
        f"cache bytes at L={ctx.seq:,}: min {n.cache_min_bytes:,} / alloc {n.cache_alloc_bytes:,} "
        f"({b} B/element, batch {ctx.batch})",
        f"prefill FLOPs(L) = {report.total.prefill}",
        f"decode FLOPs(t)  = {report.total.decode}   (t1 = t + 1 keys)",
        f"training activations at B={ctx.batch}, L={ctx.seq:,}: {human_bytes(n.activation_bytes)} (estimate)",
    ]


def render_text(report: CostReport, ctx: Context, width: int = 160) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, highlight=False)
    console.print(table(report, ctx))
    for line in summary_lines(report, ctx):
        console.print(line)
    return buf.getvalue()


def _cost_json(cost: Cost, ctx: Context, dtype_bytes: int) -> dict[str, Any]:
    n = numbers(cost, ctx, dtype_bytes)
    return {
        "params": n.params,
        "prefill_flops": n.prefill_flops,
        "decode_flops": n.decode_flops,
        "cache_min_bytes": n.cache_min_bytes,
        "cache_alloc_bytes": n.cache_alloc_bytes,
        "activation_bytes": n.activation_bytes,
        "symbolic": {
            "prefill_flops": str(cost.prefill),
            "decode_flops": str(cost.decode),
            "cache_min_elements": str(cost.cache_min),
            "cache_alloc_elements": str(cost.cache_alloc),
            "activation_elements": str(cost.activations),
        },
    }


def to_json(report: CostReport, ctx: Context) -> dict[str, Any]:
    return {
        "model": report.model,
        "context": {"batch": ctx.batch, "seq": ctx.seq, "dtype": ctx.dtype.value if ctx.dtype else None},
        "params": report.params,
        "non_embedding_params": report.non_embedding_params,
        "total": _cost_json(report.total, ctx, report.dtype_bytes),
        "rows": [
            {
                "key": r.key,
                "label": r.label,
                "capacity": r.capacity,
                "shared_params": r.shared_params,
                **_cost_json(r.total, ctx, report.dtype_bytes),
                "parts": {name: _cost_json(c, ctx, report.dtype_bytes)["params"] for name, c in r.parts},
            }
            for r in report.rows
        ],
    }


def render_json(reports: list[CostReport], ctx: Context) -> str:
    return json.dumps({"reports": [to_json(r, ctx) for r in reports]}, indent=2, sort_keys=True) + "\n"


def comparison(reports: list[tuple[str, CostReport]], ctx: Context, width: int = 160) -> str:
    t = Table(title=f"comparison — batch {ctx.batch}, seq {ctx.seq:,}")
    t.add_column("metric")
    for name, _ in reports:
        t.add_column(name, justify="right")
    metrics = [
        ("parameters", lambda r, n: f"{r.params:,}"),
        ("non-embedding parameters", lambda r, n: f"{r.non_embedding_params:,}"),
        ("prefill FLOPs", lambda r, n: human(n.prefill_flops)),
        ("decode FLOPs / token", lambda r, n: human(n.decode_flops)),
        ("cache (min)", lambda r, n: human_bytes(n.cache_min_bytes)),
        ("cache (alloc)", lambda r, n: human_bytes(n.cache_alloc_bytes)),
        ("training activations", lambda r, n: human_bytes(n.activation_bytes)),
    ]
    nums = [numbers(r.total, ctx, r.dtype_bytes) for _, r in reports]
    for label, fn in metrics:
        t.add_row(label, *[fn(r, n) for (_, r), n in zip(reports, nums)])
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, highlight=False).print(t)
    return buf.getvalue()


def plot_cache(reports: list[tuple[str, CostReport]], ctx: Context, seqs: list[int], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, report in reports:
        ys = [numbers(report.total, Context(ctx.batch, s, ctx.dtype), report.dtype_bytes).cache_min_bytes for s in seqs]
        ax.plot(seqs, ys, marker="o", markersize=3, label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("sequence length L (tokens)")
    ax.set_ylabel(f"inference cache (bytes, batch {ctx.batch})")
    ax.set_title("Inference cache vs sequence length (minimal state)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)
