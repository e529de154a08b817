"""Random genomes and variation: per-gene mutation and k-point crossover, all ending in `repair`.

Every function takes a numpy `Generator` (pymoo passes its `random_state`), returns canonical
genomes or vectors, and maps valid to valid (any vector in `genome.bounds` is valid after repair).
Mutation redraws each structural gene (class, sharing groups and strategies) with probability
`rate` and each hyper gene (operator / featurizer arguments) with the lower `hyper_rate`, always to
a different legal value. Crossover cuts at `points` slot boundaries (STAR's 2-point crossover on the
flat genome; `whole_slots=False` cuts between any genes). Non-goals: adaptive rates, operators
that know the objectives.
"""

from __future__ import annotations

import numpy as np

from livc.search.genome import HEAD, Genome, bounds, from_vector, slot_width, to_vector
from livc.search.repair import repair
from livc.search.space import SearchSpace

RATE = 0.1
HYPER_RATE = 0.05


def canonical_vector(x: np.ndarray, space: SearchSpace) -> np.ndarray:
    return np.array(to_vector(repair(from_vector(x, space), space), space), dtype=int)


def random_vector(space: SearchSpace, rng: np.random.Generator) -> np.ndarray:
    xl, xu = bounds(space)
    return canonical_vector(rng.integers(xl, xu + 1), space)


def random_genome(space: SearchSpace, rng: np.random.Generator) -> Genome:
    return repair(from_vector(random_vector(space, rng), space), space)


def _is_hyper(space: SearchSpace) -> np.ndarray:
    width = slot_width(space)
    return np.array([i % width >= HEAD for i in range(space.slots * width)])


def mutate_vector(
    x: np.ndarray, space: SearchSpace, rng: np.random.Generator, rate: float = RATE, hyper_rate: float = HYPER_RATE
) -> np.ndarray:
    xl, xu = bounds(space)
    x = np.asarray(x, dtype=int).copy()
    p = np.where(_is_hyper(space), hyper_rate, rate)
    span = xu - xl
    hit = (rng.random(len(x)) < p) & (span > 0)
    for i in np.flatnonzero(hit):
        shift = int(rng.integers(1, span[i] + 1))
        x[i] = xl[i] + (x[i] - xl[i] + shift) % (span[i] + 1)
    return canonical_vector(x, space)


def mutate(
    genome: Genome, space: SearchSpace, rng: np.random.Generator, rate: float = RATE, hyper_rate: float = HYPER_RATE
) -> Genome:
    x = mutate_vector(np.array(to_vector(genome, space)), space, rng, rate, hyper_rate)
    return from_vector(x, space)


def _cuts(space: SearchSpace, rng: np.random.Generator, points: int, whole_slots: bool) -> list[int]:
    unit = slot_width(space) if whole_slots else 1
    positions = np.arange(1, (space.slots * slot_width(space)) // unit) * unit
    if len(positions) == 0:
        return []
    chosen = rng.choice(positions, size=min(points, len(positions)), replace=False)
    return sorted(int(c) for c in chosen)


def crossover_vectors(
    a: np.ndarray,
    b: np.ndarray,
    space: SearchSpace,
    rng: np.random.Generator,
    points: int = 2,
    whole_slots: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    take_b = np.zeros(len(a), dtype=bool)
    for cut in _cuts(space, rng, points, whole_slots):
        take_b[cut:] = ~take_b[cut:]
    c1, c2 = np.where(take_b, b, a), np.where(take_b, a, b)
    return canonical_vector(c1, space), canonical_vector(c2, space)


def crossover(
    a: Genome, b: Genome, space: SearchSpace, rng: np.random.Generator, points: int = 2, whole_slots: bool = True
) -> tuple[Genome, Genome]:
    va, vb = np.array(to_vector(a, space)), np.array(to_vector(b, space))
    c1, c2 = crossover_vectors(va, vb, space, rng, points, whole_slots)
    return from_vector(c1, space), from_vector(c2, space)
