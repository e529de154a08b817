"""`--resume` after `kill -9`: nothing finished is lost or repeated, and the front equals an uninterrupted run's.

A search runs in a subprocess (its own session, two spawned worker processes, the FAKE
`livc.search.testing.sleepy_static_quality` evaluator: quality from static costs after a 0.15 s sleep),
is killed with SIGKILL (the whole process group, workers included) at several moments, and resumed
each time; a last resume finishes it. Every evaluation that was finished when a kill landed must be in
the final archive unchanged (same finish time, same attempt count: not re-run), and the archive, the
per-generation populations and the front must equal those of an uninterrupted in-process run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from livc.search.api import search
from livc.search.archive import read_archive
from livc.search.errors import SearchError
from livc.search.testing import static_quality

SPACE = """
[search]
population = 6
generations = 3
seed = 11
workers = 2
objectives = ["quality", "cache@1K"]
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
"""
RUN = (
    "import sys; from livc.search.api import search; from livc.search.testing import static_quality as e; "
    "search(sys.argv[1], sys.argv[2], resume=sys.argv[3] == '1', evaluator=e, report=False)"
)
# kill once this many more evaluations have finished, plus a little: lands mid-generation, mid-commit, ...
KILLS = ((5, 0.0), (7, 0.12), (6, 0.31))


def _start(space: Path, out: Path, resume: bool) -> subprocess.Popen:
    args = [sys.executable, "-c", RUN, str(space), str(out), "1" if resume else "0"]
    return subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group this test started: the driver and its workers
    proc.wait()


def _wait_for(proc: subprocess.Popen, out: Path, n: int, limit_s: float = 120) -> None:
    """Until `n` evaluations are finished in the archive (or the run ended)."""
    end = time.monotonic() + limit_s
    while proc.poll() is None and len(_snapshot(out)) < n and time.monotonic() < end:
        time.sleep(0.05)


def _snapshot(out: Path) -> dict[str, tuple]:
    try:
        archive = read_archive(out)
    except SearchError:  # not created yet
        return {}
    try:
        return {r.key: (r.status, r.finished, r.attempts, r.metrics) for r in archive.records() if r.finished}
    finally:
        archive.close()


def _final(out: Path) -> tuple[dict, list]:
    archive = read_archive(out)
    try:
        rows = {r.key: (r.status, r.metrics, r.costs, r.origin, r.generation) for r in archive.records()}
        return rows, [g.keys for g in archive.generations()]
    finally:
        archive.close()


def test_kill_9_and_resume_matches_an_uninterrupted_run(tmp_path):
    space = tmp_path / "space.toml"
    space.write_text(SPACE, encoding="utf-8")
    reference = search(
        space, tmp_path / "ref", evaluator=static_quality, workers=0, report=False
    )  # same results, no sleep

    out = tmp_path / "killed"
    finished: dict[str, tuple] = {}
    kills = 0
    for i, (more, extra) in enumerate(KILLS):
        proc = _start(space, out, resume=i > 0)
        _wait_for(proc, out, len(finished) + more)
        time.sleep(extra)
        alive = proc.poll() is None
        _kill(proc)
        kills += alive
        now = _snapshot(out)
        assert all(now[k] == v for k, v in finished.items()), "a finished evaluation changed after a kill"
        finished = now
    proc = _start(space, out, resume=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()

    assert kills >= 3, "the kills should land mid-run"
    assert finished, "some evaluations should have finished before the kills"
    after = _snapshot(out)
    lost_or_repeated = {k: (v, after.get(k)) for k, v in finished.items() if after.get(k) != v}
    assert not lost_or_repeated
    rows, gens = _final(out)
    ref_rows, ref_gens = _final(tmp_path / "ref")
    assert rows == ref_rows
    assert gens == ref_gens
    archive = read_archive(out)
    try:
        from livc.search.front import front

        killed_front = front(archive.records("search"), reference.config.objectives, reference.config.budgets)
    finally:
        archive.close()
    assert [r.key for r in killed_front] == [r.key for r in reference.front] and reference.front
