"""The six MAD tasks: an explicit registry of generators, setting checks, and seeded train/test datasets.

    data = dataset(TaskSetting(task="in_context_recall", vocab=64, seq=256), seed=12345)
    data.train_x [train, L] int64, data.train_y (IGNORE = -100 where not trained), data.test_x/test_y

Each split has its own generator (`np.random.default_rng([seed, split])`), so the test set does not
depend on the train size. Datasets are cached per (setting, seed) in the process: every candidate of a
search sees the same data. `readout` says how a model is read: "lm" (logits at every position) or
"autoencoder" (compression: see search.mad.readout).

Non-goals: disk caching, MAD's on-disk format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from livc.search.mad import compression, copying, fuzzy, memorization, recall
from livc.search.mad.setting import Instance, TaskSetting

Generator = Callable[[TaskSetting, np.random.Generator, bool], Instance]

GENERATORS: dict[str, Generator] = {
    "in_context_recall": recall.instance,
    "fuzzy_recall": fuzzy.instance,
    "noisy_recall": recall.instance,
    "selective_copying": copying.instance,
    "compression": compression.instance,
    "memorization": memorization.instance,
}
TASKS = tuple(GENERATORS)
READOUTS: dict[str, str] = {name: "autoencoder" if name == "compression" else "lm" for name in TASKS}


@dataclass(frozen=True)
class TaskData:
    setting: TaskSetting
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    @property
    def readout(self) -> str:
        return READOUTS[self.setting.task]


def problems(s: TaskSetting) -> list[str]:
    """What is wrong with a setting (empty when it can be generated)."""
    if s.task not in GENERATORS:
        return [f"unknown MAD task {s.task!r}; known: {', '.join(TASKS)}"]
    found = [] if s.train >= 1 and s.test >= 1 else ["train and test counts must be >= 1"]
    return found + _CHECKS[s.task](s)


def _recall(s: TaskSetting) -> list[str]:
    found = [] if s.seq >= 4 and s.seq % 2 == 0 else [f"seq must be even and >= 4, got {s.seq}"]
    if (s.vocab - s.noise_vocab) // 2 < 1:
        found.append(f"vocab {s.vocab} leaves no keys after {s.noise_vocab} noise tokens")
    if not 0 <= s.frac_noise < 1 or (s.frac_noise > 0 and s.noise_vocab < 1):
        found.append("frac_noise must be in [0, 1), and > 0 only with noise_vocab >= 1")
    return found


def _fuzzy(s: TaskSetting) -> list[str]:
    found = [] if s.motif >= 1 and (s.vocab - 1) // 2 >= s.motif else [f"vocab {s.vocab} too small for motif {s.motif}"]
    return found + ([] if s.seq >= 8 * s.motif else [f"seq must be >= 8 * motif, got {s.seq}"])


def _copying(s: TaskSetting) -> list[str]:
    ok = s.copy >= 1 and s.seq > 2 * s.copy + 1 and s.vocab >= 3
    return [] if ok else [f"need copy >= 1, seq > 2 * copy + 1, vocab >= 3 (copy {s.copy}, seq {s.seq})"]


def _compression(s: TaskSetting) -> list[str]:
    return [] if s.vocab >= 2 and s.seq >= 2 else ["need vocab >= 2 and seq >= 2"]


def _memorization(s: TaskSetting) -> list[str]:
    return [] if s.vocab >= 4 and s.seq >= 2 and s.seq % 2 == 0 else ["need vocab >= 4 and an even seq >= 2"]


_CHECKS: dict[str, Callable[[TaskSetting], list[str]]] = {
    "in_context_recall": _recall,
    "fuzzy_recall": _fuzzy,
    "noisy_recall": _recall,
    "selective_copying": _copying,
    "compression": _compression,
    "memorization": _memorization,
}


@lru_cache(maxsize=32)
def dataset(setting: TaskSetting, seed: int) -> TaskData:
    """Train and test arrays for `setting` (ValueError naming the problem for a bad setting)."""
    found = problems(setting)
    if found:
        raise ValueError(f"bad MAD setting {setting.label}: {'; '.join(found)}")
    train = split(setting, seed, 0, setting.train)
    test = split(setting, seed, 1, setting.test)
    return TaskData(setting, *train, *test)


def split(setting: TaskSetting, seed: int, index: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, index])
    make = GENERATORS[setting.task]
    pairs = [make(setting, rng, index == 0) for _ in range(count)]
    x, y = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y
