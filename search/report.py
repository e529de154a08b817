"""The report of a finished (or interrupted) search, written under DIR/report/ from the archive alone.

- `front/NN_<key>.liv`: the archive's feasible Pareto front, each formatted (`livc fmt`) and checked
  (`livc check`: a front file that does not check is listed as such in the summary, never hidden);
- `pareto_<x>.png`: quality against cache bytes, params and (when measured) latency, all candidates
  grey, the front highlighted, the random-search baseline as crosses;
- `hypervolume.png` and a table: hypervolume of the search's front after each generation against a random
  search with the same number of evaluated architectures (both normalised with the same bounds);
- `summary.md`: configuration, counts (trained / failed / rejected by budget), failures by kind, the
  front table, the hypervolume table and links to the plots.
Non-goals: interactive plots, statistics over several seeds (run several searches).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from livc.search.archive import Archive, Record
from livc.search.config import Objective, SearchConfig
from livc.search.front import bounds, feasible, front, hypervolume, objective_vector

PLOTS = (("cache", "cache bytes"), ("params", "parameters"), ("latency", "latency (s)"))


def front_table(records: Sequence[Record], objectives: Sequence[Objective]) -> str:
    """A plain-text table of front records (best quality first): id, backbone, then each objective."""
    ordered = sorted(records, key=lambda r: objective_vector(r, objectives))
    head = ["id", "backbone", *(o.label for o in objectives)]
    rows = [[short_id(r.key), backbone(r.liv), *(_value(r, o) for o in objectives)] for r in ordered]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    return "\n".join(_row(r, widths) for r in [head, *rows]) if rows else "(empty front)"


def _row(cells: list[str], widths: list[int]) -> str:
    """Text columns left-aligned, numbers right-aligned."""
    return "  ".join(x.ljust(w) if i < 2 else x.rjust(w) for i, (x, w) in enumerate(zip(cells, widths))).rstrip()


def short_id(key: str) -> str:
    """A file-name-safe id of an archive key (the key itself holds `|` and `:`)."""
    return hashlib.sha1(key.encode()).hexdigest()[:10]


def backbone(liv: str) -> str:
    """`GatedShortConv+SwiGLU / GQA+SwiGLU`: the LIVs of each layer of a decoded candidate."""
    body = liv.split("layers:", 1)[-1].split("final_norm:", 1)[0]
    layers = [re.findall(r"\b([A-Z]\w*)\(", line) for line in body.splitlines()]
    return " / ".join("+".join(names) for names in layers if names) or "?"


def _value(record: Record, o: Objective) -> str:
    v = objective_vector(record, [o])[0]
    if o.name == "quality":
        return f"{-v:.4f}"
    if o.name == "latency":
        return f"{v * 1e3:.3f} ms"
    return f"{v:,.0f}"


def write(directory: Path, config: SearchConfig, archive: Archive, codec: Any) -> Path:
    out = directory / "report"
    (out / "front").mkdir(parents=True, exist_ok=True)
    records = archive.records()
    search = [r for r in records if r.origin == "search"]
    best = sorted(
        front(search, config.objectives, config.budgets), key=lambda r: objective_vector(r, config.objectives)
    )
    files = _front_files(out / "front", best)
    random = _baseline_records(archive, codec, config, len(search)) if config.random_baseline else []
    hv = hypervolume_table(config, search, random)
    plots = _plots(out, config, search, best, random, hv)
    summary = out / "summary.md"
    summary.write_text(_markdown(config, records, best, files, hv, plots), encoding="utf-8")
    return summary


def _baseline_records(archive: Archive, codec: Any, config: SearchConfig, n: int) -> list[Record]:
    from livc.search.engine import baseline_genomes

    found = (archive.get(codec.key(g)) for g in baseline_genomes(codec, config.seed, n))
    return [r for r in found if r is not None and r.status in ("done", "failed", "rejected")]


def hypervolume_table(
    config: SearchConfig, search: list[Record], random: list[Record]
) -> list[tuple[int, int, float, float | None]]:
    """(generation, evaluations so far, search HV, random-search HV at the same count) per generation."""
    objs, budgets = config.objectives, config.budgets
    pool = [r for r in search + random if feasible(r, budgets)]
    if not pool:
        return []
    ideal, nadir = bounds(np.array([objective_vector(r, objs) for r in pool], dtype=float), objs)
    rows = []
    for gen in sorted({r.generation for r in search}):
        seen = [r for r in search if r.generation <= gen]
        hv_s = _hv(seen, objs, budgets, ideal, nadir)
        hv_r = _hv(random[: len(seen)], objs, budgets, ideal, nadir) if len(random) >= len(seen) else None
        rows.append((gen, len(seen), hv_s, hv_r))
    return rows


def _hv(records: list[Record], objs: Sequence[Objective], budgets: Any, ideal: np.ndarray, nadir: np.ndarray) -> float:
    best = front(records, objs, budgets)
    points = np.array([objective_vector(r, objs) for r in best], dtype=float).reshape(len(best), len(objs))
    return hypervolume(points, ideal, nadir)


def _front_files(folder: Path, best: list[Record]) -> list[tuple[Record, Path, str | None]]:
    """Write each front member formatted; (record, file, None or the check problems)."""
    from livc.compiler.check import check_source
    from livc.dsl.diagnostics import has_errors
    from livc.dsl.formatter import format_text
    from livc.dsl.render import render_all_text

    for old in folder.glob("*.liv"):
        old.unlink()
    written = []
    for i, r in enumerate(best):
        path = folder / f"{i:02d}_{short_id(r.key)}.liv"
        text = format_text(r.liv, str(path))
        path.write_text(text, encoding="utf-8")
        diags = check_source(text, str(path)).diagnostics
        written.append((r, path, render_all_text(diags).strip() if has_errors(diags) else None))
    return written


def _metric(record: Record, name: str) -> float | None:
    if name == "latency":
        return (record.metrics or {}).get("latency_s") if record.status == "done" else None
    if name == "cache":
        return next((v for k, v in sorted(record.costs.items()) if k.startswith("cache@")), None)
    return record.costs.get(name)


def _plots(
    out: Path, config: SearchConfig, search: list[Record], best: list[Record], random: list[Record], hv: list
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    for name, label in PLOTS:
        series = [_points(rs, name) for rs in (search, best, random)]
        if not len(series[0][0]):
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter(*series[0], c="0.7", s=14, label="search")
        ax.scatter(*series[2], marker="x", c="tab:orange", s=18, label="random baseline")
        ax.scatter(*series[1], c="tab:blue", s=30, label="front")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("quality")
        ax.legend(fontsize=8)
        made.append(_save(fig, out / f"pareto_{name}.png"))
    if hv:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([r[1] for r in hv], [r[2] for r in hv], "o-", label="NSGA-II")
        rand = [(r[1], r[3]) for r in hv if r[3] is not None]
        if rand:
            ax.plot(*zip(*rand), "x--", label="random search")
        ax.set_xlabel("architectures evaluated")
        ax.set_ylabel("hypervolume (normalised)")
        ax.legend(fontsize=8)
        made.append(_save(fig, out / "hypervolume.png"))
    return made


def _points(records: list[Record], name: str) -> tuple[list[float], list[float]]:
    pts = [(x, r.metrics["quality"]) for r in records if r.status == "done" and r.metrics and "quality" in r.metrics
           and (x := _metric(r, name)) is not None and x > 0]  # fmt: skip
    return [p[0] for p in pts], [p[1] for p in pts]


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _markdown(
    config: SearchConfig, records: list[Record], best: list[Record], files: list, hv: list, plots: list[Path]
) -> str:
    ours = [r for r in records if r.origin == "search"]
    status = Counter(r.status for r in ours)
    kinds = Counter((r.failure or "").split(":", 1)[0] for r in ours if r.status == "failed")
    rejected = Counter(
        part.split(" = ", 1)[0] for r in ours if r.status == "rejected" for part in (r.failure or "").split("; ")
    )
    baseline = Counter(r.status for r in records if r.origin == "random")
    lines = [
        f"# Search report: {config.source}",
        "",
        f"NSGA-II, population {config.population}, {config.generations} generations, seed {config.seed}; "
        f"protocol `{getattr(config.protocol, 'name', config.protocol)}`; objectives "
        + ", ".join(f"`{o.label}`" for o in config.objectives)
        + "; budgets "
        + (", ".join(f"`{b}`" for b in config.budget_texts) or "none"),
        "",
        "search candidates: " + ", ".join(f"{n} {s}" for s, n in sorted(status.items())),
        "failures by kind: " + (", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"),
        "rejected by budget: " + (", ".join(f"{n} {k}" for k, n in sorted(rejected.items())) or "none"),
        "random-search baseline (new architectures): "
        + (", ".join(f"{n} {s}" for s, n in sorted(baseline.items())) or "none"),
        "",
        "## Pareto front",
        "",
        "```text",
        front_table(best, config.objectives),
        "```",
        "",
    ]
    lines += [f"- [{p.name}](front/{p.name})" + (f": DOES NOT CHECK: {bad}" if bad else "") for _, p, bad in files]
    lines += [
        "",
        "## Hypervolume per generation",
        "",
        "| generation | evaluated | NSGA-II | random search |",
        "|---|---|---|---|",
    ]
    lines += [f"| {g} | {n} | {s:.4f} | {'' if r is None else f'{r:.4f}'} |" for g, n, s, r in hv]
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"
