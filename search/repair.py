"""Constructive repair of genomes into their canonical form, and the archive key.

`repair(genome, space)` never fails and is idempotent. Steps (SEARCH-NOTES "A genome for this project"):
1. clamp: a class the slot may not take becomes `allowed[cls % len(allowed)]`; hyper genes are cut or
   padded (0) to the class's hypers and clamped into their values; a strategy that is illegal for the
   class (or a sharing kind the space does not search) becomes 0 (none); group genes are clamped.
2. featurizer groups: the active slots with one label split by class; a group of one is switched off.
3. feature groups: the active slots with one label split by class and strategy; the source is the
   earliest slot; members in the source's own layer are dropped (features flow to later layers only);
   a group of one is switched off.
4. shape hypers: a hyper flagged `featurizer` is made equal across each featurizer group, one flagged
   `features` across each feature group (transitively, through union-find), taking the value of the
   earliest slot, so every group is compatible and `livc check` accepts the decoded program.
5. labels: a member's group gene is its source's slot index, an inactive slot's its own index.
So two canonical genomes are equal iff they decode to the same program (tests/test_search_genome.py).
Non-goals: repairing budgets (they are pymoo constraints, never repairs).
"""

from __future__ import annotations

from collections import defaultdict

from livc.search.genome import Genome, SlotGene
from livc.search.space import SearchSpace


def key(genome: Genome) -> str:
    """`cls.fz_group.fz_strategy.fg_group.fg_strategy:hypers` per slot, joined by `|` (canonical genomes)."""
    return "|".join(
        f"{g.cls}.{g.fz_group}.{g.fz_strategy}.{g.fg_group}.{g.fg_strategy}:{'.'.join(map(str, g.hypers))}"
        for g in genome.slots
    )


def repair(genome: Genome, space: SearchSpace) -> Genome:
    if len(genome.slots) != space.slots:
        raise ValueError(f"genome has {len(genome.slots)} slots, the space {space.slots}")
    slots = [_clamped(space, s, g) for s, g in enumerate(genome.slots)]
    fz = _featurizer_groups(slots)
    fg = _feature_groups(space, slots)
    hypers = _unified(space, slots, fz, fg)
    return Genome(tuple(_canonical(s, g, hypers[s], fz, fg) for s, g in enumerate(slots)))


def _clamp(value: int, low: int, high: int) -> int:
    return min(max(int(value), low), high)


def _clamped(space: SearchSpace, slot: int, g: SlotGene) -> SlotGene:
    allowed = space.allowed(slot)
    cls = g.cls if g.cls in allowed else allowed[max(int(g.cls), 0) % len(allowed)]
    op = space.classes[cls]
    raw = tuple(g.hypers) + (0,) * len(op.hypers)
    hypers = tuple(_clamp(raw[j], 0, len(h.values) - 1) for j, h in enumerate(op.hypers))
    fz_ok = space.sharing.featurizer and op.featurizer and g.fz_strategy == 1
    fg_ok = space.sharing.features and 1 <= g.fg_strategy <= len(op.fg_strategies)
    last = space.slots - 1
    return SlotGene(
        cls=cls,
        fz_group=_clamp(g.fz_group, 0, last),
        fz_strategy=1 if fz_ok else 0,
        fg_group=_clamp(g.fg_group, 0, last),
        fg_strategy=g.fg_strategy if fg_ok else 0,
        hypers=hypers,
    )


Groups = dict[int, tuple[int, ...]]  # member slot -> the group's slots, earliest (the source) first


def _as_groups(buckets: dict[tuple[int, ...], list[int]]) -> Groups:
    out: Groups = {}
    for members in buckets.values():
        if len(members) > 1:
            for m in members:
                out[m] = tuple(members)
    return out


def _featurizer_groups(slots: list[SlotGene]) -> Groups:
    buckets: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for s, g in enumerate(slots):
        if g.fz_strategy:
            buckets[(g.fz_group, g.cls)].append(s)
    return _as_groups(buckets)


def _feature_groups(space: SearchSpace, slots: list[SlotGene]) -> Groups:
    buckets: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for s, g in enumerate(slots):
        if g.fg_strategy:
            buckets[(g.fg_group, g.cls, g.fg_strategy)].append(s)
    for label, members in buckets.items():
        layer = space.ref(members[0])[0]
        buckets[label] = [members[0]] + [m for m in members[1:] if space.ref(m)[0] > layer]
    return _as_groups(buckets)


def _find(parent: dict[int, int], s: int) -> int:
    while parent.get(s, s) != s:
        s = parent[s]
    return s


def _unified(space: SearchSpace, slots: list[SlotGene], fz: Groups, fg: Groups) -> list[tuple[int, ...]]:
    """Each slot's hypers, with the group-shaping ones taken from the earliest slot they are tied to."""
    out = [list(g.hypers) for g in slots]
    n = max((len(h) for h in out), default=0)
    for j in range(n):
        parent: dict[int, int] = {}
        for groups, flag in ((fz, "featurizer"), (fg, "features")):
            for s, members in groups.items():
                hypers = space.classes[slots[s].cls].hypers
                if j < len(hypers) and getattr(hypers[j], flag):
                    a, b = _find(parent, s), _find(parent, members[0])
                    parent[max(a, b)] = min(a, b)
        for s in parent:
            root = _find(parent, s)
            out[s][j] = out[root][j]
    return [tuple(h) for h in out]


def _canonical(slot: int, g: SlotGene, hypers: tuple[int, ...], fz: Groups, fg: Groups) -> SlotGene:
    return SlotGene(
        cls=g.cls,
        fz_group=fz[slot][0] if slot in fz else slot,
        fz_strategy=1 if slot in fz else 0,
        fg_group=fg[slot][0] if slot in fg else slot,
        fg_strategy=g.fg_strategy if slot in fg else 0,
        hypers=hypers,
    )
