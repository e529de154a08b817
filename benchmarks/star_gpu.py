"""GPU evidence for the search (issue 9): a seeded NSGA-II search under a hard wall budget, then the front
and the seed architectures re-evaluated with several training seeds, and a summary that answers:

1. does the front hold an architecture with <= half the Transformer++ cache (the first seed) at a MAD score
   within one standard error of Transformer++ or better (mean >= mean_T++ - SE_T++, SE over the seeds)?
2. do feature-group (KV) sharing and featurizer sharing appear on the front?
3. hypervolume of the search against the random-search baseline at the same number of evaluations;
4. candidates trained per hour.

    python benchmarks/star_gpu.py --out DIR [--budget-s 270] [--space examples/search/gpu.toml]
        [--device cuda|cpu] [--workers N] [--resume] [--steps N] [--reeval-seeds 3]

The search runs generation by generation in this process on one pool of worker processes (the archive in
DIR is livc's ordinary one: `livc search SPACE --resume DIR` continues it). A new generation starts only when
its estimated time (the last generation's) plus the re-evaluation still fit in the budget; an alarm stops a
phase that overruns (the archive keeps every finished evaluation, workers are killed). Re-evaluations are
appended to DIR/reeval.jsonl as they finish (seed-major order, so a cut leaves balanced counts) and are
reused by `--resume`. Writes DIR/star_gpu.json, DIR/star_gpu.md and, time permitting, DIR/report/.
`--resume` continues the search in DIR when it holds one (else starts it). Timings depend on the machine.
"""

from __future__ import annotations

import time

T0 = time.monotonic()  # the budget counts from here, before the heavy imports

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from livc.search.archive import ARCHIVE_NAME, open_archive  # noqa: E402
from livc.search.codec import Codec  # noqa: E402
from livc.search.config import SearchConfig, load_config  # noqa: E402
from livc.search.engine import Engine  # noqa: E402
from livc.search.errors import SearchError  # noqa: E402
from livc.search.progress import LineProgress  # noqa: E402
from livc.search.workers import LocalPool, Outcome, Task, default_evaluator  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import star_gpu_summary as S  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class Deadline(Exception):
    """Raised by the alarm when a phase runs past its share of the budget."""


def _alarm(at: float) -> None:
    """Raise `Deadline` in the main thread at monotonic time `at` (0 = cancel)."""
    signal.setitimer(signal.ITIMER_REAL, 0 if at == 0 else max(0.01, at - time.monotonic()))


def _on_alarm(signum: int, frame: object) -> None:
    raise Deadline()


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="search directory (archive, reeval.jsonl, summary)")
    p.add_argument("--budget-s", type=float, default=270.0, help="hard wall budget of the whole script")
    p.add_argument("--space", default=str(ROOT / "examples" / "search" / "gpu.toml"))
    p.add_argument("--device", default=None, help="override the file's device (cuda, cpu)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: the file's)")
    p.add_argument("--steps", type=int, default=None, help="override the protocol's steps (quick tests)")
    p.add_argument("--reeval-seeds", type=int, default=3)
    p.add_argument("--resume", action="store_true", help="continue the search in --out when it holds one")
    return p.parse_args()


def _config(args: argparse.Namespace) -> SearchConfig:
    config = load_config(args.space)
    changes: dict[str, object] = {}
    if args.device:
        changes["device"] = args.device
    if args.workers is not None:
        changes["workers"] = max(1, args.workers)
    if args.steps is not None:
        changes["protocol"] = config.protocol.replace(steps=args.steps)
    return dataclasses.replace(config, **changes)


def _kill(pool: LocalPool) -> None:
    """Kill the pool's worker processes now (shutdown(wait=False) would let running tasks finish)."""
    pool = getattr(pool, "inner", pool)  # a _Timed wrapper
    executor = getattr(pool, "_pool", None)
    for process in list(getattr(executor, "_processes", {}).values()) if executor else []:
        process.kill()
    getattr(pool, "_futures", {}).clear()
    getattr(pool, "_ready", []).clear()
    pool.close()


# -- phase 1: the search -------------------------------------------------------------------------------


def run_search(config: SearchConfig, out: Path, pool: LocalPool, end: float, reeval_s: Callable[[], float]) -> dict:
    """Generations while they fit; returns the phase's timing. `reeval_s()` estimates the re-evaluation."""
    resume = (out / ARCHIVE_NAME).exists()
    archive = open_archive(out, config.fingerprint(), resume=resume)
    codec, gens, start, stopped = Codec(config.space), [], time.monotonic(), "generations done"
    last = archive.last_generation()
    done = first_done = last.gen if last else 0
    try:
        while done < config.generations:
            need = (gens[-1] * 1.1 if gens else 0.0) + reeval_s()
            if gens and time.monotonic() + need > end:
                stopped = f"budget: next generation (~{gens[-1]:.0f} s) + re-evaluation would not fit"
                break
            hard = end - (reeval_s() if gens else 0.35 * (end - T0))
            _alarm(max(hard, time.monotonic() + 5))
            g0 = time.monotonic()
            Engine(dataclasses.replace(config, generations=done + 1), archive, pool, codec, LineProgress()).run()
            _alarm(0)
            gens.append(time.monotonic() - g0)
            done += 1
    except Deadline:
        stopped = "budget: the alarm stopped a generation (its finished evaluations are archived)"
        _kill(pool)
    finally:
        _alarm(0)
        archive.close()
    return {
        "generation_s": [round(g, 1) for g in gens],
        "resumed_after": first_done if resume else None,
        "wall_s": round(time.monotonic() - start, 1),
        "stopped": stopped,
        "start_epoch": time.time() - (time.monotonic() - start),
    }


# -- phase 2: re-evaluation ----------------------------------------------------------------------------


def reeval(config: SearchConfig, targets: list, pool: LocalPool, n_seeds: int, log: Path, end: float) -> dict:
    """(key, seed) -> outcome dict for every target; appends new results to `log`."""
    results = _load(log)
    todo = [(r, s) for s in range(n_seeds) for r in targets if f"{r.key}#{s}" not in results]
    start = time.monotonic()
    try:
        _alarm(max(end, time.monotonic() + 1))
        for record, s in todo:
            c = config
            pool.submit(Task(f"{record.key}#{s}", record.liv, c.protocol, s, c.device, c.time_limit_s, None))
        with log.open("a", encoding="utf-8") as f:
            while pool.pending():
                o = pool.next()
                row = {"id": o.key, "metrics": o.metrics, "failure": o.failure, "wall_s": round(o.wall_s, 2)}
                results[o.key] = row
                f.write(json.dumps(row) + "\n")
                f.flush()
        stopped = "all done"
    except Deadline:
        stopped = "budget: the alarm stopped the re-evaluation (finished runs kept)"
    finally:
        _alarm(0)
        _kill(pool)
    return {
        "results": results,
        "wall_s": round(time.monotonic() - start, 1),
        "stopped": stopped,
        "submitted": len(todo),
    }


def _load(log: Path) -> dict[str, dict]:
    if not log.exists():
        return {}
    rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["id"]: r for r in rows}


def main() -> int:
    args = _args()
    signal.signal(signal.SIGALRM, _on_alarm)
    out = Path(args.out)
    if (out / ARCHIVE_NAME).exists() and not args.resume:
        sys.stderr.write(f"error: {out} already holds a search; pass --resume to continue it\n")
        return 1
    try:
        config = _config(args)
    except SearchError as exc:
        sys.stderr.write(str(exc) + "\n")
        return 1
    reserve = min(25.0, 0.1 * args.budget_s + 5)
    end = T0 + args.budget_s - reserve  # the re-evaluation must be over by then; the summary follows
    pool = LocalPool(config.workers, default_evaluator(), None)
    n_targets = len(config.seeds) + 6  # a guess at the front's size until the search tells
    per = [30.0]

    def reeval_s() -> float:
        rounds = math.ceil(n_targets * args.reeval_seeds / config.workers)
        return rounds * per[0] * 1.2

    phases: dict = {}
    try:
        phases["search"] = run_search(config, out, _Timed(pool, per), end, reeval_s)
        targets = S.targets(config, out)
        phases["reeval"] = reeval(config, targets, pool, args.reeval_seeds, out / "reeval.jsonl", end)
    except SearchError as exc:  # a bad space file or archive: livc's diagnostic, no traceback
        sys.stderr.write(str(exc) + "\n")
        return 1
    finally:
        _kill(pool)
    phases.setdefault("reeval", {"results": _load(out / "reeval.jsonl"), "wall_s": 0.0, "stopped": "not run"})
    doc = S.summarise(config, out, phases, args.reeval_seeds)
    doc["wall_s"] = round(time.monotonic() - T0, 1)
    (out / "star_gpu.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    (out / "star_gpu.md").write_text(S.markdown(doc), encoding="utf-8")
    print(S.markdown(doc))
    if T0 + args.budget_s - time.monotonic() > 12:
        _report(config, out, T0 + args.budget_s - 3)
    print(f"wrote {out / 'star_gpu.json'}, {out / 'star_gpu.md'} in {time.monotonic() - T0:.1f} s")
    return 0


class _Timed:
    """The pool, recording the median per-candidate time for the budget estimates."""

    def __init__(self, pool: LocalPool, per: list[float]) -> None:
        self.inner, self._per, self._times = pool, per, list[float]()

    def submit(self, task: Task) -> None:
        self.inner.submit(task)

    def pending(self) -> int:
        return self.inner.pending()

    def close(self) -> None:
        self.inner.close()

    def next(self) -> Outcome:
        outcome = self.inner.next()
        self._times.append(outcome.wall_s)
        self._per[0] = float(np.percentile(self._times, 75))
        return outcome


def _report(config: SearchConfig, out: Path, end: float) -> None:
    from livc.search.api import write_report

    try:
        _alarm(end)
        write_report(out, config)
    except Deadline:
        print("report/: skipped (out of budget)")
    finally:
        _alarm(0)


if __name__ == "__main__":
    sys.exit(main())
