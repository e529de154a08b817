"""The answers of benchmarks/star_gpu.py, from a search directory: re-evaluation statistics, the four questions,
the JSON document and its markdown. Functions of the archive and DIR/reeval.jsonl rows only (no training).

`targets` lists what is re-evaluated (the seeds, Transformer++ first, then the search's front); `summarise`
builds the document star_gpu.py writes; `markdown` renders it. Non-goals: plots (the search report has them).
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
from collections import Counter
from pathlib import Path

import numpy as np

from livc.search.archive import read_archive
from livc.search.codec import Codec
from livc.search.config import SearchConfig
from livc.search.front import bounds, front, hypervolume, objective_vector

FINISHED = ("done", "failed", "rejected")


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
        "failures": _failures(records, results),
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


def _failures(records: list, results: dict[str, dict]) -> dict[str, int]:
    """The most common failure messages (first 160 characters) of candidates and re-evaluations."""
    texts = [r.failure for r in records if r.status == "failed"] + [v["failure"] for v in results.values()]
    return dict(Counter(f[:160] for f in texts if f).most_common(5))


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
        f"archive: {doc['counts']}; wall {doc.get('wall_s')} s",
        "",
        f"failures: {doc['failures'] or 'none'}",
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


def targets(config: SearchConfig, out: Path) -> list:
    """The seeds (Transformer++ first), then the search's front."""
    archive = read_archive(out)
    records = archive.records()
    archive.close()
    codec = Codec(config.space)
    by_key = {r.key: r for r in records}
    seeds = [by_key[k] for s in config.seeds if (k := codec.key(codec.encode(s.text, s.path))) in by_key]
    best = front([r for r in records if r.origin == "search"], config.objectives, config.budgets)
    return seeds + [r for r in best if r.key not in {s.key for s in seeds}]
