"""The search loop: pymoo NSGA-II through ask/tell over S1's genomes, with the archive as memo and resume point.

One generation: `ask` -> each offspring vector is repaired to its canonical genome and keyed; a key the
archive already holds costs nothing (cached); a new one is decoded to .liv, costed statically and
checked against the budgets (over budget = rejected, never trained); the rest are trained by the pool,
each committed to the archive as it finishes; then objectives (F) and constraints (G: budgets and
`trained`) are read back from the archive, handed to the algorithm's own evaluator, `tell`, and the
generation (population keys + pickled algorithm) is committed in one transaction.

Resume reloads the last committed algorithm: its RNG reproduces the next `ask` exactly, and every
finished evaluation is a memo hit, so nothing finished is lost or repeated and the front equals an
uninterrupted run's. Per-candidate training seeds derive from (seed, key), not from the order of work.
Preconditions: a `SearchConfig` (config.py), an open `Archive`, a `Pool`. Non-goals: other algorithms.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.problems.static import StaticProblem

from livc.search.archive import FINISHED, Archive, Record
from livc.search.codec import Codec
from livc.search.config import SearchConfig
from livc.search.errors import SearchError
from livc.search.front import constraint_vector, objective_vector
from livc.search.progress import NullProgress, Progress
from livc.search.statics import static_costs
from livc.search.workers import Pool, Task


class SearchProblem(Problem):
    """The problem pymoo sees: integer vectors within S1's bounds; evaluated only through the engine."""

    def __init__(self, xl: np.ndarray, xu: np.ndarray, n_obj: int, n_constr: int) -> None:
        super().__init__(n_var=len(xl), n_obj=n_obj, n_ieq_constr=n_constr, xl=xl, xu=xu, vtype=int)

    def _evaluate(self, x: Any, out: dict, *args: Any, **kwargs: Any) -> None:
        raise SearchError("E0803", "the search problem is evaluated by the engine (ask/tell), not by pymoo")


@dataclass
class Counters:
    """What the progress display shows; `rejected` by budget reason."""

    trained: int = 0
    failed: int = 0
    cached: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {"trained": self.trained, "failed": self.failed, "cached": self.cached, **self._by_reason()}

    @staticmethod
    def from_dict(d: dict[str, int]) -> Counters:
        """The counters a generation row stored (a resumed search continues counting from them)."""
        reasons = {k.split(":", 1)[1]: v for k, v in d.items() if k.startswith("rejected:")}
        return Counters(d.get("trained", 0), d.get("failed", 0), d.get("cached", 0), reasons)

    def _by_reason(self) -> dict[str, int]:
        return {f"rejected:{k}": v for k, v in sorted(self.rejected.items())}


@dataclass
class Engine:
    config: SearchConfig
    archive: Archive
    pool: Pool
    codec: Codec
    progress: Progress = field(default_factory=NullProgress)
    counters: Counters = field(default_factory=Counters)

    def run(self) -> None:
        problem = self._problem()
        algorithm, gen = self._restore(problem)
        self.progress.start(self.config, gen)
        while gen < self.config.generations:
            gen += 1
            self.progress.generation(gen)
            population = algorithm.ask()
            keys = self._evaluate_population(algorithm, population, gen)
            algorithm.tell(infills=population)
            self.archive.commit_generation(gen, keys, pickle.dumps(algorithm), self.counters.as_dict())
            self.progress.generation_done(gen, self.archive.records("search"))
        if self.config.random_baseline:
            self._baseline(gen)
        self.progress.finish(self.archive.records())

    # -- setup and resume -----------------------------------------------------------------------------

    def _problem(self) -> SearchProblem:
        xl, xu = self.codec.bounds()
        return SearchProblem(xl, xu, len(self.config.objectives), len(self.config.budgets) + 1)

    def _restore(self, problem: SearchProblem) -> tuple[Any, int]:
        last = self.archive.last_generation()
        if last is not None:
            self.counters = Counters.from_dict(last.counters)
            try:
                return pickle.loads(last.algorithm), last.gen
            except Exception as exc:
                raise SearchError("E0802", f"cannot restore the algorithm of generation {last.gen}: {exc}") from exc
        algorithm = NSGA2(
            pop_size=self.config.population,
            sampling=self._initial_population(),
            crossover=self.codec.crossover(),
            mutation=self.codec.mutation(),
            repair=self.codec.repair_operator(),
            eliminate_duplicates=True,
        )
        algorithm.setup(problem, termination=NoTermination(), seed=self.config.seed)
        self.archive.commit_generation(0, (), pickle.dumps(algorithm), self.counters.as_dict())
        return algorithm, 0

    def _initial_population(self) -> np.ndarray:
        """The seed architectures (encoded), then random genomes up to the population size, all distinct."""
        seeds = [self.codec.encode(s.text, s.path) for s in self.config.seeds]
        rng = np.random.default_rng([self.config.seed, 0])
        rows = _distinct(seeds, lambda: self.codec.random(rng), self.codec.key, self.config.population)
        return np.array([self.codec.to_vector(g) for g in rows], dtype=int)

    # -- one generation -------------------------------------------------------------------------------

    def _evaluate_population(self, algorithm: Any, population: Any, gen: int) -> tuple[str, ...]:
        genomes = [self.codec.canonical(x) for x in population.get("X")]
        population.set("X", np.array([self.codec.to_vector(g) for g in genomes], dtype=int))
        keys = tuple(self._prepare(g, gen, "search") for g in genomes)
        self._train(keys)
        records = [self._record(k) for k in keys]
        F = np.array([objective_vector(r, self.config.objectives) for r in records], dtype=float)
        G = np.array([constraint_vector(r, self.config.budgets) for r in records], dtype=float)
        # the algorithm's own evaluator, so that its evaluation count advances
        algorithm.evaluator.eval(StaticProblem(algorithm.problem, F=F, G=G), population)
        return keys

    def _record(self, key: str) -> Record:
        record = self.archive.get(key)
        if record is None or record.status not in FINISHED:
            raise SearchError("E0802", f"evaluation {key} is missing from the archive after its generation")
        return record

    def _prepare(self, genome: Any, gen: int, origin: str) -> str:
        """Archive a new candidate (pending, rejected, or failed to compile); returns its key."""
        key = self.codec.key(genome)
        known = self.archive.get(key)
        if known is not None:
            if known.status in FINISHED:
                self.counters.cached += 1
                self.progress.event("cached", key)
            return key
        text = self.codec.decode(genome)
        statics = static_costs(text, self.config.objectives, self.config.budgets)
        vector = tuple(int(v) for v in self.codec.to_vector(genome))
        seed = candidate_seed(self.config.seed, key)
        if statics.error is not None:
            self.archive.add(
                key, vector, text, origin, statics.costs, seed, gen, status="failed", failure=statics.error
            )
            self.counters.failed += 1
            self.progress.event("failed", key)
        elif statics.over is not None:
            self.archive.add(
                key, vector, text, origin, statics.costs, seed, gen, status="rejected", failure=statics.over
            )
            reasons = _reasons(statics.over)
            for reason in reasons:
                self.counters.rejected[reason] = self.counters.rejected.get(reason, 0) + 1
            self.progress.event("rejected", key, tuple(reasons))
        else:
            self.archive.add(key, vector, text, origin, statics.costs, seed, gen)
        return key

    def _train(self, keys: Sequence[str]) -> None:
        todo = [r for k in dict.fromkeys(keys) if (r := self.archive.get(k)) is not None and r.status == "pending"]
        for record in todo:
            self.archive.start(record.key)
            self.pool.submit(self._task(record))
        while self.pool.pending():
            outcome = self.pool.next()
            self.archive.finish(outcome.key, outcome.metrics, outcome.curve, outcome.failure, outcome.wall_s)
            self.counters.trained += outcome.failure is None
            self.counters.failed += outcome.failure is not None
            self.progress.event("failed" if outcome.failure else "trained", outcome.key)

    def _task(self, record: Record) -> Task:
        latency = next((o.seq for o in self.config.objectives if o.name == "latency"), None)
        c = self.config
        return Task(record.key, record.liv, c.protocol, record.seed, c.device, c.time_limit_s, latency)

    # -- random-search baseline -----------------------------------------------------------------------

    def _baseline(self, gen: int) -> None:
        n = len(self.archive.records("search"))
        self.progress.baseline(n)
        keys = [self._prepare(g, gen, "random") for g in baseline_genomes(self.codec, self.config.seed, n)]
        self._train(keys)


def baseline_genomes(codec: Codec, seed: int, n: int) -> list[Any]:
    """The random-search baseline: `n` distinct random genomes from a stream of their own (seed, 1)."""
    rng = np.random.default_rng([seed, 1])
    return _distinct([], lambda: codec.random(rng), codec.key, n)


def _distinct(first: list[Any], draw: Any, key: Any, n: int, tries: int = 50) -> list[Any]:
    """`first` (deduplicated), then draws until `n` distinct keys or `tries * n` draws."""
    out: dict[str, Any] = {}
    for g in first:
        out.setdefault(key(g), g)
    for _ in range(tries * n):
        if len(out) >= n:
            break
        g = draw()
        out.setdefault(key(g), g)
    return list(out.values())[: max(n, len(first))]


def candidate_seed(seed: int, key: str) -> int:
    """The training seed of a candidate: a function of the search seed and its key only."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{key}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def _reasons(over: str) -> list[str]:
    return [part.split(" = ", 1)[0] for part in over.split("; ")]
