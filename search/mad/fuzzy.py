"""Fuzzy in-context recall (MAD, multi-query form): keys and values are motifs of 1..`motif` tokens.

Token `vocab - 1` pads the sequence on the left; keys are motifs of distinct tokens from the lower half
of the rest, values from the upper half. Training sequences mix key sizes 1..motif; test sequences always
use keys of the longest size (values stay mixed). A probe pair is placed at a random point and repeated
at the end; each key keeps its value within a sequence. Training targets: all next tokens; test targets:
the value tokens of keys already presented, and the probe's value. Inputs have length `seq`.

MAD draws each motif as a random element of the list of all permutations of the key (value) vocabulary;
that is a uniformly random ordered tuple of distinct tokens, which `_motifs` samples directly (same
distribution, not the same random stream: MAD's list shuffling costs milliseconds per instance).

Preconditions: (vocab - 1) // 2 >= motif; seq large enough for a few pairs (>= 8 * motif).
"""

from __future__ import annotations

import numpy as np

from livc.search.mad.setting import IGNORE, Instance, TaskSetting, pack


def instance(s: TaskSetting, rng: np.random.Generator, training: bool) -> Instance:
    clean = s.vocab - 1
    n_keys, longest = clean // 2, s.motif
    draws = _Draws(rng, s.seq, n_keys, clean - n_keys, longest, training)
    k_probe, v_probe = draws.key(), draws.value()
    probe_at = int(rng.integers(s.seq - 2 * (len(k_probe) + len(v_probe))))
    tokens, targets = _body(draws, s.seq, k_probe, v_probe, probe_at)
    tokens += [*k_probe, *v_probe]
    targets += [IGNORE] * len(k_probe) + list(v_probe)
    pad = s.seq + 1 - len(tokens)
    tokens, targets = [s.vocab - 1] * pad + tokens, [IGNORE] * pad + targets
    seq = np.asarray(tokens)
    return pack(seq[:-1], seq[1:] if training else np.asarray(targets)[1:])


def _body(draws: _Draws, seq: int, k_probe: tuple, v_probe: tuple, probe_at: int) -> tuple[list, list]:
    tokens: list[int] = []
    targets: list[int] = []
    value_of: dict[tuple, tuple] = {k_probe: v_probe}
    presented: set[tuple] = set()
    limit = seq - len(k_probe) - len(v_probe) - 2 * draws.longest
    placed = False
    while len(tokens) < limit:
        if len(tokens) >= probe_at and not placed:  # the probe pair itself is never scored here
            tokens += [*k_probe, *v_probe]
            targets += [IGNORE] * (len(k_probe) + len(v_probe))
            presented.add(k_probe)
            placed = True
            continue
        key = draws.key()
        value = value_of.setdefault(key, draws.value())
        placed = placed or key == k_probe
        tokens += [*key, *value]
        targets += [IGNORE] * len(key) + (list(value) if key in presented else [IGNORE] * len(value))
        presented.add(key)
    return tokens, targets


class _Draws:
    """Pre-drawn motifs (vectorised), consumed in order: the per-token Python work stays small."""

    def __init__(self, rng: np.random.Generator, seq: int, n_keys: int, n_values: int, longest: int, training: bool):
        count = seq + 2  # at most one key and one value per token, plus the probe
        low = 1 if training else longest
        self.longest = longest
        self._keys = _motifs(rng, n_keys, count, longest)
        self._key_sizes = rng.integers(low, longest + 1, count)
        self._values = _motifs(rng, n_values, count, longest) + n_keys
        self._value_sizes = rng.integers(1, longest + 1, count)
        self._k = self._v = 0

    def key(self) -> tuple[int, ...]:
        i, self._k = self._k, self._k + 1
        return tuple(int(t) for t in self._keys[i, : self._key_sizes[i]])

    def value(self) -> tuple[int, ...]:
        i, self._v = self._v, self._v + 1
        return tuple(int(t) for t in self._values[i, : self._value_sizes[i]])


def _motifs(rng: np.random.Generator, n: int, count: int, size: int) -> np.ndarray:
    """`count` uniformly random ordered tuples of `size` distinct tokens of range(n): each next token is drawn
    from the n - j unused ones by skipping the used ones in ascending order."""
    out = np.empty((count, size), dtype=np.int64)
    for j in range(size):
        r = rng.integers(0, n - j, count)
        for used in np.sort(out[:, :j], axis=1).T:
            r += r >= used
        out[:, j] = r
    return out
