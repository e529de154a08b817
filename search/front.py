"""Objective and constraint vectors of archived candidates, the Pareto front, and hypervolume.

Everything is in minimisation form, as pymoo sees it: quality enters as `-quality`, costs as they are.
A candidate that failed or was rejected has quality 0 and latency `WORST`, and its `trained`
constraint is violated, so every feasible candidate dominates it. Hypervolume is computed on
objectives normalised to [0, 1] with fixed bounds (quality: [-1, 0]; each cost: the min and max over a
reference set of points that the caller fixes), against the reference point 1.1 in every coordinate.
Non-goals: objective weighting, epsilon dominance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from livc.compiler.ir.nodes import Budget
from livc.search.archive import Record
from livc.search.config import Objective
from livc.search.statics import budget_label, violation

WORST = 1e12
REF = 1.1


def objective_vector(record: Record, objectives: Sequence[Objective]) -> tuple[float, ...]:
    return tuple(_objective(record, o) for o in objectives)


def _objective(record: Record, o: Objective) -> float:
    ok = record.status == "done" and record.metrics is not None
    if o.name == "quality":
        return -float(record.metrics.get("quality", 0.0)) if ok else 0.0  # type: ignore[union-attr]
    if o.name == "latency":
        return float(record.metrics.get("latency_s", WORST)) if ok else WORST  # type: ignore[union-attr]
    return float(record.costs.get(o.label, WORST))


def constraint_vector(record: Record, budgets: Sequence[Budget]) -> tuple[float, ...]:
    """One value per budget (`value / limit - 1`), then `trained` (-1 done, +1 failed or rejected)."""
    per_budget = tuple(violation(float(record.costs.get(budget_label(b), WORST)), b) for b in budgets)
    return per_budget + (-1.0 if record.status == "done" else 1.0,)


def feasible(record: Record, budgets: Sequence[Budget]) -> bool:
    return all(g <= 0 for g in constraint_vector(record, budgets))


def nondominated(points: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of `points` (minimisation; exact duplicates all kept)."""
    keep = []
    for i, p in enumerate(points):
        dominated = np.any(np.all(points <= p, axis=1) & np.any(points < p, axis=1))
        if not dominated:
            keep.append(i)
    return np.array(keep, dtype=int)


def front(records: Sequence[Record], objectives: Sequence[Objective], budgets: Sequence[Budget]) -> list[Record]:
    """The feasible, non-dominated records, in archive order."""
    ok = [r for r in records if feasible(r, budgets)]
    if not ok:
        return []
    points = np.array([objective_vector(r, objectives) for r in ok], dtype=float)
    return [ok[i] for i in nondominated(points)]


def bounds(points: np.ndarray, objectives: Sequence[Objective]) -> tuple[np.ndarray, np.ndarray]:
    """(ideal, nadir) for normalisation: quality [-1, 0]; costs the min/max of `points`."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    for j, o in enumerate(objectives):
        if o.name == "quality":
            lo[j], hi[j] = -1.0, 0.0
    return lo, np.where(hi > lo, hi, lo + 1.0)


def hypervolume(points: np.ndarray, ideal: np.ndarray, nadir: np.ndarray) -> float:
    """Hypervolume of `points` after normalising with (ideal, nadir), against reference point 1.1."""
    if len(points) == 0:
        return 0.0
    from pymoo.indicators.hv import HV

    scaled = (np.asarray(points, dtype=float) - ideal) / (nadir - ideal)
    inside = scaled[np.all(scaled < REF, axis=1)]
    if len(inside) == 0:
        return 0.0
    return float(HV(ref_point=np.full(points.shape[1], REF))(inside))
