"""Train and score a livc-generated PyTorch module (wrapped by a search.mad.readout) on token data.

    spec = TrainSpec(steps=1000, batch=128, lr=1e-3)
    result = train(model, epoch_batches(x, y, 128, seed, device), spec, deadline=time.monotonic() + 600)
    macro, token = score(model, test_x, test_y, classes=vocab, batch=256, device=device)

AdamW (decay on matrices only: weights with >= 2 dims; norms, biases and other vectors undecayed), linear
warm-up then cosine decay to `min_lr`, gradient clipping at `clip`, cross-entropy over every target that
is not IGNORE (-100) plus the module's aux_loss (MoE routers). Seeding is the caller's
(`torch.manual_seed` before building the model; `epoch_batches` takes its own seed): on CPU two runs with
the same seed and thread count give the same losses.
Failures are raised as `Diverged` (a non-finite loss, or one above `spec.diverge_above`) and `OutOfTime`
(the monotonic `deadline` passed; checked between steps); search.evaluate turns them into failure strings.

Non-goals: mixed precision, gradient accumulation, distributed training.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from livc.search.mad.metrics import Counts
from livc.search.mad.setting import IGNORE

Batches = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


class Diverged(Exception):
    """The loss became non-finite or exploded."""


class OutOfTime(Exception):
    """The deadline passed before training finished."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainSpec:
    steps: int
    batch: int
    lr: float
    wd: float = 0.0
    min_lr: float = 1e-6
    warmup: int = 0
    clip: float = 1.0
    diverge_above: float = math.inf
    curve_points: int = 10
    check_every: int = 10  # steps between loss read-backs (each one synchronises a GPU)


@dataclass(frozen=True, slots=True)
class TrainResult:
    steps: int
    curve: tuple[tuple[int, float], ...]  # (step, mean loss since the previous point)
    final_loss: float
    wall_s: float


def lr_at(step: int, spec: TrainSpec) -> float:
    if step < spec.warmup:
        return spec.lr * (step + 1) / spec.warmup
    span = max(spec.steps - spec.warmup, 1)
    progress = min((step - spec.warmup) / span, 1.0)
    return spec.min_lr + 0.5 * (spec.lr - spec.min_lr) * (1 + math.cos(math.pi * progress))


def optimizer(model: nn.Module, lr: float, wd: float) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)


def loss_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits, aux = model(x)
    ce = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), ignore_index=IGNORE)
    return ce + aux


def train(model: nn.Module, batches: Batches, spec: TrainSpec, *, deadline: float | None = None) -> TrainResult:
    start = time.monotonic()
    opt = optimizer(model, spec.lr, spec.wd)
    model.train()
    pending: list[torch.Tensor] = []
    history: list[float] = []
    for step in range(spec.steps):
        _check_time(deadline, step, spec.steps)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, spec)
        loss = loss_of(model, *batches(step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), spec.clip)
        opt.step()
        pending.append(loss.detach())
        if len(pending) == spec.check_every or step == spec.steps - 1:
            history += _read_back(pending, step, spec.diverge_above)
            pending = []
    return TrainResult(spec.steps, _curve(history, spec.curve_points), _tail_mean(history), time.monotonic() - start)


def _check_time(deadline: float | None, step: int, steps: int) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise OutOfTime(f"time limit reached at step {step} of {steps}")


def _read_back(pending: list[torch.Tensor], step: int, limit: float) -> list[float]:
    values = torch.stack(pending).float().cpu().tolist()
    for offset, value in enumerate(values):
        at = step - len(values) + 1 + offset
        if not math.isfinite(value):
            raise Diverged(f"loss {value} at step {at}")
        if value > limit:
            raise Diverged(f"loss {value:.4g} above {limit:.4g} at step {at}")
    return values


def _curve(history: list[float], points: int) -> tuple[tuple[int, float], ...]:
    if not history:
        return ()
    edges = np.unique(np.linspace(0, len(history), min(points, len(history)) + 1).astype(int))
    return tuple((int(hi), float(np.mean(history[lo:hi]))) for lo, hi in zip(edges[:-1], edges[1:], strict=True))


def _tail_mean(history: list[float]) -> float:
    tail = history[-max(len(history) // 10, 1) :]
    return float(np.mean(tail)) if tail else float("nan")


def epoch_batches(x: np.ndarray, y: np.ndarray, batch: int, seed: int, device: torch.device | str) -> Batches:
    """Batches in a fresh random order each epoch (the last partial batch of an epoch is dropped, unless
    the set is smaller than a batch); the arrays move to `device` once. Steps must be asked in order."""
    xs = torch.tensor(np.asarray(x), device=device)
    ys = torch.tensor(np.asarray(y), device=device)
    n, size = len(xs), min(batch, len(xs))
    per_epoch = n // size
    generator = torch.Generator().manual_seed(seed)
    current: dict[int, torch.Tensor] = {}

    def get(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = divmod(step, per_epoch)
        while epoch not in current:
            done = max(current, default=-1)
            current.clear()
            current[done + 1] = torch.randperm(n, generator=generator).to(device)
        rows = current[epoch][index * size : (index + 1) * size]
        return xs[rows], ys[rows]

    return get


@torch.no_grad()
def score(
    model: nn.Module, x: np.ndarray, y: np.ndarray, *, classes: int, batch: int, device: torch.device | str
) -> tuple[float, float]:
    """(macro accuracy, token accuracy) of the argmax predictions over the non-IGNORE targets."""
    model.eval()
    counts = Counts(classes)
    for lo in range(0, len(x), batch):
        logits, _ = model(torch.tensor(np.asarray(x[lo : lo + batch]), device=device))
        counts.update(logits.argmax(-1).cpu().numpy(), np.asarray(y[lo : lo + batch]))
    model.train()
    return counts.macro_accuracy(), counts.token_accuracy()
