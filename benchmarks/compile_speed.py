"""Compile-speed benchmark: how long livc takes per stage, and how many cost evaluations it does per second.

For every examples/*.liv this times, best of N runs after one warm-up (time.perf_counter):

    parse         dsl.parser.parse_source on the file's own text (imports not followed)
    check         compiler.check.check_path: load + parse the file and its stdlib imports, resolve, elaborate
    build+passes  pipeline.compile_checked on that check result: IR build, expand, canonicalize, lower
    cost          analysis.costs.analyze on the compiled model(s)
    end to end    pipeline.analyze_path: all of the above plus budget checks, from the path

and, on an already compiled in-memory model, the rate of `analyze(model)` calls, of evaluating the report
at a context (`report_numbers(report, Context(seq=4096))`), and of both together.

Targets (from the issue): end to end < 50 ms for examples/lfm2_1_2b.liv; >= 500 static cost evaluations
per second on in-memory IR (analyze + evaluate, judged on lfm2_1_2b and reported for all examples).
The script reports PASS / MISS for each target and never fails on a miss.

    python benchmarks/compile_speed.py [--repeat N] [--min-time S] [--only NAME ...] [--out PATH]

Writes benchmarks/results/compile_speed.json. Timings depend on machine load: run it twice.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from livc.compiler.analysis.costs import analyze
from livc.compiler.analysis.evaluate import Context, report_numbers
from livc.compiler.check import check_path
from livc.compiler.pipeline import analyze_path, compile_checked
from livc.dsl.diagnostics import DiagnosticSink
from livc.dsl.parser import parse_source
from livc.dsl.source import SourceFile

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "compile_speed.json"
TARGET_EXAMPLE = "lfm2_1_2b"
END_TO_END_TARGET_S = 0.050
EVALS_PER_S_TARGET = 500.0
CONTEXT = Context(batch=1, seq=4096)


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """The fastest of `repeat` timed calls, in seconds, after one untimed warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def rate(fn: Callable[[], object], repeat: int, min_time: float) -> float:
    """Calls per second: the best of `repeat` rounds, each calling `fn` until `min_time` seconds have passed."""
    fn()
    best = 0.0
    for _ in range(repeat):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < min_time:
            fn()
            calls += 1
        best = max(best, calls / elapsed)
    return best


def bench_example(path: Path, repeat: int, min_time: float) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    checked = check_path(path)
    compiled = compile_checked(checked)
    if not compiled.ok or not compiled.models:
        return {"error": "does not compile"}
    models = compiled.models
    reports = [analyze(m) for m in models]

    def evaluate() -> None:
        for r in reports:
            report_numbers(r, CONTEXT)

    def analyze_and_evaluate() -> None:
        for m in models:
            report_numbers(analyze(m), CONTEXT)

    times = {
        "parse_s": best_of(lambda: parse_source(SourceFile(str(path), text), DiagnosticSink()), repeat),
        "check_s": best_of(lambda: check_path(path), repeat),
        "build_passes_s": best_of(lambda: compile_checked(checked), repeat),
        "cost_s": best_of(lambda: [analyze(m) for m in models], repeat),
        "end_to_end_s": best_of(lambda: analyze_path(path), repeat),
    }
    rates = {
        "analyze_per_s": rate(lambda: [analyze(m) for m in models], repeat, min_time),
        "evaluate_per_s": rate(evaluate, repeat, min_time),
        "analyze_evaluate_per_s": rate(analyze_and_evaluate, repeat, min_time),
    }
    return {
        "models": [m.name for m in models],
        "layers": sum(len(m.layers) for m in models),
        "params": sum(r.params for r in reports),
        **times,
        **rates,
    }


def _ms(s: float) -> str:
    return f"{s * 1e3:.1f}"


def render(results: dict[str, dict[str, Any]], console: Console) -> None:
    t = Table(title="livc compile speed (best of N after a warm-up; ms, and calls/s on in-memory IR)")
    for col in (
        "example",
        "layers",
        "parse",
        "check",
        "build+passes",
        "cost",
        "end to end",
        "analyze/s",
        "evaluate/s",
        "analyze+eval/s",
    ):
        t.add_column(col, justify="left" if col == "example" else "right")
    for name, r in results.items():
        if "error" in r:
            t.add_row(name, "-", *(["error"] + [""] * 7))
            continue
        t.add_row(
            name,
            str(r["layers"]),
            _ms(r["parse_s"]),
            _ms(r["check_s"]),
            _ms(r["build_passes_s"]),
            _ms(r["cost_s"]),
            _ms(r["end_to_end_s"]),
            f"{r['analyze_per_s']:,.0f}",
            f"{r['evaluate_per_s']:,.0f}",
            f"{r['analyze_evaluate_per_s']:,.0f}",
        )
    console.print(t)


def targets(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    target = results.get(TARGET_EXAMPLE)
    if target and "error" not in target:
        e2e = target["end_to_end_s"]
        out.append(
            {
                "target": f"end to end < {END_TO_END_TARGET_S * 1e3:.0f} ms ({TARGET_EXAMPLE}.liv)",
                "value": f"{e2e * 1e3:.1f} ms",
                "met": e2e < END_TO_END_TARGET_S,
            }
        )
        evals = target["analyze_evaluate_per_s"]
        out.append(
            {
                "target": f">= {EVALS_PER_S_TARGET:.0f} cost evaluations/s on in-memory IR ({TARGET_EXAMPLE})",
                "value": f"{evals:,.0f}/s",
                "met": evals >= EVALS_PER_S_TARGET,
            }
        )
    ok = [r for r in results.values() if "error" not in r]
    if ok:
        worst = min(r["analyze_evaluate_per_s"] for r in ok)
        out.append(
            {
                "target": f">= {EVALS_PER_S_TARGET:.0f} cost evaluations/s on in-memory IR (every example)",
                "value": f"slowest {worst:,.0f}/s",
                "met": worst >= EVALS_PER_S_TARGET,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (best is kept)")
    parser.add_argument("--min-time", type=float, default=0.25, help="seconds per round of a rate measurement")
    parser.add_argument("--only", nargs="*", help="example names (without .liv) to run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    paths = sorted(EXAMPLES.glob("*.liv"))
    if args.only:
        paths = [p for p in paths if p.stem in args.only]
    console = Console(width=170)
    results: dict[str, dict[str, Any]] = {}
    for path in paths:
        console.print(f"[dim]benchmarking {path.name} ...[/dim]")
        results[path.stem] = bench_example(path, args.repeat, args.min_time)
    render(results, console)
    checks = targets(results)
    for c in checks:
        verdict = "[green]PASS[/green]" if c["met"] else "[red]MISS[/red]"
        console.print(f"{verdict}  {c['target']}: {c['value']}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    meta = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": load,
        "repeat": args.repeat,
        "min_time_s": args.min_time,
        "context": {"batch": CONTEXT.batch, "seq": CONTEXT.seq},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"meta": meta, "examples": results, "targets": checks}, indent=2) + "\n", encoding="utf-8"
    )
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
