"""pymoo 0.6.2 operators over genome vectors, for NSGA-II ask/tell (search/engine.py).

    NSGA2(pop_size=16, sampling=GenomeSampling(space, seeds), crossover=GenomeCrossover(space),
          mutation=GenomeMutation(space), repair=GenomeRepair(space), eliminate_duplicates=True)

The problem's `n_var`, `xl`, `xu` must be `genome.n_var(space)` and `genome.bounds(space)`. Every
operator returns canonical vectors (repaired), so pymoo's duplicate elimination on X is
elimination of equal architectures. The classes are importable and hold only the space and
numbers, so they pickle with the algorithm; randomness comes from pymoo's `random_state`, which
lives on the algorithm (a restored algorithm reproduces its next ask). Non-goals: operators that
look at objective values (selection is NSGA-II's own).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymoo.core.crossover import Crossover
from pymoo.core.mutation import Mutation
from pymoo.core.repair import Repair
from pymoo.core.sampling import Sampling

from livc.search.genome import Genome, to_vector
from livc.search.repair import repair
from livc.search.space import SearchSpace
from livc.search.variation import HYPER_RATE, RATE, canonical_vector, crossover_vectors, mutate_vector, random_vector


def _rng(random_state: np.random.Generator | None) -> np.random.Generator:
    return random_state if random_state is not None else np.random.default_rng()


class GenomeSampling(Sampling):
    """The seeds first (canonical, duplicates kept once), then random genomes."""

    def __init__(self, space: SearchSpace, seeds: Sequence[Genome] = ()) -> None:
        super().__init__()
        self.space = space
        self.seeds = tuple(seeds)

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):  # noqa: ANN001, ANN002, ANN003
        rng = _rng(random_state)
        rows: list[tuple[int, ...]] = []
        for seed in self.seeds:
            row = to_vector(repair(seed, self.space), self.space)
            if row not in rows:
                rows.append(row)
        rows = rows[:n_samples]
        while len(rows) < n_samples:
            rows.append(tuple(int(v) for v in random_vector(self.space, rng)))
        return np.array(rows, dtype=int)


class GenomeCrossover(Crossover):
    """k-point crossover at slot boundaries (2 parents -> 2 children), repaired."""

    def __init__(self, space: SearchSpace, points: int = 2, whole_slots: bool = True, prob: float = 0.9) -> None:
        super().__init__(n_parents=2, n_offsprings=2, prob=prob)
        self.space = space
        self.points = points
        self.whole_slots = whole_slots

    def _do(self, problem, X, *args, random_state=None, **kwargs):  # noqa: ANN001, ANN002, ANN003, N803
        rng = _rng(random_state)
        _, n_matings, n_var = X.shape
        out = np.empty((2, n_matings, n_var), dtype=int)
        for k in range(n_matings):
            out[0, k], out[1, k] = crossover_vectors(X[0, k], X[1, k], self.space, rng, self.points, self.whole_slots)
        return out


class GenomeMutation(Mutation):
    """Per-gene mutation: structural genes at `rate`, hyper genes at the lower `hyper_rate`."""

    def __init__(self, space: SearchSpace, rate: float = RATE, hyper_rate: float = HYPER_RATE) -> None:
        super().__init__(prob=1.0)
        self.space = space
        self.rate = rate
        self.hyper_rate = hyper_rate

    def _do(self, problem, X, *args, random_state=None, **kwargs):  # noqa: ANN001, ANN002, ANN003, N803
        rng = _rng(random_state)
        return np.array([mutate_vector(x, self.space, rng, self.rate, self.hyper_rate) for x in X], dtype=int)


class GenomeRepair(Repair):
    """Canonical form of every row (see search/repair.py)."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space

    def _do(self, problem, X, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, N803
        return np.array([canonical_vector(x, self.space) for x in X], dtype=int)
