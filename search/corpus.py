"""Byte-level next-token loss of a candidate on a local text corpus (a language-modelling check beside MAD).

    spec = CorpusSpec(path="corpus.txt", steps=500, seq=256)
    ev = corpus_loss(liv_text, spec, seed=0, device="cpu", time_limit_s=600)
    ev.metrics  {"val_loss": 1.62 /*nats per byte*/, "bpb": 2.34 /*bits per byte*/, "quality": -2.34}

The file is read as raw bytes (vocab 256, passed as `-D vocab=256`; `d` from `width` when set); the last
`val_fraction` of it is the validation part, scored on evenly spaced windows (deterministic), the rest is
sampled as random windows of `seq + 1` bytes. Training as search.train (AdamW, cosine, clip). Failures are
`Evaluation.failure` strings exactly as in search.evaluate.

Getting a corpus (no downloads needed): any UTF-8 text of a few MB works, e.g. this repository's docs and
sources, `cat docs/*.md stdlib/*.liv $(git ls-files '*.py') > /tmp/corpus.txt`, or a local copy of an
open text collection (enwik8, TinyStories). An unreadable or too small file raises SearchError E0801.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from livc.search.errors import SearchError
from livc.search.evaluate import CandidateFailed, Evaluation, build, guarded
from livc.search.mad.readout import LanguageModel
from livc.search.train import Batches, TrainSpec, loss_of, train

VOCAB = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class CorpusSpec:
    path: str
    seq: int = 256
    batch: int = 32
    steps: int = 500
    lr: float = 1e-3
    wd: float = 0.1
    width: int | None = None
    val_fraction: float = 0.1
    val_windows: int = 64
    diverge_ratio: float = 4.0


def load_bytes(path: str | Path, seq: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train bytes, validation bytes) as int64 arrays; SearchError E0801 if unreadable or too small."""
    try:
        data = np.frombuffer(Path(path).read_bytes(), dtype=np.uint8).astype(np.int64)
    except OSError as err:
        raise SearchError("E0801", f"cannot read the corpus {path}: {err.strerror or err}") from None
    cut = int(len(data) * (1 - val_fraction))
    if cut <= seq + 1 or len(data) - cut <= seq + 1:
        need = int((seq + 2) / min(val_fraction, 1 - val_fraction)) + 1
        raise SearchError("E0801", f"the corpus {path} has {len(data)} bytes; seq {seq} needs at least {need}")
    return data[:cut], data[cut:]


def random_windows(data: np.ndarray, seq: int, batch: int, seed: int, device: torch.device | str) -> Batches:
    tokens = torch.tensor(data, device=device)
    generator = torch.Generator().manual_seed(seed)
    span = torch.arange(seq + 1, device=device)

    def get(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        del step
        starts = torch.randint(0, len(data) - seq - 1, (batch, 1), generator=generator).to(device)
        rows = tokens[starts + span]
        return rows[:, :-1], rows[:, 1:]

    return get


@torch.no_grad()
def validation_loss(model: torch.nn.Module, data: np.ndarray, seq: int, windows: int, device: torch.device) -> float:
    starts = np.unique(np.linspace(0, len(data) - seq - 1, windows).astype(np.int64))
    rows = torch.tensor(np.stack([data[s : s + seq + 1] for s in starts]), device=device)
    model.eval()
    total = sum(float(loss_of(model, r[:, :-1], r[:, 1:])) * len(r) for r in rows.split(16))
    model.train()
    return total / len(rows)


def corpus_loss(
    liv_text: str, spec: CorpusSpec, seed: int, device: str = "cpu", time_limit_s: float | None = None
) -> Evaluation:
    start = time.monotonic()
    train_bytes, val_bytes = load_bytes(spec.path, spec.seq, spec.val_fraction)
    where = torch.device(device)
    deadline = None if time_limit_s is None else start + time_limit_s
    try:
        metrics, curve = guarded(
            where, f"corpus {spec.path}", lambda: _run(liv_text, spec, seed, where, deadline, train_bytes, val_bytes)
        )
        failure = None
    except CandidateFailed as failed:
        metrics, curve, failure = {}, {}, str(failed)
    return Evaluation(metrics, curve, failure, time.monotonic() - start)


def _run(
    text: str, spec: CorpusSpec, seed: int, device: torch.device, deadline: float | None, train_b, val_b
) -> tuple[dict[str, float], dict[str, object]]:
    built = build(text, VOCAB, spec.width)
    torch.manual_seed(seed)
    model = LanguageModel(built.model_class(dtype=torch.float32).to(device))
    limit = spec.diverge_ratio * math.log(VOCAB)
    train_spec = TrainSpec(steps=spec.steps, batch=spec.batch, lr=spec.lr, wd=spec.wd, diverge_above=limit)
    result = train(model, random_windows(train_b, spec.seq, spec.batch, seed, device), train_spec, deadline=deadline)
    val = validation_loss(model, val_b, spec.seq, spec.val_windows, device)
    bpb = val / math.log(2)
    curve = {"curve": [list(p) for p in result.curve], "final_loss": result.final_loss, "train_s": result.wall_s}
    return {"val_loss": val, "bpb": bpb, "quality": -bpb}, curve
