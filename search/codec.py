"""The engine's one view of S1's genome API (search/genome.py, operators.py), bound to a space.

Vectors are pymoo integer vectors; `canonical(x)` = repair(from_vector(x)), whose `key` is the
archive key (genotype equality = phenotype equality after repair). `encode` of a seed architecture
that is not in the space raises S1's SearchError E0801, re-raised here naming the seed file.
Non-goals: any genome logic of its own (that is S1's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from livc.search import genome as G
from livc.search.errors import SearchError


@dataclass(frozen=True)
class Codec:
    space: Any  # search.space.SearchSpace

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return G.bounds(self.space)

    def to_vector(self, genome: G.Genome) -> tuple[int, ...]:
        return tuple(int(v) for v in G.to_vector(genome, self.space))

    def canonical(self, x: Any) -> G.Genome:
        return G.repair(G.from_vector(x, self.space), self.space)

    def key(self, genome: G.Genome) -> str:
        return G.key(G.repair(genome, self.space))

    def decode(self, genome: G.Genome) -> str:
        return G.decode(genome, self.space)

    def encode(self, text: str, path: str) -> G.Genome:
        try:
            return G.repair(G.encode(text, self.space), self.space)
        except SearchError as exc:
            raise SearchError(exc.code, f"{path}: {exc.message}", exc.where, exc.help) from exc
        except ValueError as exc:
            raise SearchError("E0801", f"seed architecture {path} is not in the search space: {exc}") from exc

    def random(self, rng: np.random.Generator) -> G.Genome:
        return G.repair(G.random_genome(self.space, rng), self.space)

    def crossover(self) -> Any:
        from livc.search.operators import GenomeCrossover

        return GenomeCrossover(self.space)

    def mutation(self) -> Any:
        from livc.search.operators import GenomeMutation

        return GenomeMutation(self.space)

    def repair_operator(self) -> Any:
        from livc.search.operators import GenomeRepair

        return GenomeRepair(self.space)
