"""The search engine (search/{config,archive,engine,workers,report,api}.py and `livc search`).

Most tests inject TEST_EVALUATOR (livc.search.testing.static_quality): a FAKE evaluator whose "quality" is
a deterministic function of the candidate's static costs (more parameters and more cache score higher, so
the front is a real trade-off). It measures nothing; it exists so that the engine logic (memo, budgets,
failures, reproducibility, report) is tested in seconds. One test runs the real S2 evaluator on the tiny
protocol end to end, and one runs a small search on a local Ray cluster.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from livc.cli import main
from livc.search.api import search
from livc.search.archive import open_archive, read_archive
from livc.search.config import load_config, parse_config
from livc.search.errors import SearchError
from livc.search.testing import failing_static_quality, static_quality
from livc.search.workers import InlinePool, LocalPool, Task

SPACE = """
[search]
population = 6
generations = 3
seed = 3
workers = 0
objectives = ["quality", "cache@1K", "params"]
budgets = ["params<=30K"]
random_baseline = true

[space]
width = 32
slots = 4
per_layer = 2
vocab = 16
classes = ["SA-1", "GConv-1", "GMemless", "Rec-2"]

[protocol]
name = "tiny"
steps = 10
tasks = ["in_context_recall"]
"""
SEED_LIV = """from std.attention import GQA
from std.conv import GatedShortConv
from std.embedding import Embedding, LMHead
from std.mlp import SwiGLU
from std.norms import RMSNorm

model Seed(vocab: int = 16) {
    let d = 32
    embedding: Embedding(vocab, d)
    norm: RMSNorm(d)
    layers: [
        GatedShortConv(d, kernel = 3) + SwiGLU(d, hidden = 64),
        GQA(d, heads = 8, kv_heads = 2) + SwiGLU(d, hidden = 64),
    ]
    final_norm: RMSNorm(d)
    head: LMHead(vocab, d, tied = true)
}
"""
TEST_EVALUATOR = static_quality  # FAKE: quality from static costs (search/testing.py)
FAILING_EVALUATOR = failing_static_quality


class Counting:
    """Wraps an evaluator and records every call (in-process pools only)."""

    def __init__(self, inner=TEST_EVALUATOR) -> None:
        self.inner, self.calls = inner, []

    def __call__(self, liv_text, protocol, seed, device="cpu", time_limit_s=None):
        self.calls.append(liv_text)
        return self.inner(liv_text, protocol, seed, device=device, time_limit_s=time_limit_s)


def write_space(tmp_path: Path, text: str = SPACE, seeds: bool = False) -> Path:
    path = tmp_path / "space.toml"
    if seeds:
        (tmp_path / "seed.liv").write_text(SEED_LIV, encoding="utf-8")
        text = text.replace("random_baseline = true", 'random_baseline = true\nseeds = ["seed.liv"]')
    path.write_text(text, encoding="utf-8")
    return path


def records(directory: Path):
    archive = read_archive(directory)
    try:
        return archive.records(), list(archive.generations())
    finally:
        archive.close()


# ---- config -------------------------------------------------------------------------------------


def test_config_reads_every_section(tmp_path):
    cfg = load_config(write_space(tmp_path, seeds=True))
    assert (cfg.population, cfg.generations, cfg.seed, cfg.workers) == (6, 3, 3, 0)
    assert [o.label for o in cfg.objectives] == ["quality", "cache@1024", "params"]
    assert cfg.budgets[0].metric == "params" and cfg.budgets[0].limit == 30_000
    assert [c.name for c in cfg.space.classes] == ["SA-1", "GConv-1", "GMemless", "Rec-2"]
    assert cfg.protocol.name == "tiny" and cfg.protocol.steps == 10 and cfg.protocol.tasks == ("in_context_recall",)
    assert cfg.seeds[0].text == SEED_LIV


@pytest.mark.parametrize(
    "edit,line,needle",
    [
        (("steps = 10", "steps = = 10"), 20, "invalid TOML"),
        (("seed = 3", "sead = 3"), 5, "unknown key 'sead' in [search]"),
        (("per_layer = 2", "per_layers = 2"), 14, "unknown key 'per_layers' in [space]"),
        (('"Rec-2"]', '"Rec-9"]'), 16, "unknown operator class 'Rec-9'"),
        (('"params"]', '"parms"]'), 7, "unknown objective 'parms'"),
        (('"params<=30K"', '"params<=lots"'), 8, "invalid budget"),
        (('name = "tiny"', 'name = "huge"'), 19, "unknown protocol 'huge'"),
        (("steps = 10", "stepz = 10"), 20, "unknown key 'stepz' in [protocol]"),
        (("population = 6", "population = 1"), 3, "population must be at least 2"),
        (("workers = 0", 'workers = "two"'), 6, "workers has the wrong type"),
    ],
)
def test_bad_space_files_are_located_diagnostics(tmp_path, edit, line, needle):
    path = write_space(tmp_path, SPACE.replace(*edit))
    with pytest.raises(SearchError) as info:
        load_config(path)
    err = info.value
    assert err.code == "E0801" and needle in err.message, str(err)
    assert err.where is not None and err.where.line == line, str(err)
    assert f"{path}:{line}:" in str(err)


def test_missing_seed_file_is_e0801(tmp_path):
    text = SPACE.replace("random_baseline = true", 'seeds = ["nope.liv"]')
    with pytest.raises(SearchError, match="cannot read seed architecture 'nope.liv'"):
        parse_config(text, "s.toml", tmp_path)


# ---- engine with the fake evaluator ---------------------------------------------------------------


def test_search_memoises_rejects_and_reports(tmp_path):
    counting = Counting()
    result = search(write_space(tmp_path, seeds=True), tmp_path / "run", evaluator=counting)
    rows, gens = records(tmp_path / "run")
    # the archive is the memo: no architecture is trained twice
    assert len(counting.calls) == len(set(counting.calls)) == sum(r.status == "done" for r in rows)
    # over-budget candidates are rejected with a reason and never trained
    rejected = [r for r in rows if r.status == "rejected"]
    assert rejected and all("params" in r.failure and r.costs["params"] > 30_000 for r in rejected)
    assert gens[-1].counters["rejected:params"] == sum(r.origin == "search" for r in rejected)
    assert not {r.liv for r in rejected} & set(counting.calls)
    assert all(r.costs["params"] <= 30_000 for r in rows if r.status == "done")
    # the seed architecture is in generation 1's population; one generation row per generation (+ setup)
    assert [g.gen for g in gens] == [0, 1, 2, 3] and len(gens[1].keys) == 6
    seed_key = next(r.key for r in rows if "kv_heads = 2" in r.liv and r.generation == 1)
    assert seed_key in gens[1].keys
    # the random baseline evaluated architectures of its own, and the front is non-dominated and feasible
    assert any(r.origin == "random" for r in rows)
    assert result.front and all(r.status == "done" for r in result.front)
    assert result.report is not None and "## Pareto front" in result.report.read_text()


def test_report_front_files_check_clean_and_plots_exist(tmp_path):
    from livc.compiler.check import check_path

    result = search(write_space(tmp_path), tmp_path / "run", evaluator=TEST_EVALUATOR)
    report = tmp_path / "run" / "report"
    files = sorted((report / "front").glob("*.liv"))
    assert len(files) == len(result.front)
    assert all(not check_path(f).diagnostics for f in files)
    for name in ("pareto_cache.png", "pareto_params.png", "hypervolume.png"):
        assert (report / name).stat().st_size > 1000
    text = result.report.read_text()
    assert "| 3 |" in text and "random search" in text and "DOES NOT CHECK" not in text


def _fake_latency(liv_text: str, device: str, seq: int) -> float:
    """FAKE latency: proportional to the text length (measures nothing)."""
    return len(liv_text) * seq * 1e-9


def test_latency_objective_is_measured_by_the_worker_and_plotted(tmp_path):
    text = SPACE.replace('"cache@1K", "params"', '"latency@64"')
    result = search(write_space(tmp_path, text), tmp_path / "run", evaluator=TEST_EVALUATOR, latency=_fake_latency)
    rows, _ = records(tmp_path / "run")
    done = [r for r in rows if r.status == "done"]
    assert done and all(r.metrics["latency_s"] == _fake_latency(r.liv, "cpu", 64) for r in done)
    assert (tmp_path / "run" / "report" / "pareto_latency.png").exists() and result.front


def test_same_seed_same_search_other_seed_other_search(tmp_path):
    space = write_space(tmp_path)
    a = search(space, tmp_path / "a", evaluator=TEST_EVALUATOR, report=False)
    b = search(space, tmp_path / "b", evaluator=TEST_EVALUATOR, report=False)
    ra, ga = records(tmp_path / "a")
    rb, gb = records(tmp_path / "b")
    assert [g.keys for g in ga] == [g.keys for g in gb]
    assert {r.key: r.metrics for r in ra} == {r.key: r.metrics for r in rb}
    assert [r.key for r in a.front] == [r.key for r in b.front]
    other = dataclasses.replace(load_config(space), seed=4)
    search(other, tmp_path / "c", evaluator=TEST_EVALUATOR, report=False)
    assert [g.keys for g in records(tmp_path / "c")[1]] != [g.keys for g in ga]


def test_failed_candidates_are_recorded_and_the_search_goes_on(tmp_path):
    result = search(write_space(tmp_path), tmp_path / "run", evaluator=FAILING_EVALUATOR, report=False)
    rows, gens = records(tmp_path / "run")
    failed = {r.failure.split(":")[0] for r in rows if r.status == "failed"}
    assert {"diverged", "crash"} <= failed, failed
    assert any("boom" in (r.failure or "") for r in rows)
    assert len(gens) == 4 and all("GQA(" not in r.liv and "GLA(" not in r.liv for r in result.front)


def test_extending_generations_reuses_the_archive(tmp_path):
    space = write_space(tmp_path)
    counting = Counting()
    cfg = dataclasses.replace(load_config(space), generations=2)
    search(cfg, tmp_path / "run", evaluator=counting, report=False)
    first = len(counting.calls)
    search(dataclasses.replace(cfg, generations=3), tmp_path / "run", evaluator=counting, resume=True, report=False)
    rows, gens = records(tmp_path / "run")
    assert len(gens) == 4 and len(counting.calls) == len(set(counting.calls)) > first


def test_archive_refuses_other_configs_and_resets_running_rows(tmp_path):
    archive = open_archive(tmp_path, "fp-1", resume=False)
    archive.add("k", (1, 2), "text", "search", {"params": 1}, 7, 1)
    archive.start("k")
    archive.close()
    with pytest.raises(SearchError, match="different search configuration"):
        open_archive(tmp_path, "fp-2", resume=True)
    with pytest.raises(SearchError, match="already holds a search"):
        open_archive(tmp_path, "fp-1", resume=False)
    archive = open_archive(tmp_path, "fp-1", resume=True)
    assert archive.get("k").status == "pending" and archive.get("k").attempts == 1
    archive.finish("k", {"quality": 0.5}, None, None, 1.0)
    with pytest.raises(SearchError, match="finished twice"):
        archive.finish("k", {"quality": 0.5}, None, None, 1.0)
    archive.close()
    db = sqlite3.connect(tmp_path / "archive.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_resume_of_a_missing_directory_is_e0802(tmp_path):
    with pytest.raises(SearchError, match="nothing to resume"):
        search(write_space(tmp_path), tmp_path / "none", resume=True, evaluator=TEST_EVALUATOR)


# ---- workers --------------------------------------------------------------------------------------


def _task(key: str) -> Task:
    return Task(key, SEED_LIV, None, 0)


def test_inline_pool_turns_evaluator_exceptions_into_failures():
    pool = InlinePool(FAILING_EVALUATOR, None)
    pool.submit(Task("a", "GLA(", None, 0))
    outcome = pool.next()
    assert outcome.failure.startswith("crash: RuntimeError: boom") and outcome.metrics is None


def test_local_pool_runs_spawned_workers():
    pool = LocalPool(2, TEST_EVALUATOR, None)
    try:
        for k in "ab":
            pool.submit(_task(k))
        outcomes = sorted((pool.next() for _ in range(2)), key=lambda o: o.key)
    finally:
        pool.close()
    assert [o.key for o in outcomes] == ["a", "b"] and all(o.failure is None for o in outcomes)
    assert all(0 < o.metrics["quality"] <= 1 for o in outcomes)


@pytest.mark.parametrize("deaths,ok", [(1, True), (5, False)])
def test_local_pool_retries_a_dead_worker_then_gives_up(tmp_path, deaths, ok):
    from livc.search.testing import dying_static_quality

    marker = tmp_path / "deaths"
    pool = LocalPool(1, dying_static_quality, None, retries=2)
    try:
        pool.submit(Task("a", SEED_LIV, str(marker), deaths))  # FAKE: dies `deaths` times (see testing.py)
        outcome = pool.next()
    finally:
        pool.close()
    assert (outcome.failure is None) is ok, outcome.failure
    assert ok or "worker process died 3 times" in outcome.failure
    assert len(marker.read_text().splitlines()) == (deaths if ok else 3)


# ---- CLI -------------------------------------------------------------------------------------------


def test_cli_bad_space_file_is_a_diagnostic_not_a_traceback(tmp_path, capsys):
    path = write_space(tmp_path, SPACE.replace("seed = 3", "sead = 3"))
    assert main(["search", str(path), "-o", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "error[E0801]: unknown key 'sead' in [search]" in err and f"{path}:5:1" in err
    assert "Traceback" not in err


def test_cli_needs_a_directory(tmp_path, capsys):
    assert main(["search", str(write_space(tmp_path))]) == 2
    assert "-o DIR" in capsys.readouterr().err
    assert main(["search", str(write_space(tmp_path)), "-o", "a", "--resume", "b"]) == 2


# ---- the real evaluator, end to end ------------------------------------------------------------------


def test_real_tiny_search_end_to_end(tmp_path, capsys):
    text = SPACE.replace("population = 6", "population = 4").replace("generations = 3", "generations = 1")
    text = text.replace("workers = 0", "workers = 2").replace("random_baseline = true", "random_baseline = false")
    path = write_space(tmp_path, text)
    assert main(["search", str(path), "-o", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    rows, _ = records(tmp_path / "run")
    done = [r for r in rows if r.status == "done"]
    assert done and all(0 <= r.metrics["quality"] <= 1 and "in_context_recall" in r.metrics for r in done)
    assert all(r.curve for r in done) and "report:" in out


# ---- Ray ---------------------------------------------------------------------------------------------


def test_ray_pool_runs_a_search_on_a_local_cluster(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # what `livc search --ray` sets (the CLI layer)
    text = SPACE.replace("population = 6", "population = 3").replace("generations = 3", "generations = 1")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = search(write_space(tmp_path, text), tmp_path / "run", evaluator=TEST_EVALUATOR, ray="auto")
    finally:
        ray.shutdown()
    rows, gens = records(tmp_path / "run")
    done = [r for r in rows if r.status == "done"]
    assert len(done) >= 2 and all(0 < r.metrics["quality"] <= 1 for r in done)
    local = search(write_space(tmp_path, text), tmp_path / "local", evaluator=TEST_EVALUATOR, report=False)
    assert [r.key for r in result.front] == [r.key for r in local.front]
