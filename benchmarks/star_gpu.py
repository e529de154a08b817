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
import os  # noqa: E402
import platform  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from livc.search.archive import ARCHIVE_NAME, open_archive  # noqa: E402
from livc.search.codec import Codec  # noqa: E402
from livc.search.config import SearchConfig, load_config  # noqa: E402
from livc.search.engine import Engine  # noqa: E402
from livc.search.front import bounds, front, hypervolume, objective_vector  # noqa: E402
from livc.search.progress import LineProgress  # noqa: E402
from livc.search.workers import LocalPool, Outcome, Task, default_evaluator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FINISHED = ("done", "failed", "rejected")


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


def run_search(config: SearchConfig, out: Path, pool: LocalPool, end: float, reeval_s: object) -> dict:
    """Generations while they fit; returns the phase's timing. `reeval_s()` estimates the re-evaluation."""
    resume = (out / ARCHIVE_NAME).exists()
    archive = open_archive(out, config.fingerprint(), resume=resume)
    codec, gens, start, stopped = Codec(config.space), [], time.monotonic(), "generations done"
    try:
        last = archive.last_generation()
        done = last.gen if last else 0
        first_done = done
        while done < config.generations:
            need = (gens[-1] * 1.1 if gens else 0.0) + reeval_s()  # type: ignore[operator]
            if gens and time.monotonic() + need > end:
                stopped = f"budget: next generation (~{gens[-1]:.0f} s) + re-evaluation would not fit"
                break
            hard = end - (reeval_s() if gens else 0.35 * (end - T0))  # type: ignore[operator]
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


# -- phase 3: the answers ------------------------------------------------------------------------------


def _stats(key: str, results: dict[str, dict], n_seeds: int) -> dict:
    qs = [
        r["metrics"]["quality"]
        for s in range(n_seeds)
        if (r := results.get(f"{key}#{s}")) and r["failure"] is None and r["metrics"] and "quality" in r["metrics"]
    ]
    failed = sum(1 for s in range(n_seeds) if (r := results.get(f"{key}#{s}")) and r["failure"])
    mean = statistics.fmean(qs) if qs else None
    se = statistics.stdev(qs) / math.sqrt(len(qs)) if len(qs) >= 2 else None
    return {"n": len(qs), "failed": failed, "mean": mean, "se": se, "qualities": qs}


def _sharing(liv: str) -> dict[str, bool]:
    return {"kv_feature_group": "share features" in liv, "featurizer": "share featurizer" in liv}


def _hv(config: SearchConfig, search: list, random: list) -> dict:
    """HV of the search's front vs the random search's, on the first n evaluated of each (same n, same bounds)."""
    objs, budgets = config.objectives, config.budgets
    n = min(len(search), len(random))
    if n == 0:
        return {"n": 0, "search": None, "random": None, "note": "no random-search baseline evaluated yet"}
    pool = [r for r in search[:n] + random[:n] if r.status == "done"]
    if not pool:
        return {"n": n, "search": 0.0, "random": 0.0, "note": "no trained candidate"}
    ideal, nadir = bounds(np.array([objective_vector(r, objs) for r in pool], dtype=float), objs)

    def hv(rows: list) -> float:
        best = front(rows, objs, budgets)
        return hypervolume(
            np.array([objective_vector(r, objs) for r in best], dtype=float).reshape(-1, len(objs)), ideal, nadir
        )

    return {"n": n, "search": round(hv(search[:n]), 4), "random": round(hv(random[:n]), 4)}


def summarise(config: SearchConfig, out: Path, phases: dict, n_seeds: int) -> dict:
    from livc.search.archive import read_archive

    archive = read_archive(out)
    records = archive.records()
    archive.close()
    search = [r for r in records if r.origin == "search" and r.status in FINISHED]
    random = [r for r in records if r.origin == "random" and r.status in FINISHED]
    best = front(search, config.objectives, config.budgets)
    codec, results = Codec(config.space), phases["reeval"]["results"]
    seed_keys = [codec.key(codec.encode(s.text, s.path)) for s in config.seeds]
    by_key = {r.key: r for r in records}
    cache = next(o.label for o in config.objectives if o.name == "cache")
    tpp = by_key.get(seed_keys[0]) if seed_keys else None
    t_stats = _stats(tpp.key, results, n_seeds) if tpp else None
    rows = []
    for r in [by_key[k] for k in seed_keys if k in by_key] + [r for r in best if r.key not in seed_keys]:
        st = _stats(r.key, results, n_seeds)
        ratio = r.costs[cache] / tpp.costs[cache] if tpp else None
        ok = None
        if t_stats and t_stats["se"] is not None and st["mean"] is not None and st["n"] >= 2:
            ok = bool(ratio <= 0.5 and st["mean"] >= t_stats["mean"] - t_stats["se"])
        rows.append(
            {
                "key": r.key,
                "role": _role(r.key, seed_keys, config, best),
                "backbone": _backbone(r.liv),
                "cache": r.costs[cache],
                "cache_vs_tpp": ratio,
                "search_quality": (r.metrics or {}).get("quality"),
                "reeval": st,
                "half_cache_within_se": ok,
                "sharing": _sharing(r.liv),
                "liv": r.liv,
            }
        )
    trained = [
        r
        for r in records
        if r.status in ("done", "failed") and r.wall_s and r.finished and r.finished >= phases["search"]["start_epoch"]
    ]
    front_rows = [x for x in rows if "front" in x["role"]]
    answer = _answer(front_rows, t_stats)
    hours = phases["search"]["wall_s"] / 3600
    return {
        "space": config.source,
        "device": config.device,
        "workers": config.workers,
        "protocol": {
            "name": config.protocol.name,
            "steps": config.protocol.steps,
            "tasks": list(config.protocol.tasks),
        },
        "population": config.population,
        "generations_done": _gens(out),
        "counts": {
            s: sum(r.status == s for r in records) for s in ("done", "failed", "rejected", "pending", "running")
        },
        "q1_half_cache_within_one_se": answer,
        "q2_sharing_on_front": {k: sum(x["sharing"][k] for x in front_rows) for k in ("kv_feature_group", "featurizer")}
        | {"front_size": len(front_rows)},
        "q3_hypervolume": _hv(config, search, random),
        "q4_candidates_per_hour": {
            "search_phase_trained": len(trained),
            "search_phase_wall_s": phases["search"]["wall_s"],
            "per_hour": round(len(trained) / hours, 1) if hours > 0 else None,
            "median_candidate_s": round(statistics.median(r.wall_s for r in trained), 2) if trained else None,
            "reeval_runs_per_hour": round(
                sum(1 for v in results.values() if v["failure"] is None) / max(phases["reeval"]["wall_s"], 1e-9) * 3600,
                1,
            ),
        },
        "phases": {k: {a: b for a, b in v.items() if a not in ("results", "start_epoch")} for k, v in phases.items()},
        "architectures": rows,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "gpu": _gpu(config.device)},
    }


def _answer(front_rows: list, t_stats: dict | None) -> dict:
    if not t_stats or t_stats["se"] is None:
        return {"answer": "undetermined", "why": "Transformer++ has fewer than 2 successful re-evaluations"}
    judged = [x for x in front_rows if x["half_cache_within_se"] is not None]
    hits = [x["key"] for x in judged if x["half_cache_within_se"]]
    if hits:
        return {"answer": "yes", "architectures": hits, "tpp_mean": t_stats["mean"], "tpp_se": t_stats["se"]}
    why = f"{len(judged)} of {len(front_rows)} front architectures judged (>= 2 re-evaluations each)"
    return {
        "answer": "no" if judged else "undetermined",
        "why": why,
        "tpp_mean": t_stats["mean"],
        "tpp_se": t_stats["se"],
    }


def _role(key: str, seed_keys: list[str], config: SearchConfig, best: list) -> str:
    names = [Path(s.path).stem for s in config.seeds]
    parts = [f"seed {names[seed_keys.index(key)]}"] if key in seed_keys else []
    return ", ".join(parts + (["front"] if any(r.key == key for r in best) else []))


def _backbone(liv: str) -> str:
    from livc.search.report import backbone

    return backbone(liv)


def _gens(out: Path) -> int:
    from livc.search.archive import read_archive

    archive = read_archive(out)
    last = archive.last_generation()
    archive.close()
    return last.gen if last else 0


def _gpu(device: str) -> str | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cuda unavailable"


def markdown(doc: dict) -> str:
    q1, q2, q3, q4 = (
        doc[k]
        for k in ("q1_half_cache_within_one_se", "q2_sharing_on_front", "q3_hypervolume", "q4_candidates_per_hour")
    )
    lines = [
        f"# star_gpu: {doc['space']} on {doc['machine']['gpu'] or doc['device']}",
        "",
        f"population {doc['population']}, {doc['generations_done']} generations, {doc['workers']} workers, protocol "
        f"`{doc['protocol']['name']}` ({', '.join(doc['protocol']['tasks'])}; {doc['protocol']['steps']} steps); "
        f"archive: {doc['counts']}",
        "",
        f"1. Front architecture with <= 1/2 the Transformer++ cache within one SE of its MAD score: **{q1['answer']}**"
        + (f" ({q1.get('why')})" if q1.get("why") else ""),
        f"2. Sharing on the front ({q2['front_size']} architectures): KV feature-group sharing in "
        f"{q2['kv_feature_group']}, featurizer sharing in {q2['featurizer']}",
        f"3. Hypervolume at {q3['n']} evaluations each: NSGA-II {q3['search']} vs random search {q3['random']}"
        + (f" ({q3['note']})" if q3.get("note") else ""),
        f"4. {q4['search_phase_trained']} candidates trained in {q4['search_phase_wall_s']} s = "
        f"{q4['per_hour']} per hour "
        f"(median {q4['median_candidate_s']} s each); re-evaluation runs: {q4['reeval_runs_per_hour']} per hour",
        "",
        "| role | backbone | cache | vs T++ | search q | re-eval mean ± SE (n) | <=1/2 & within SE | KV share "
        "| fz share |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in doc["architectures"]:
        st = a["reeval"]
        m = "-" if st["mean"] is None else f"{st['mean']:.4f} ± {st['se'] or 0:.4f} ({st['n']})"
        sq = "-" if a["search_quality"] is None else f"{a['search_quality']:.4f}"
        ratio = "-" if a["cache_vs_tpp"] is None else f"{a['cache_vs_tpp']:.3f}"
        lines.append(
            f"| {a['role']} | {a['backbone']} | {a['cache']:,.0f} | {ratio} | {sq} | {m} | "
            f"{a['half_cache_within_se']} | {a['sharing']['kv_feature_group']} | {a['sharing']['featurizer']} |"
        )
    lines += ["", "phases: " + json.dumps(doc["phases"])]
    return "\n".join(lines) + "\n"


def main() -> int:
    args = _args()
    signal.signal(signal.SIGALRM, _on_alarm)
    out = Path(args.out)
    if (out / ARCHIVE_NAME).exists() and not args.resume:
        sys.stderr.write(f"error: {out} already holds a search; pass --resume to continue it\n")
        return 1
    config = _config(args)
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
        targets = _targets(config, out)
        phases["reeval"] = reeval(config, targets, pool, args.reeval_seeds, out / "reeval.jsonl", end)
    finally:
        _kill(pool)
    phases.setdefault("reeval", {"results": _load(out / "reeval.jsonl"), "wall_s": 0.0, "stopped": "not run"})
    doc = summarise(config, out, phases, args.reeval_seeds)
    doc["wall_s"] = round(time.monotonic() - T0, 1)
    (out / "star_gpu.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    (out / "star_gpu.md").write_text(markdown(doc), encoding="utf-8")
    print(markdown(doc))
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


def _targets(config: SearchConfig, out: Path) -> list:
    """The seeds (Transformer++ first), then the search's front."""
    from livc.search.archive import read_archive

    archive = read_archive(out)
    records = archive.records()
    archive.close()
    codec = Codec(config.space)
    by_key = {r.key: r for r in records}
    seeds = [by_key[k] for s in config.seeds if (k := codec.key(codec.encode(s.text, s.path))) in by_key]
    best = front([r for r in records if r.origin == "search"], config.objectives, config.budgets)
    return seeds + [r for r in best if r.key not in {s.key for s in seeds}]


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
