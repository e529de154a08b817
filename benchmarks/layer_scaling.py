"""Layer scaling: `livc check` and `livc build` must be linear in the number of layers.

Generates the shipped Transformer++ example at several depths (the file's `n_layers` default is rewritten in
the text, so nothing else changes) and times, in this process, best of N after a warm-up:

    check   pipeline.analyze_path: parse, resolve, elaborate, IR passes, costs and budgets
    build   check + backends.pytorch.generate (the code `livc build --target torch` writes)

Python's cyclic GC makes long compiles superlinear (its full collections scan every live IR node), so the
`livc` command line raises the GC thresholds (`livc.cli.GC_THRESHOLDS`); this benchmark runs with the same
setting, and `--default-gc` measures with Python's defaults for comparison.

It reports seconds, microseconds per layer, and the log-log slope of time against depth between the
smallest and the largest depth (1.0 = linear, 2.0 = quadratic). Goals (issue 7): slope <= 1.2 for both, and
10,000 layers check and build in seconds (< 10 s each on this 2-core machine). The script prints PASS / MISS
and never fails on a miss.

    python benchmarks/layer_scaling.py [--depths 500,1000,2000,4000,10000] [--repeat N] [--out PATH]

Writes benchmarks/results/layer_scaling.json.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from livc.backends.pytorch.generate import generate
from livc.cli import GC_THRESHOLDS  # the command line's setting
from livc.compiler.pipeline import analyze_path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "examples" / "transformer_pp.liv"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "layer_scaling.json"
SLOPE_GOAL = 1.2
DEEPEST_GOAL_S = 10.0


def program(depth: int) -> str:
    """The Transformer++ example with `depth` layers and no budget block (a 10,000-layer model exceeds it)."""
    text = SOURCE.read_text(encoding="utf-8")
    text = re.sub(r"n_layers: int = \d+", f"n_layers: int = {depth}", text)
    return re.sub(r"\n    budget \{.*?\n    \}\n", "\n", text, flags=re.S)


def best_of(fn: Callable[[], object], repeat: int) -> float:
    fn()
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def check(path: Path) -> None:
    result = analyze_path(path)
    if not result.ok:
        raise SystemExit(f"{path}: unexpected diagnostics")


def build(path: Path) -> None:
    result = analyze_path(path)
    for model in result.compiled.models:
        generate(model, str(path), "")


def slope(rows: list[dict[str, float]], key: str) -> float:
    first, last = rows[0], rows[-1]
    return math.log(last[key] / first[key]) / math.log(last["layers"] / first["layers"])


def measure(depths: list[int], repeat: int, workdir: Path) -> list[dict[str, float]]:
    rows = []
    for depth in depths:
        path = workdir / f"tpp_{depth}.liv"
        path.write_text(program(depth), encoding="utf-8")
        reps = repeat if depth <= 2000 else 1
        rows.append({"layers": depth, "check_s": best_of(functools.partial(check, path), reps)})
        rows[-1]["build_s"] = best_of(functools.partial(build, path), reps)
    return rows


def report(rows: list[dict[str, float]]) -> dict[str, object]:
    table = Table(title="livc check / build time against depth (Transformer++)")
    for col in ("layers", "check s", "check µs/layer", "build s", "build µs/layer"):
        table.add_column(col, justify="right")
    for r in rows:
        n = r["layers"]
        table.add_row(
            f"{int(n):,}",
            f"{r['check_s']:.3f}",
            f"{1e6 * r['check_s'] / n:.0f}",
            f"{r['build_s']:.3f}",
            f"{1e6 * r['build_s'] / n:.0f}",
        )
    console = Console(width=100)
    console.print(table)
    slopes = {k: slope(rows, f"{k}_s") for k in ("check", "build")}
    deepest = rows[-1]
    verdicts = {
        "slope": all(s <= SLOPE_GOAL for s in slopes.values()),
        "deepest": max(deepest["check_s"], deepest["build_s"]) < DEEPEST_GOAL_S,
    }
    console.print(
        f"log-log slope: check {slopes['check']:.2f}, build {slopes['build']:.2f} (goal <= {SLOPE_GOAL}): "
        f"{'PASS' if verdicts['slope'] else 'MISS'}"
    )
    console.print(
        f"{int(deepest['layers']):,} layers: check {deepest['check_s']:.2f} s, build {deepest['build_s']:.2f} s "
        f"(goal < {DEEPEST_GOAL_S:.0f} s): {'PASS' if verdicts['deepest'] else 'MISS'}"
    )
    return {"rows": rows, "slopes": slopes, "pass": verdicts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", default="500,1000,2000,4000,10000", help="comma-separated layer counts")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per depth up to 2,000 layers (best of)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    parser.add_argument("--default-gc", action="store_true", help="keep Python's default GC thresholds")
    args = parser.parse_args()
    if not args.default_gc:
        gc.set_threshold(*GC_THRESHOLDS)
    depths = sorted(int(d) for d in args.depths.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        payload = report(measure(depths, args.repeat, Path(tmp)))
    payload["gc_thresholds"] = list(gc.get_threshold())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
