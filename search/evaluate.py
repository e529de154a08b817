"""Quality of one candidate architecture (.liv text) under a Protocol: MAD scores, never an exception.

    ev = evaluate(liv_text, light(), seed=0, device="cuda", time_limit_s=600)
    ev.metrics   {"in_context_recall": 0.93, ..., "quality": 0.71}   (higher is better)
    ev.failure   None, or "compile: ...", "diverged: ...", "timeout: ...", "oom: ...", "crash: ..."

Adapting a candidate to a task: the .liv model must declare an int parameter `vocab` (and `d` when the
protocol sets `width`); each setting compiles the text with `-D vocab=<setting vocab>` (and `-D d=<width>`)
through the ordinary override path (docs/language.md §9.9), so a candidate is checked exactly like
`livc check -D vocab=64 cand.liv`. A model without `vocab` fails as "compile: ... E0203 ...". Modules are
built in float32 whatever the file's `dtype:`. Compression reads the model through MAD's auto-encoder
readout (search.mad.readout), every other task through its LM logits.

Per run (setting x lr x wd): `torch.manual_seed(seed)`, build, train (search.train), score the test set
(search.mad.metrics). A setting scores the best of its runs; a run that diverges scores 0, and the
evaluation fails only when every run of a setting diverges (MAD drops NaN runs before its max). A time
limit, OOM, compile error or crash fails the whole evaluation at once; `metrics` then holds the tasks
finished so far and no "quality". The time limit is checked between training steps, so it can be passed
by one step (S3's workers may add a hard kill on top).

Non-goals: scheduling several candidates (search.workers), static costs (compiler.analysis.costs).
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import torch
from torch import nn

from livc.backends.pytorch.generate import generate
from livc.backends.pytorch.load import Built, compile_error
from livc.compiler.elaboration.overrides import from_python, provenance
from livc.compiler.pipeline import compile_source
from livc.dsl.diagnostics import CompileError
from livc.search.mad.readout import AutoEncoder, LanguageModel, hidden_width
from livc.search.mad.setting import TaskSetting
from livc.search.mad.tasks import TaskData, dataset
from livc.search.protocol import Protocol
from livc.search.train import Diverged, OutOfTime, TrainSpec, epoch_batches, score, train

FAILURE_KINDS = ("compile", "diverged", "timeout", "oom", "crash")
T = TypeVar("T")


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    curve: dict[str, object]
    failure: str | None
    wall_s: float

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def quality(self) -> float | None:
        return self.metrics.get("quality") if self.ok else None

    @property
    def failure_kind(self) -> str | None:
        return self.failure.split(":", 1)[0] if self.failure else None

    def to_dict(self) -> dict[str, object]:
        return {"metrics": self.metrics, "curve": self.curve, "failure": self.failure, "wall_s": self.wall_s}


class NotOneModel(ValueError):
    """Candidate text that compiles to zero or several models."""


class CandidateFailed(Exception):
    """Stops an evaluation; `str()` is the failure string (\"kind: detail\")."""


@dataclass
class _Run:
    protocol: Protocol
    text: str
    seed: int
    device: torch.device
    deadline: float | None
    built: dict[int, Built] = field(default_factory=dict)
    runs: list[dict[str, object]] = field(default_factory=list)
    settings: dict[str, float] = field(default_factory=dict)


def evaluate(
    liv_text: str, protocol: Protocol, seed: int, device: str = "cpu", time_limit_s: float | None = None
) -> Evaluation:
    start = time.monotonic()
    deadline = None if time_limit_s is None else start + time_limit_s
    run = _Run(protocol, liv_text, seed, torch.device(device), deadline)
    failure = None
    try:
        for setting in protocol.settings:
            run.settings[setting.label] = _setting(run, setting)
    except CandidateFailed as failed:
        failure = str(failed)
    metrics = _metrics(protocol, run.settings, complete=failure is None)
    curve = {"runs": run.runs, "settings": dict(run.settings)}
    return Evaluation(metrics, curve, failure, time.monotonic() - start)


def _metrics(protocol: Protocol, settings: dict[str, float], complete: bool) -> dict[str, float]:
    by_task: dict[str, list[float]] = {}
    for s in protocol.settings:
        if s.label in settings:
            by_task.setdefault(s.task, []).append(settings[s.label])
    done = {task: sum(v) / len(v) for task, v in by_task.items() if len(v) == _count(protocol, task)}
    if complete:
        done["quality"] = sum(done.values()) / len(done)
    return done


def _count(protocol: Protocol, task: str) -> int:
    return sum(1 for s in protocol.settings if s.task == task)


def _setting(run: _Run, setting: TaskSetting) -> float:
    data = guarded(run.device, f"data for {setting.label}", lambda: dataset(setting, run.protocol.data_seed))
    best, reasons = -1.0, []
    for lr in run.protocol.lrs:
        for wd in run.protocol.wds:
            result = guarded(run.device, setting.label, lambda lr=lr, wd=wd: _one(run, data, lr, wd))
            run.runs.append(result)
            if result["failure"]:
                reasons.append(f"{setting.label} lr={lr:g} wd={wd:g}: {result['failure']}")
            best = max(best, float(result["score"]))
    if len(reasons) == run.protocol.runs // len(run.protocol.settings):
        raise CandidateFailed("diverged: " + "; ".join(reasons))
    return best


def _one(run: _Run, data: TaskData, lr: float, wd: float) -> dict[str, object]:
    s, p = data.setting, run.protocol
    model = _model(run, data)
    steps = p.steps_for(s)
    limit = p.diverge_ratio * math.log(max(s.vocab, 2))
    spec = TrainSpec(
        steps=steps, batch=p.batch, lr=lr, wd=wd, min_lr=p.min_lr, warmup=p.warmup, clip=p.clip, diverge_above=limit
    )
    row: dict[str, object] = {"setting": s.label, "task": s.task, "lr": lr, "wd": wd, "steps": steps}
    batches = epoch_batches(data.train_x, data.train_y, p.batch, run.seed, run.device)
    try:
        result = train(model, batches, spec, deadline=run.deadline)
    except Diverged as diverged:
        return {**row, "score": 0.0, "failure": str(diverged)}
    macro, token = score(model, data.test_x, data.test_y, classes=s.vocab, batch=p.eval_batch, device=run.device)
    if math.isnan(macro):
        macro = 0.0
    curve = [list(point) for point in result.curve]
    return {
        **row,
        "score": macro,
        "token_accuracy": token,
        "final_loss": result.final_loss,
        "curve": curve,
        "train_s": result.wall_s,
        "failure": None,
    }


def _model(run: _Run, data: TaskData) -> nn.Module:
    s = data.setting
    built = run.built.get(s.vocab) or run.built.setdefault(s.vocab, build(run.text, s.vocab, run.protocol.width))
    torch.manual_seed(run.seed)
    backbone = built.model_class(dtype=torch.float32).to(run.device)
    if data.readout == "autoencoder":
        width = hidden_width(backbone, run.device)
        return AutoEncoder(backbone, width, s.vocab, s.seq).to(run.device)
    return LanguageModel(backbone)


def build(liv_text: str, vocab: int | None = None, width: int | None = None, name: str = "<candidate>") -> Built:
    """Compile .liv text with `-D vocab=...` / `-D d=...` (None: the file's default) and import its PyTorch
    module; raises CompileError (rendered diagnostics) or NotOneModel for a program that cannot be built."""
    values = {"vocab": vocab, "d": width}
    overrides = tuple(from_python(k, v) for k, v in values.items() if v is not None)
    result = compile_source(liv_text, name, stop_after="canonicalize", overrides=overrides)
    if not result.ok:
        raise compile_error(result.diagnostics)
    if len(result.models) != 1:
        raise NotOneModel(f"the candidate defines {len(result.models)} models; it must define exactly one")
    return Built.load(result.models[0], generate(result.models[0], *provenance(name, liv_text, overrides)))


def guarded(device: torch.device, what: str, thunk: Callable[[], T]) -> T:
    """thunk(), with a candidate's own failures turned into `CandidateFailed(failure string)`."""
    try:
        return thunk()
    except (CandidateFailed, KeyboardInterrupt):
        raise
    except OutOfTime as late:
        raise CandidateFailed(f"timeout: {what}: {late}") from None
    except (CompileError, NotOneModel) as err:
        raise CandidateFailed(f"compile: {_first_lines(str(err))}") from None
    except (MemoryError, torch.cuda.OutOfMemoryError) as err:
        _release(device)
        raise CandidateFailed(f"oom: {what}: {_short(err)}") from None
    except Exception as err:  # noqa: BLE001 - a candidate's crash is data, not an error of the search
        if "out of memory" in str(err) or "can't allocate memory" in str(err):
            _release(device)
            raise CandidateFailed(f"oom: {what}: {_short(err)}") from None
        where = traceback.extract_tb(err.__traceback__)[-1]
        raise CandidateFailed(
            f"crash: {what}: {type(err).__name__}: {_short(err)} ({where.name}:{where.lineno})"
        ) from None


def _release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _short(err: BaseException, limit: int = 300) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_lines(text: str, lines: int = 4, limit: int = 600) -> str:
    shown = " | ".join(line.strip() for line in text.splitlines()[:lines] if line.strip())
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
