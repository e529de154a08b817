"""In-context recall and noisy in-context recall (MAD, multi-query form), one instance at a time.

Vocabulary of `vocab` tokens: keys are the lower half of the non-noise tokens, values the upper half, the
last `noise_vocab` tokens are noise. A sequence is seq/2 - 1 key-value pairs with a mapping of its own
(each key keeps one value), then a final probe pair whose key was already shown. A pair is replaced by
two noise tokens with probability `frac_noise` (never all of them). Training targets are all next tokens;
test targets are only the values of keys already presented (and the probe's value). Inputs have length
seq - 1, as in MAD (the final token is only a target).

Preconditions: seq even and >= 4; vocab - noise_vocab >= 2.
Non-goals: MAD's single-query variant with a copy prefix (the benchmark uses multi-query only).
"""

from __future__ import annotations

import numpy as np

from livc.search.mad.setting import IGNORE, Instance, TaskSetting, pack


def instance(s: TaskSetting, rng: np.random.Generator, training: bool) -> Instance:
    clean = s.vocab - s.noise_vocab
    n_keys, pairs = clean // 2, s.seq // 2 - 1
    keys = rng.integers(0, n_keys, pairs)
    table = rng.integers(n_keys, clean, n_keys)
    noise = _noise_mask(rng, pairs, s.frac_noise)
    tokens = np.stack([keys, table[keys]], axis=1)
    if noise.any():
        tokens[noise] = rng.integers(clean, s.vocab, (int(noise.sum()), 2))
    shown = np.unique(keys[~noise])
    probe = int(rng.choice(shown))
    seq = np.concatenate([tokens.reshape(-1), [probe, table[probe]]])
    if training:
        return pack(seq[:-1], seq[1:])
    return pack(seq[:-1], _test_targets(keys, table, noise, probe)[1:])


def _noise_mask(rng: np.random.Generator, pairs: int, frac: float) -> np.ndarray:
    if frac <= 0:
        return np.zeros(pairs, dtype=bool)
    mask = rng.random(pairs) < frac
    mask[rng.integers(pairs)] = False  # at least one real pair, so the probe has a key to ask for
    return mask


def _test_targets(keys: np.ndarray, table: np.ndarray, noise: np.ndarray, probe: int) -> np.ndarray:
    repeated = np.zeros(len(keys), dtype=bool)
    real = np.flatnonzero(~noise)
    _, first = np.unique(keys[real], return_index=True)
    repeated[real] = True
    repeated[real[first]] = False
    values = np.where(repeated, table[keys], IGNORE)
    pairs = np.stack([np.full(len(keys), IGNORE), values], axis=1).reshape(-1)
    return np.concatenate([pairs, [IGNORE, table[probe]]])
