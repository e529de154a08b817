"""FAKE evaluators for testing the search engine. They train nothing and measure nothing.

`static_quality` returns a "quality" that is a deterministic function of the candidate's static costs
(more parameters and more cache score higher, so a quality/cost front is a real trade-off). It has the
signature of `livc.search.evaluate.evaluate` and is a module-level function, so worker processes and
Ray tasks can import it: tests of the engine (memo, budgets, failures, resume after kill -9, Ray) run
in seconds with it. `sleepy_static_quality` adds a short sleep (so a test can kill a search mid-run);
`failing_static_quality` makes attention candidates "diverge" and crashes on GLA candidates;
`dying_static_quality` kills its worker process a given number of times.
Never use these for results: a search driven by them finds nothing about architectures.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from livc.search.config import Objective
from livc.search.statics import static_costs

_CACHE = (Objective("cache", 1024),)


@dataclass(frozen=True)
class FakeEvaluation:
    metrics: dict[str, float]
    curve: dict[str, object]
    failure: str | None
    wall_s: float


def static_quality(
    liv_text: str, protocol: object, seed: int, device: str = "cpu", time_limit_s: float | None = None
) -> FakeEvaluation:
    """FAKE: quality = params / (params + 20K) * (0.5 + 0.5 * cache / (cache + 30K)), cache at 1024 tokens."""
    costs = static_costs(liv_text, _CACHE, ()).costs
    p, c = costs["params"], costs["cache@1024"]
    quality = round(p / (p + 20_000) * (0.5 + 0.5 * c / (c + 30_000)), 6)
    return FakeEvaluation({"quality": quality}, {"fake": True}, None, 0.0)


def sleepy_static_quality(
    liv_text: str, protocol: object, seed: int, device: str = "cpu", time_limit_s: float | None = None
) -> FakeEvaluation:
    """FAKE: `static_quality` after a 0.15 s sleep."""
    time.sleep(0.15)
    return static_quality(liv_text, protocol, seed)


def failing_static_quality(
    liv_text: str, protocol: object, seed: int, device: str = "cpu", time_limit_s: float | None = None
) -> FakeEvaluation:
    """FAKE: GLA candidates crash the evaluator, attention ones 'diverge', the rest as `static_quality`."""
    if "GLA(" in liv_text:
        raise RuntimeError("boom")
    if "GQA(" in liv_text:
        return FakeEvaluation({}, {}, "diverged: fake", 0.0)
    return static_quality(liv_text, protocol, seed)


def dying_static_quality(
    liv_text: str, protocol: object, seed: int, device: str = "cpu", time_limit_s: float | None = None
) -> FakeEvaluation:
    """FAKE: kills its own worker process while the file named by `protocol` (a path) holds fewer than
    `seed` lines, appending one line per death; then as `static_quality`. Tests worker-death retries."""
    marker = Path(str(protocol))
    deaths = len(marker.read_text().splitlines()) if marker.exists() else 0
    if deaths < seed:
        with marker.open("a") as handle:
            handle.write("died\n")
        os._exit(17)
    return static_quality(liv_text, protocol, seed)
