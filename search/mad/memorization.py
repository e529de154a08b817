"""Memorization (MAD): a fixed key -> value map that has to live in the weights, not the context.

Token `vocab - 1` is the insert token. The map pairs the keys range((vocab - 1) // 2) with values from
the upper half of range(vocab - 1), both shuffled by a generator seeded with `MAP_SEED` (12345, MAD's
seed), so it is the same for every data seed, split and candidate. A sequence is seq / 2 pairs
(key, insert token); the insert token's target is the key's value, keys are IGNORE. Training and test
examples are drawn from the same map (the test measures recall of the memorised facts).

Preconditions: vocab >= 4, seq even.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from livc.search.mad.setting import IGNORE, Instance, TaskSetting, pack

MAP_SEED = 12345


@lru_cache(maxsize=16)
def value_map(vocab: int) -> np.ndarray:
    """values[k] for every key k in range((vocab - 1) // 2); read-only."""
    rng = np.random.default_rng(MAP_SEED)
    symbols = vocab - 1
    keys = rng.permutation(symbols // 2)
    values = rng.permutation(np.arange(symbols // 2, symbols))
    table = np.empty(symbols // 2, dtype=np.int64)
    table[keys] = values[: len(keys)]
    table.setflags(write=False)
    return table


def instance(s: TaskSetting, rng: np.random.Generator, training: bool) -> Instance:
    del training
    table = value_map(s.vocab)
    keys = rng.integers(0, len(table), s.seq // 2)
    tokens = np.stack([keys, np.full_like(keys, s.vocab - 1)], axis=1).reshape(-1)
    targets = np.stack([np.full_like(keys, IGNORE), table[keys]], axis=1).reshape(-1)
    return pack(tokens, targets)
