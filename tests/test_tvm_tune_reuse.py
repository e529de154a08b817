"""Tuning-database reuse across sibling models (backends/tvm/tune.py `partition`, TuneReport.reused).

A tiny Transformer++ is tuned first (1 trial per task); a tiny Hyena Edge of the same width then shares its
GQA projections, SwiGLU GEMVs, norms and head with it, so tuning it into the same database must tune only its
own kernels (the Hyena-Y convolutions) and report the shared ones as reused. Only a few task kinds are tunable here
(fixture `_few_tasks`) to keep it short on 2 busy cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest

tvm = pytest.importorskip("tvm")
pytest.importorskip("xgboost")

from tvm_util import ir_model  # noqa: E402

from livc.backends.tvm import tune  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
WIDTH = {"vocab": 64, "d": 64, "heads": 4, "kv_heads": 2, "ffn": 128}
TPP = dict(WIDTH, n_layers=1)
HYENA = dict(WIDTH, stripes=1)
TUNED = ("rms_norm", "fused_livc_gemv_f32_add", "causal_conv")  # task names tuned here (time: ~2 s a task)


@pytest.fixture(autouse=True)
def _few_tasks(monkeypatch):
    """Only a few task kinds are tunable here (2 Transformer++ tasks, 4 Hyena Edge tasks, 2 shared)."""
    why_not = tune._why_not  # noqa: SLF001
    monkeypatch.setattr(tune, "_why_not", lambda t: why_not(t) or (None if t.task_name.startswith(TUNED) else "test"))


def _model(name: str, overrides: dict) -> object:
    return ir_model((EXAMPLES / f"{name}.liv").read_text(), **overrides)


def _tasks(model: object, options: tune.TuneOptions) -> list:
    ms = tune._ms()  # noqa: SLF001 - the intrinsics stub
    mod, target = tune.decode_module(model, options)
    return [t for t in ms.relax_integration.extract_tasks(mod, target) if tune._why_not(t) is None]  # noqa: SLF001


def test_sibling_model_reuses_the_shared_kernels(tmp_path):
    import tvm_ffi

    opts = tune.TuneOptions(db_dir=tmp_path, per_task=1, max_len=32, workers=1)
    tpp, hyena = _model("transformer_pp", TPP), _model("hyena_edge", HYENA)
    first = tune.tune(tpp, opts, lambda _: None)
    assert first.tasks and not first.reused  # a fresh database: everything tuned

    tpp_mods = [t.dispatched[0] for t in _tasks(tpp, opts)]
    hyena_tasks = _tasks(hyena, opts)
    shared = {t.task_name for t in hyena_tasks if any(tvm_ffi.structural_equal(t.dispatched[0], m) for m in tpp_mods)}
    assert shared and len(shared) < len(hyena_tasks)  # the siblings share some kernels, not all

    lines: list[str] = []
    second = tune.tune(hyena, opts, lines.append)
    assert set(second.reused) == shared
    assert set(second.tasks) == {t.task_name for t in hyena_tasks} - shared
    assert second.records > first.records  # the Hyena-only kernels were tuned and recorded
    assert any(f"{len(shared)} reused" in line for line in lines if line.startswith("tune: done"))

    again = tune.tune(hyena, opts, lambda _: None)  # everything is in the database now
    assert not again.tasks and len(again.reused) == len(hyena_tasks) and again.records == second.records

    ms, database = tune._ms(), tune._database(tune._ms(), tmp_path)  # noqa: SLF001
    target, need = hyena_tasks[0].target, opts.per_task + 1
    todo, reused = tune.partition(ms, hyena_tasks, database, target, need, tmp_path)
    assert not reused and len(todo) == len(hyena_tasks)  # asked for more records than there are: tuned again
    tune._note(tmp_path, target, hyena_tasks, need)  # noqa: SLF001 - as if their design spaces were exhausted
    todo, reused = tune.partition(ms, hyena_tasks, database, target, need, tmp_path)
    assert not todo and len(reused) == len(hyena_tasks)  # the ledger says they were given `need` trials
    assert not tune.partition(ms, hyena_tasks, database, target, need)[1]  # without the ledger: records only
    assert tune.records_needed(tune.TuneOptions(db_dir=tmp_path, trials=6, per_iter=3)) == 3
