"""Where candidates are trained: in the driver (workers=0), local worker processes, or Ray tasks.

A `Task` (key, .liv text, protocol, seed, device, time limit, latency length) goes in; an `Outcome`
(metrics, curve summary, failure reason, wall time) comes out. `run_task` never raises: an evaluator
exception becomes a failure, so one broken candidate never stops a search. Pools:

- `InlinePool` evaluates in the driver process when `next()` is called (tests, debugging).
- `LocalPool` is a `ProcessPoolExecutor` over `spawn` processes, one torch thread each by default;
  a dead worker process (OOM kill, segfault) breaks the pool: it is rebuilt and the tasks in flight are
  retried, up to `max_retries` times each, then recorded as failures.
- `RayPool` submits plain `@ray.remote` tasks (`num_cpus`, `num_gpus`, `max_retries`) and collects them
  with `ray.wait`; it joins the Ray instance the caller initialised (or `ray.init(address)`).
  Environment (e.g. `RAY_AUTH_MODE=disabled`) is the caller's business: set by the CLI layer.

The evaluator and latency functions must be picklable (module-level functions) for the process and
Ray pools. Non-goals: scheduling by cost, preemption, remote storage (results return to the driver).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from livc.search.errors import SearchError

Evaluator = Callable[..., Any]  # (liv_text, protocol, seed, device=..., time_limit_s=...) -> Evaluation
Latency = Callable[[str, str, int], float]  # (liv_text, device, seq) -> seconds


@dataclass(frozen=True)
class Task:
    key: str
    liv: str
    protocol: Any
    seed: int
    device: str = "cpu"
    time_limit_s: float | None = None
    latency_seq: int | None = None


@dataclass(frozen=True)
class Outcome:
    key: str
    metrics: dict[str, float] | None
    curve: dict[str, Any] | None
    failure: str | None
    wall_s: float


def default_evaluator() -> Evaluator:
    from livc.search.evaluate import evaluate

    return evaluate


def default_latency() -> Latency:
    from livc.search.latency import measure

    return measure


def run_task(task: Task, evaluator: Evaluator, latency: Latency | None) -> Outcome:
    """Evaluate one candidate (and measure its latency when asked); never raises."""
    start = time.monotonic()
    try:
        ev = evaluator(task.liv, task.protocol, task.seed, device=task.device, time_limit_s=task.time_limit_s)
        metrics = {k: float(v) for k, v in dict(ev.metrics).items()}
        failure = ev.failure
        if failure is None and task.latency_seq is not None and latency is not None:
            metrics["latency_s"] = float(latency(task.liv, task.device, task.latency_seq))
        return Outcome(task.key, metrics, _plain(ev.curve), failure, float(ev.wall_s or time.monotonic() - start))
    except Exception as exc:  # a candidate's crash is a result, not an error of the search
        where = traceback.extract_tb(exc.__traceback__)[-1:]
        at = f" at {where[0].filename}:{where[0].lineno}" if where else ""
        return Outcome(task.key, None, None, f"crash: {type(exc).__name__}: {exc}{at}", time.monotonic() - start)


def _plain(curve: Any) -> dict[str, Any] | None:
    return dict(curve) if curve else None


class Pool(Protocol):
    def submit(self, task: Task) -> None: ...
    def next(self) -> Outcome: ...
    def pending(self) -> int: ...
    def close(self) -> None: ...


class InlinePool:
    """Evaluate in the driver process, one task per `next()`."""

    def __init__(self, evaluator: Evaluator, latency: Latency | None) -> None:
        self._eval, self._latency, self._queue = evaluator, latency, list[Task]()

    def submit(self, task: Task) -> None:
        self._queue.append(task)

    def next(self) -> Outcome:
        return run_task(self._queue.pop(0), self._eval, self._latency)

    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        self._queue.clear()


def _init_worker(threads: int) -> None:
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


class LocalPool:
    """Spawned worker processes; a broken pool is rebuilt and its in-flight tasks retried."""

    def __init__(self, workers: int, evaluator: Evaluator, latency: Latency | None, threads: int = 1, retries: int = 2):
        self._n, self._eval, self._latency, self._threads, self._retries = workers, evaluator, latency, threads, retries
        self._futures: dict[cf.Future, Task] = {}
        self._attempts: dict[str, int] = {}
        self._ready: list[Outcome] = []
        self._pool: cf.ProcessPoolExecutor | None = None  # started at the first task (a resume may need none)

    def _start(self) -> cf.ProcessPoolExecutor:
        try:
            ctx = multiprocessing.get_context("spawn")
            return cf.ProcessPoolExecutor(self._n, mp_context=ctx, initializer=_init_worker, initargs=(self._threads,))
        except (OSError, ValueError) as exc:
            raise SearchError("E0803", f"cannot start {self._n} worker processes: {exc}") from exc

    def submit(self, task: Task) -> None:
        self._attempts[task.key] = self._attempts.get(task.key, 0) + 1
        self._pool = self._pool or self._start()
        self._futures[self._pool.submit(run_task, task, self._eval, self._latency)] = task

    def pending(self) -> int:
        return len(self._futures) + len(self._ready)

    def next(self) -> Outcome:
        while not self._ready:
            done, _ = cf.wait(self._futures, return_when=cf.FIRST_COMPLETED)
            self._collect(done)
        return self._ready.pop(0)

    def _collect(self, done: set[cf.Future]) -> None:
        broken = []
        for future in done:
            task = self._futures.pop(future)
            try:
                self._ready.append(future.result())
            except cf.process.BrokenProcessPool:
                broken.append(task)
        if broken:
            self._restart(broken)

    def _restart(self, broken: list[Task]) -> None:
        """A worker died: every task in flight is lost with the pool; rebuild it and resubmit them."""
        lost = broken + list(self._futures.values())
        self._futures.clear()
        self.close()
        for task in lost:
            if self._attempts[task.key] > self._retries:
                failure = f"worker process died {self._attempts[task.key]} times while evaluating this candidate"
                self._ready.append(Outcome(task.key, None, None, failure, 0.0))
            else:
                self.submit(task)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _ray_task(task: Task, evaluator: Evaluator, latency: Latency | None) -> Outcome:
    return run_task(task, evaluator, latency)


class RayPool:
    """Plain Ray tasks on the Ray instance the caller initialised (or `ray.init(address=...)`)."""

    def __init__(
        self,
        evaluator: Evaluator,
        latency: Latency | None,
        address: str | None = None,
        num_cpus: float = 1,
        num_gpus: float = 0,
        retries: int = 3,
    ) -> None:
        try:
            import ray
        except ImportError as exc:
            raise SearchError("E0803", "--ray needs the `ray` package (pip install 'livc[ray]')") from exc
        self._ray = ray
        if not ray.is_initialized():
            _ray_init(ray, address)
        self._remote = ray.remote(_ray_task).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=retries)
        self._eval, self._latency = ray.put(evaluator), ray.put(latency)
        self._refs: dict[Any, Task] = {}

    def submit(self, task: Task) -> None:
        self._refs[self._remote.remote(task, self._eval, self._latency)] = task

    def pending(self) -> int:
        return len(self._refs)

    def next(self) -> Outcome:
        ready, _ = self._ray.wait(list(self._refs), num_returns=1)
        task = self._refs.pop(ready[0])
        try:
            return self._ray.get(ready[0])
        except Exception as exc:  # the task's worker died more often than max_retries
            return Outcome(task.key, None, None, f"ray task failed: {type(exc).__name__}: {exc}", 0.0)

    def close(self) -> None:
        for ref in self._refs:
            self._ray.cancel(ref, force=True)
        self._refs.clear()


def _ray_init(ray: Any, address: str | None) -> None:
    try:
        if address in (None, "auto"):
            try:
                ray.init(address="auto", include_dashboard=False)
            except ConnectionError:
                ray.init(include_dashboard=False)
        else:
            ray.init(address=address)
    except Exception as exc:
        raise SearchError("E0803", f"cannot start or join Ray at {address or 'auto'}: {exc}") from exc


def make_pool(
    workers: int, evaluator: Evaluator, latency: Latency | None, ray: str | None = None, gpus: float = 0
) -> Pool:
    """The pool a search runs on: Ray when `ray` is an address (or "auto"), else local processes."""
    if ray is not None:
        return RayPool(evaluator, latency, ray, 1, gpus)
    if workers == 0:
        return InlinePool(evaluator, latency)
    return LocalPool(workers, evaluator, latency)
