"""Evaluation protocols: which MAD settings a candidate is trained on, and how.

    full()   MAD as published: 66 settings (each task's baseline, then each difficulty knob varied
             alone), 200 epochs over the training set at batch 128, AdamW with cosine decay to 1e-6,
             swept over lr {1e-4, 5e-4, 1e-3} x wd {0, 0.1}, best of the 6 runs per setting:
             396 runs per candidate (GPU only; hours).
    light()  one setting per task just below MAD's ceiling (SEARCH-NOTES [D]), `steps` optimizer steps
             (default 1000) at one lr / wd: the search's proxy.
    tiny()   small vocab / short sequences / a few hundred steps: tests and CPU smoke runs.

Scoring (search.evaluate): a setting's score is the best macro accuracy over the lr x wd sweep, a task's
score the mean over its settings, `quality` the mean over tasks. `width` (when set) is passed to the
candidate as its `d` parameter; the vocabulary always comes from the setting (`vocab`).

Non-goals: reading protocols from TOML (search.config builds them through these constructors).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from livc.search.mad.setting import TaskSetting
from livc.search.mad.tasks import TASKS, problems


@dataclass(frozen=True, slots=True, kw_only=True)
class Protocol:
    name: str
    settings: tuple[TaskSetting, ...]
    steps: int | None = 1000  # optimizer steps per run; None = `epochs` passes over the training set
    epochs: int = 200
    batch: int = 128
    lrs: tuple[float, ...] = (1e-3,)
    wds: tuple[float, ...] = (0.0,)
    min_lr: float = 1e-6
    warmup: int = 0
    clip: float = 1.0
    width: int | None = None
    data_seed: int = 12345
    eval_batch: int = 256
    diverge_ratio: float = 4.0  # loss above this x max(ln vocab, first loss) counts as divergence

    def __post_init__(self) -> None:
        found = [p for s in self.settings for p in problems(s)]
        if not self.settings:
            found.append("a protocol needs at least one setting")
        if not self.lrs or not self.wds or min(self.lrs) <= 0 or min(self.wds) < 0:
            found.append("lrs must be positive and wds non-negative (neither empty)")
        if self.batch < 1 or (self.steps is not None and self.steps < 1) or self.epochs < 1:
            found.append("batch, steps and epochs must be >= 1")
        if found:
            raise ValueError(f"bad protocol {self.name!r}: {'; '.join(found)}")

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.task for s in self.settings))

    @property
    def lr(self) -> float:
        return self.lrs[0]

    @property
    def wd(self) -> float:
        return self.wds[0]

    @property
    def runs(self) -> int:
        return len(self.settings) * len(self.lrs) * len(self.wds)

    def steps_for(self, setting: TaskSetting) -> int:
        if self.steps is not None:
            return self.steps
        return self.epochs * -(-setting.train // self.batch)

    def replace(self, **changes: object) -> Protocol:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def only(self, tasks: tuple[str, ...]) -> Protocol:
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown MAD task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")
        return self.replace(settings=tuple(s for s in self.settings if s.task in tasks))


BASELINES: dict[str, TaskSetting] = {
    "in_context_recall": TaskSetting(task="in_context_recall", vocab=16, seq=128),
    "fuzzy_recall": TaskSetting(task="fuzzy_recall", vocab=16, seq=128, motif=3),
    "noisy_recall": TaskSetting(task="noisy_recall", vocab=32, seq=128, noise_vocab=16, frac_noise=0.2),
    "selective_copying": TaskSetting(task="selective_copying", vocab=16, seq=256, copy=16),
    "compression": TaskSetting(task="compression", vocab=16, seq=32),
    "memorization": TaskSetting(task="memorization", vocab=256, seq=32, train=256),
}
_TRAIN = (6400, 3200, 1600, 800)
_RECALL = {"vocab": (32, 64, 128), "seq": (256, 512, 1024), "train": _TRAIN}
CHANGES: dict[str, dict[str, tuple]] = {
    "in_context_recall": _RECALL,
    "fuzzy_recall": _RECALL,
    "noisy_recall": {**_RECALL, "vocab": (48, 80, 144), "frac_noise": (0.4, 0.6, 0.8)},
    "selective_copying": {"vocab": (32, 64, 128), "seq": (512, 1024), "train": _TRAIN, "copy": (32, 64, 96)},
    "compression": {"vocab": (32, 64, 128), "seq": (64, 128, 256), "train": _TRAIN},
    "memorization": {"vocab": (512, 1024, 2048, 4096, 8192)},
}
LIGHT: dict[str, dict[str, object]] = {
    "in_context_recall": {"vocab": 64, "seq": 256},
    "fuzzy_recall": {"vocab": 64, "seq": 256},
    "noisy_recall": {"seq": 256, "frac_noise": 0.4},
    "selective_copying": {"seq": 512, "copy": 32},
    "compression": {"seq": 64},
    "memorization": {"vocab": 1024},
}
TINY: dict[str, dict[str, object]] = {
    "in_context_recall": {"vocab": 16, "seq": 32, "train": 2048, "test": 256},
    "fuzzy_recall": {"vocab": 16, "seq": 48, "train": 2048, "test": 256},
    "noisy_recall": {"vocab": 24, "noise_vocab": 8, "seq": 32, "train": 2048, "test": 256},
    "selective_copying": {"vocab": 8, "seq": 32, "copy": 4, "train": 2048, "test": 256},
    "compression": {"vocab": 8, "seq": 8, "train": 2048, "test": 256},
    "memorization": {"vocab": 64, "seq": 16, "train": 256, "test": 256},
}


def grid(task: str) -> tuple[TaskSetting, ...]:
    """MAD's settings for one task: the baseline, then each knob's values with the others at baseline."""
    base = BASELINES[task]
    varied = [base.replace(**{knob: v}) for knob, values in CHANGES[task].items() for v in values]
    return (base, *varied)


def full(*, width: int | None = 128, tasks: tuple[str, ...] = TASKS) -> Protocol:
    settings = tuple(s for t in tasks for s in grid(t))
    return Protocol(
        name="full", settings=settings, steps=None, epochs=200, lrs=(1e-4, 5e-4, 1e-3), wds=(0.0, 0.1), width=width
    )


def light(
    *,
    steps: int = 1000,
    lr: float = 1e-3,
    wd: float = 0.0,
    batch: int = 128,
    width: int | None = None,
    tasks: tuple[str, ...] = TASKS,
) -> Protocol:
    settings = tuple(BASELINES[t].replace(**LIGHT[t]) for t in tasks)
    return Protocol(name="light", settings=settings, steps=steps, batch=batch, lrs=(lr,), wds=(wd,), width=width)


def tiny(
    *,
    steps: int = 800,
    lr: float = 3e-3,
    wd: float = 0.0,
    batch: int = 32,
    width: int | None = None,
    tasks: tuple[str, ...] = TASKS,
) -> Protocol:
    settings = tuple(BASELINES[t].replace(**TINY[t]) for t in tasks)
    return Protocol(
        name="tiny", settings=settings, steps=steps, batch=batch, lrs=(lr,), wds=(wd,), width=width, eval_batch=128
    )


CONSTRUCTORS = {"full": full, "light": light, "tiny": tiny}
