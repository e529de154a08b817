"""MAD's test score: accuracy macro-averaged over classes, as torchmetrics' `MulticlassAccuracy` default.

For each class c: recall tp_c / (tp_c + fn_c); the score is the mean over the classes that occur as a
target or as a prediction (a class that is only ever predicted scores 0; a class absent from both is
left out, like torchmetrics' zero weights where tp + fp + fn == 0). Targets equal to IGNORE are skipped.
`Counts` accumulates over batches so that the score covers the whole test set at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from livc.search.mad.setting import IGNORE


@dataclass
class Counts:
    classes: int
    tp: np.ndarray = field(init=False)
    support: np.ndarray = field(init=False)
    predicted: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.tp, self.support, self.predicted = (np.zeros(self.classes, dtype=np.int64) for _ in range(3))

    def update(self, preds: np.ndarray, targets: np.ndarray) -> None:
        keep = targets != IGNORE
        p, t = preds[keep].astype(np.int64), targets[keep].astype(np.int64)
        self.tp += np.bincount(t[p == t], minlength=self.classes)[: self.classes]
        self.support += np.bincount(t, minlength=self.classes)[: self.classes]
        self.predicted += np.bincount(p, minlength=self.classes)[: self.classes]

    def macro_accuracy(self) -> float:
        active = (self.support + self.predicted) > 0
        if not active.any():
            return float("nan")
        recall = self.tp / np.maximum(self.support, 1)
        return float(recall[active].mean())

    def token_accuracy(self) -> float:
        total = int(self.support.sum())
        return float(self.tp.sum() / total) if total else float("nan")


def macro_accuracy(preds: np.ndarray, targets: np.ndarray, classes: int) -> float:
    counts = Counts(classes)
    counts.update(preds, targets)
    return counts.macro_accuracy()
