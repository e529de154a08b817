"""Selective copying (MAD): copy the non-blank tokens of a sequence, in order, after a copy token.

Token `vocab - 1` is the copy token, `vocab - 2` the blank; `copy` tokens drawn from the rest (with
replacement) are scattered among seq - 2 * copy - 1 blanks (each blank goes before a random one of them,
as `np.insert` at indices in [0, copy) does in MAD: never after the last), then come the copy token and
`copy` blanks. Targets are aligned with the inputs: the i-th trailing blank's target is the i-th token to
copy; every other position is IGNORE. Training and test examples have the same form. MAD draws the blank
positions with the unseeded global `np.random`; here they come from the instance's generator.

Preconditions: seq > 2 * copy + 1, copy >= 1, vocab >= 3.
"""

from __future__ import annotations

import numpy as np

from livc.search.mad.setting import IGNORE, Instance, TaskSetting, pack


def instance(s: TaskSetting, rng: np.random.Generator, training: bool) -> Instance:
    del training  # the same form for both splits
    copy_token, blank = s.vocab - 1, s.vocab - 2
    blanks = s.seq - 2 * s.copy - 1
    to_copy = rng.integers(0, s.vocab - 2, s.copy)
    scattered = np.insert(to_copy, rng.integers(0, s.copy, blanks), blank)
    tokens = np.concatenate([scattered, [copy_token], np.full(s.copy, blank)])
    targets = np.concatenate([np.full(s.seq - s.copy, IGNORE), to_copy])
    return pack(tokens, targets)
