"""The Python API of the search: run (or resume) a search into a directory, and report on it.

    from livc.search.api import search
    result = search("examples/search/smoke.toml", "runs/smoke")          # trains with S2's evaluator
    result = search(cfg, "runs/x", resume=True, workers=0, evaluator=my_eval)   # any picklable evaluator
    result.front          # the archive's feasible Pareto front (Records), result.report the summary file

`evaluator(liv_text, protocol, seed, device=..., time_limit_s=...)` returns an object with `metrics`
(incl. "quality" in [0, 1], higher better), `curve`, `failure` and `wall_s`, like
`livc.search.evaluate.evaluate`; tests inject cheap evaluators here. `ray` is None (local workers),
"auto" or a Ray address; the caller sets Ray's environment (the CLI sets RAY_AUTH_MODE=disabled).
Non-goals: several searches sharing one directory, concurrent writers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from livc.search.archive import Record, open_archive, read_archive
from livc.search.codec import Codec
from livc.search.config import SearchConfig, load_config
from livc.search.engine import Engine
from livc.search.front import front
from livc.search.progress import NullProgress, Progress
from livc.search.workers import Evaluator, Latency, default_evaluator, default_latency, make_pool


@dataclass(frozen=True)
class SearchResult:
    directory: Path
    config: SearchConfig
    front: tuple[Record, ...]
    counts: dict[str, int]
    report: Path | None


def search(
    space: str | Path | SearchConfig,
    out: str | Path,
    *,
    resume: bool = False,
    evaluator: Evaluator | None = None,
    latency: Latency | None = None,
    workers: int | None = None,
    ray: str | None = None,
    gpus: float | None = None,
    progress: Progress | None = None,
    report: bool = True,
) -> SearchResult:
    """Run the search of `space` into `out` (a directory); `resume` continues the archive found there."""
    config = space if isinstance(space, SearchConfig) else load_config(space)
    if workers is not None:
        config = dataclasses.replace(config, workers=workers)
    directory = Path(out)
    archive = open_archive(directory, config.fingerprint(), resume=resume)
    wants_latency = any(o.name == "latency" for o in config.objectives)
    lat = (latency or default_latency()) if wants_latency else None
    if gpus is None:  # a Ray task per GPU when candidates train on CUDA
        gpus = 1.0 if config.device.startswith("cuda") else 0.0
    pool = make_pool(config.workers, evaluator or default_evaluator(), lat, ray, gpus)
    try:
        Engine(config, archive, pool, Codec(config.space), progress or NullProgress()).run()
    finally:
        pool.close()
    records = archive.records("search")
    counts = archive.counts()
    archive.close()
    summary = write_report(directory, config) if report else None
    return SearchResult(directory, config, tuple(front(records, config.objectives, config.budgets)), counts, summary)


def write_report(directory: str | Path, config: SearchConfig) -> Path:
    """Write the report of a search directory (plots, front .liv files, summary.md); returns the summary."""
    from livc.search.report import write

    archive = read_archive(Path(directory))
    try:
        return write(Path(directory), config, archive, Codec(config.space))
    finally:
        archive.close()
