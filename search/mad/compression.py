"""Compression (MAD): reconstruct a whole random sequence from the model's state at its last position.

seq - 1 tokens drawn uniformly from range(vocab - 1), then the compression token `vocab - 1`; the target
is the input itself, every position. The model reads it through an auto-encoder readout
(search.mad.readout.AutoEncoder: last position -> positional code -> 2-layer GELU MLP -> logits), so the
backbone must squeeze the sequence into one position's features. Training and test have the same form.

Preconditions: vocab >= 2, seq >= 2. Non-goals: MAD's optional noise variant (frac_noise is 0 in the
benchmark).
"""

from __future__ import annotations

import numpy as np

from livc.search.mad.setting import Instance, TaskSetting, pack


def instance(s: TaskSetting, rng: np.random.Generator, training: bool) -> Instance:
    del training
    tokens = np.concatenate([rng.integers(0, s.vocab - 1, s.seq - 1), [s.vocab - 1]])
    return pack(tokens, tokens.copy())
