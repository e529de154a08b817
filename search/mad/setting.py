"""One MAD task setting (task name + difficulty knobs) and the arrays a generator returns.

`TaskSetting` is a frozen value, so it can key caches and archives; `Instance` is one (inputs, targets)
pair of int64 arrays with `IGNORE` (-100) in targets that are not scored / not trained on.

Non-goals: the settings grid itself (search.protocol) and the generators (one module per task).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE = -100
Instance = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSetting:
    """A MAD setting. `train`/`test` are example counts; the other knobs apply to the tasks that use them:
    noise_vocab/frac_noise (noisy recall), copy (selective copying: tokens to copy), motif (fuzzy recall:
    the longest key/value motif)."""

    task: str
    vocab: int
    seq: int
    train: int = 12_800
    test: int = 1_280
    noise_vocab: int = 0
    frac_noise: float = 0.0
    copy: int = 0
    motif: int = 1

    @property
    def label(self) -> str:
        """A short stable name, e.g. `in_context_recall/v64-s256-n12800`."""
        knobs = [f"v{self.vocab}", f"s{self.seq}", f"n{self.train}"]
        if self.frac_noise:
            knobs.append(f"noise{self.frac_noise:g}")
        if self.copy:
            knobs.append(f"copy{self.copy}")
        return f"{self.task}/{'-'.join(knobs)}"

    def replace(self, **changes: object) -> TaskSetting:
        fields = {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]
        fields.update(changes)
        return TaskSetting(**fields)  # type: ignore[arg-type]


def pack(tokens: list[int] | np.ndarray, targets: list[int] | np.ndarray) -> Instance:
    return np.asarray(tokens, dtype=np.int64), np.asarray(targets, dtype=np.int64)
