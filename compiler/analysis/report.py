"""Render cost reports: a per-layer table (rich), budget margins, side-by-side comparisons, plots.

Text is rendered for a given width (the CLI passes the terminal's, or 80) and with colour only when
asked (the CLI asks on a TTY). The JSON forms are in `report_json`.
"""

from __future__ import annotations

import io
from fractions import Fraction

from rich import box
from rich.console import Console
from rich.table import Table

from livc.compiler.analysis.costs import CostReport, Row
from livc.compiler.analysis.evaluate import Context, numbers
from livc.compiler.analysis.report_json import BudgetResult


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


def _capacity(c: float | Fraction) -> str:
    """A MoR step's capacity: `1/3` exactly when it is a simple fraction, else 3 significant digits."""
    if isinstance(c, Fraction) and c.denominator <= 100:
        return f"{c.numerator}/{c.denominator}"
    return f"{float(c):.3g}"


def _row_cells(row: Row, ctx: Context, dtype_bytes: int) -> list[str]:
    n = numbers(row.total, ctx, dtype_bytes)
    key = f"layer {row.key}" if row.key.isdigit() else row.key
    shared = f" (+{human(row.shared_params)} shared)" if row.shared_params else ""
    cap = f" x{_capacity(row.capacity)}" if row.capacity != 1 else ""
    return [
        key,
        row.label + cap + shared,
        f"{n.params:,}",
        human(n.prefill_flops),
        human(n.decode_flops),
        human_bytes(n.cache_min_bytes),
        human_bytes(n.cache_alloc_bytes),
    ]


_NUMERIC = ("params", "prefill\nFLOPs", "decode\nFLOPs", "cache\n(min)", "cache\n(alloc)")


def table(report: CostReport, ctx: Context) -> Table:
    """Per-row costs; numbers never wrap or truncate (the operators column wraps to fit 80 columns)."""
    dtype = ctx.dtype.value if ctx.dtype else "model dtype"
    t = Table(
        title=f"{report.model} — batch {ctx.batch}, L = {ctx.seq:,} (decode at t = {ctx.seq - 1:,}), {dtype}",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1),
        collapse_padding=True,
        pad_edge=False,
    )
    t.add_column("", no_wrap=True)
    t.add_column("operators", overflow="fold", min_width=12)
    for col in _NUMERIC:
        t.add_column(col, justify="right", no_wrap=True)
    for row in report.rows:
        t.add_row(*_row_cells(row, ctx, report.dtype_bytes))
    total = Row(key="total", label="", total=report.total)
    t.add_row(*_row_cells(total, ctx, report.dtype_bytes), style="bold")
    return t


def summary_lines(report: CostReport, ctx: Context) -> list[str]:
    n = numbers(report.total, ctx, report.dtype_bytes)
    b = ctx.dtype.bytes if ctx.dtype else report.dtype_bytes
    return [
        f"parameters: {report.params:,} (non-embedding {report.non_embedding_params:,})"
        + (f"; active per token {report.active_params:,}" if report.active_params != report.params else ""),
        f"cache elements per sequence (min):   {report.total.cache_min}",
        f"cache elements per sequence (alloc): {report.total.cache_alloc}",
        f"cache bytes at L={ctx.seq:,}: min {n.cache_min_bytes:,} / alloc {n.cache_alloc_bytes:,} "
        f"({b} B/element, batch {ctx.batch})",
        f"prefill FLOPs(L) = {report.total.prefill}",
        f"decode FLOPs(t)  = {report.total.decode}   (t1 = t + 1 keys)",
        f"training activations at B={ctx.batch}, L={ctx.seq:,}: {human_bytes(n.activation_bytes)} (estimate)",
    ]


def _console(buf: io.StringIO, width: int, color: bool) -> Console:
    return Console(
        file=buf,
        width=width,
        color_system="standard" if color else None,
        force_terminal=color,
        highlight=False,
        soft_wrap=False,
    )


def _metric_value(metric: str, value: float) -> str:
    if metric in ("cache", "cache_alloc", "activations"):
        return human_bytes(value)
    if metric in ("params", "non_embedding_params", "active_params"):
        return f"{int(value):,}"
    return human(value)


def budget_line(result: BudgetResult) -> str:
    """`budget params <= 400M: 354,483,968 (margin 45,516,032) ok` (a negative margin: exceeded)."""
    b = result.budget
    at = "" if b.metric in ("params", "non_embedding_params", "active_params") else f" @ seq {result.context.seq:,}"
    verdict = "ok" if result.ok else "EXCEEDED"
    value, limit = _metric_value(b.metric, result.value), _metric_value(b.metric, b.limit)
    margin = _metric_value(b.metric, abs(result.margin))
    sign = "" if result.margin >= 0 else "-"
    op = "<" if b.strict else "<="
    return f"budget {b.metric}{at} {op} {limit}: {value} (margin {sign}{margin}) {verdict}"


def render_text(
    report: CostReport, ctx: Context, width: int = 80, color: bool = False, budgets: tuple[BudgetResult, ...] = ()
) -> str:
    buf = io.StringIO()
    console = _console(buf, width, color)
    console.print(table(report, ctx))
    for line in summary_lines(report, ctx) + [budget_line(b) for b in budgets]:
        console.print(line, markup=False)
    return buf.getvalue()


def comparison(reports: list[tuple[str, CostReport]], ctx: Context, width: int = 80, color: bool = False) -> str:
    t = Table(title=f"comparison — batch {ctx.batch}, seq {ctx.seq:,}")
    t.add_column("metric")
    for name, _ in reports:
        t.add_column(name, justify="right")
    metrics = [
        ("parameters", lambda r, n: f"{r.params:,}"),
        ("non-embedding parameters", lambda r, n: f"{r.non_embedding_params:,}"),
        ("active parameters / token", lambda r, n: f"{r.active_params:,}"),
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
    _console(buf, width, color).print(t)
    return buf.getvalue()


# Formats matplotlib's Agg canvas lists but that need more than matplotlib (pgf: a LaTeX install).
_UNSUPPORTED_PLOT_FORMATS = frozenset({"pgf"})


def plot_formats() -> tuple[str, ...]:
    """File extensions `plot_cache` can write: what matplotlib's Agg canvas supports (png, svg, pdf, ...)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return tuple(sorted(set(FigureCanvasAgg.get_supported_filetypes()) - _UNSUPPORTED_PLOT_FORMATS))


def plot_cache(reports: list[tuple[str, CostReport]], ctx: Context, seqs: list[int], fmt: str = "png") -> bytes:
    """The cache-vs-sequence-length plot (log axes) as the bytes of a `fmt` file (one of `plot_formats()`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    positive = False
    for name, report in reports:
        ys = [numbers(report.total, Context(ctx.batch, s, ctx.dtype), report.dtype_bytes).cache_min_bytes for s in seqs]
        positive = positive or any(y > 0 for y in ys)
        ax.plot(seqs, ys, marker="o", markersize=3, label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log" if positive else "linear", **({"base": 2} if positive else {}))  # no cache at all: linear
    ax.set_xlabel("sequence length L (tokens)")
    ax.set_ylabel(f"inference cache (bytes, batch {ctx.batch})")
    ax.set_title("Inference cache vs sequence length (minimal state)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=120, metadata=_plot_metadata(fmt))
    return buf.getvalue()


def _plot_metadata(fmt: str) -> dict[str, None] | None:
    """No software/date stamps where the format has them (reproducible files)."""
    keys = {"png": ("Software",), "svg": ("Date",), "pdf": ("Producer", "CreationDate"), "eps": ("CreationDate",)}
    return {k: None for k in keys.get(fmt, ())} or None
