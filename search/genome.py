"""STAR backbone genomes: one `SlotGene` per LIV slot, and their pymoo integer-vector form.

API (S1; the names of TEAM.md, all also importable from here):
    space.SearchSpace / OpClass / Ctor / Hyper / Sharing, space.default_pool(width)
    genome.Genome(slots), genome.SlotGene(cls, fz_group, fz_strategy, fg_group, fg_strategy, hypers)
    genome.bounds(space) -> (xl, xu)      per-position inclusive integer bounds, len = n_var(space)
    genome.to_vector(g, space) / genome.from_vector(x, space)   (from_vector clamps, never repairs)
    decode(g, space) -> str               formatted .liv text of model `Candidate` (repairs first)
    encode(text, space) -> Genome         canonical; SearchError E0801 when the backbone is not in space
    repair(g, space) -> Genome            canonical form (idempotent); key(g) -> str (archive key)
    random_genome(space, rng) / mutate / crossover (variation.py; rng = numpy Generator)
    operators.GenomeSampling / GenomeCrossover / GenomeMutation / GenomeRepair (pymoo 0.6.2)

Genes (0-based, unlike STAR's 1-based paper notation): `cls` indexes `space.classes` (the vector
stores its position in `space.allowed(slot)`); `fz_strategy` 0 = none, 1 = share the whole
featurizer; `fg_strategy` 0 = none, i = share `OpClass.fg_strategies[i - 1]`; a group gene is a slot
index (canonically the index of the group's source slot, and a slot's own index when inactive);
`hypers[j]` indexes `OpClass.hypers[j].values`. A group gene of a slot where that sharing is
impossible (no class of the slot has it, or the space does not search it) has bounds [0, 0] in the
vector and stands for the slot's own index. Vector layout per slot:
[cls, fz_group, fz_strategy, fg_group, fg_strategy, hyper_0 .. hyper_{H-1}], H = the most hypers of
any class in the space (unused hyper positions are 0 in canonical vectors).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from livc.search.space import SearchSpace

HEAD = 5  # structural genes per slot before the hyper genes


@dataclass(frozen=True)
class SlotGene:
    cls: int
    fz_group: int
    fz_strategy: int
    fg_group: int
    fg_strategy: int
    hypers: tuple[int, ...] = ()


@dataclass(frozen=True)
class Genome:
    slots: tuple[SlotGene, ...]


def n_hypers(space: SearchSpace) -> int:
    return max((len(c.hypers) for c in space.classes), default=0)


def slot_width(space: SearchSpace) -> int:
    return HEAD + n_hypers(space)


def n_var(space: SearchSpace) -> int:
    return space.slots * slot_width(space)


def _slot_upper(space: SearchSpace, slot: int) -> list[int]:
    classes = [space.classes[i] for i in space.allowed(slot)]
    last = space.slots - 1
    fz = int(space.sharing.featurizer and any(c.featurizer for c in classes))
    fg = max(len(c.fg_strategies) for c in classes) if space.sharing.features else 0
    hyper = [
        max((len(c.hypers[j].values) - 1 for c in classes if j < len(c.hypers)), default=0)
        for j in range(n_hypers(space))
    ]
    return [len(classes) - 1, last if fz else 0, fz, last if fg else 0, fg, *hyper]


def bounds(space: SearchSpace) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive lower and upper bounds per vector position (pymoo `xl`, `xu`)."""
    upper = [u for s in range(space.slots) for u in _slot_upper(space, s)]
    return np.zeros(len(upper), dtype=int), np.array(upper, dtype=int)


def to_vector(genome: Genome, space: SearchSpace) -> tuple[int, ...]:
    if len(genome.slots) != space.slots:
        raise ValueError(f"genome has {len(genome.slots)} slots, the space {space.slots}")
    out: list[int] = []
    pad = n_hypers(space)
    for s, g in enumerate(genome.slots):
        allowed = space.allowed(s)
        position = allowed.index(g.cls) if g.cls in allowed else 0
        hypers = (tuple(g.hypers) + (0,) * pad)[:pad]
        upper = _slot_upper(space, s)
        fz_group, fg_group = (g.fz_group if upper[1] else 0), (g.fg_group if upper[3] else 0)
        out += [position, fz_group, g.fz_strategy, fg_group, g.fg_strategy, *hypers]
    return tuple(out)


def from_vector(x: Sequence[int] | np.ndarray, space: SearchSpace) -> Genome:
    """The genome of a vector, each gene clamped into its bounds (`repair` makes it canonical).

    Hyper genes past the slot class's own hypers are dropped, so `from_vector(to_vector(g))` is `g`
    for every canonical genome."""
    values = [int(round(float(v))) for v in np.asarray(x).ravel()]
    if len(values) != n_var(space):
        raise ValueError(f"vector has {len(values)} genes, the space needs {n_var(space)}")
    _, xu = bounds(space)
    clamped = [min(max(v, 0), int(u)) for v, u in zip(values, xu)]
    width = slot_width(space)
    return Genome(tuple(_slot(space, s, clamped[s * width : (s + 1) * width]) for s in range(space.slots)))


def _slot(space: SearchSpace, slot: int, genes: list[int]) -> SlotGene:
    cls = space.allowed(slot)[genes[0]]
    hypers = tuple(genes[HEAD : HEAD + len(space.classes[cls].hypers)])
    upper = _slot_upper(space, slot)
    fz_group, fg_group = (genes[1] if upper[1] else slot), (genes[3] if upper[3] else slot)
    return SlotGene(cls, fz_group, genes[2], fg_group, genes[4], hypers)


# ---- the rest of the API, re-exported (imported lazily: those modules import this one) ----------


def decode(genome: Genome, space: SearchSpace) -> str:
    from livc.search.decode import decode as _decode

    return _decode(genome, space)


def encode(text: str, space: SearchSpace) -> Genome:
    from livc.search.encode import encode as _encode

    return _encode(text, space)


def repair(genome: Genome, space: SearchSpace) -> Genome:
    from livc.search.repair import repair as _repair

    return _repair(genome, space)


def key(genome: Genome) -> str:
    from livc.search.repair import key as _key

    return _key(genome)


def random_genome(space: SearchSpace, rng: np.random.Generator) -> Genome:
    from livc.search.variation import random_genome as _random

    return _random(space, rng)
