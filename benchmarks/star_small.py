"""STAR-small search benchmark: how many candidates per hour the search trains, and what the engine costs.

Runs `livc.search.api.search` on a space file (default examples/search/smoke.toml) into a fresh
directory and reports, from the archive:

    wall time of the whole search (incl. the random baseline and the report), candidates trained,
    failed and rejected by budget, candidates per hour (trained / wall hours), the median and total
    per-candidate training wall time, and the engine overhead per candidate (wall - training / workers).

`--engine-only` replaces training with the FAKE static-cost evaluator (livc.search.testing) to measure
the engine itself (ask/tell, repair, decode, static costs, archive commits) in candidates per hour.

    python benchmarks/star_small.py [--space FILE] [--generations N] [--workers N] [--engine-only] [--out PATH]

Writes benchmarks/results/star_small_<space>[_engine].json. Timings depend on machine load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from livc.search.api import search
from livc.search.archive import read_archive
from livc.search.config import load_config
from livc.search.progress import LineProgress
from livc.search.testing import static_quality

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default=str(ROOT / "examples" / "search" / "smoke.toml"))
    p.add_argument("--generations", type=int, default=None)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--engine-only", action="store_true", help="FAKE evaluator: measure the engine alone")
    p.add_argument("--out", default=None)
    return p.parse_args()


def run(space: str, generations: int | None, workers: int | None, engine_only: bool) -> dict:
    config = load_config(space)
    changes = {k: v for k, v in (("generations", generations), ("workers", workers)) if v is not None}
    config = dataclasses.replace(config, **changes)
    directory = Path(tempfile.mkdtemp(prefix="star_small_"))
    start = time.perf_counter()
    result = search(
        config, directory / "run", evaluator=static_quality if engine_only else None, progress=LineProgress()
    )
    wall = time.perf_counter() - start
    archive = read_archive(directory / "run")
    rows = archive.records()
    archive.close()
    shutil.rmtree(directory)
    trained = [r for r in rows if r.status == "done"]
    train_s = [r.wall_s for r in rows if r.status in ("done", "failed") and r.wall_s]
    return {
        "space": space,
        "engine_only": engine_only,
        "population": config.population,
        "generations": config.generations,
        "workers": config.workers,
        "wall_s": round(wall, 2),
        "candidates": len(rows),
        "trained": len(trained),
        "failed": sum(r.status == "failed" for r in rows),
        "rejected": sum(r.status == "rejected" for r in rows),
        "candidates_per_hour": round(len(trained) / wall * 3600, 1),
        "median_candidate_train_s": round(statistics.median(train_s), 2) if train_s else None,
        "total_train_s": round(sum(train_s), 1),
        "front": len(result.front),
        "best_quality": max((r.metrics or {}).get("quality", 0.0) for r in trained) if trained else None,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }


def main() -> None:
    args = _args()
    doc = run(args.space, args.generations, args.workers, args.engine_only)
    name = Path(args.space).stem + ("_engine" if args.engine_only else "")
    out = Path(args.out) if args.out else RESULTS / f"star_small_{name}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(doc, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
