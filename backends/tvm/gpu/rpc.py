"""TVM RPC: tracker and server processes, remote sessions, and MetaSchedule tuning measured on a remote device.

    endpoint("HOST:PORT") -> (host, port)                 E0702 on a malformed address
    start_tracker(host, port) -> Process                  python -m tvm.exec.rpc_tracker (--port-end > --port)
    start_server(host, port, tracker, key, prefix=()) -> Process   rpc_server registered with the tracker under
                                                          `key`; `prefix`: a launcher for the server command
                                                          (the emulated aarch64 device: rpc_emulated.py)
    wait_for(tracker, key, timeout) -> None               until the tracker lists a free server for `key`
    remote(tracker, key) -> RPCSession                    a session on one server of `key`
    run_remote(lib_path, tracker, key, inputs) -> outputs  upload a Relax VM library, run prefill there
    tune_remote(model, options, tracker, key, progress)   tune.py's decode tasks, measured through the tracker
                                                          (builder cross-exports with the target's linker)

The phone workflow: on the phone `python -m tvm.exec.rpc_server --tracker HOST:9190 --key android`, on the
desktop the tracker; `livc tune model.liv --target arm64-android --rpc HOST:9190 --key android --trials 64`.
Preconditions: tornado, psutil, cloudpickle (the tracker); the remote's TVM runtime matches this TVM.
Non-goals: OpenCL measurement here (the PyPI runtime has no OpenCL: a phone's TVM runtime does), Android adb.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from livc.backends.tvm.errors import TARGET, UNSUPPORTED, TvmError

Progress = Callable[[str], None]


def endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TvmError(TARGET, f"--rpc {text!r}: expected HOST:PORT of a TVM RPC tracker, e.g. 127.0.0.1:9190")
    return host, int(port)


def start_tracker(host: str, port: int) -> subprocess.Popen:
    """The tracker on exactly `port` (its --port-end must exceed --port, else it cannot bind)."""
    cmd = [sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", host, "--port", str(port)]
    return subprocess.Popen([*cmd, "--port-end", str(port + 1)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def start_server(
    host: str, port: int, tracker: tuple[str, int], key: str, prefix: Sequence[str] = (), python: str | None = None
) -> subprocess.Popen:
    cmd = [*prefix, python or sys.executable, "-m", "tvm.exec.rpc_server", "--host", host, "--port", str(port)]
    cmd += ["--port-end", str(port + 10), "--tracker", f"{tracker[0]}:{tracker[1]}", "--key", key]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(tracker: tuple[str, int], key: str, timeout: float = 60.0) -> None:
    from tvm import rpc

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            summary = rpc.connect_tracker(*tracker).summary()
            if any(k == key and q.get("free", 0) > 0 for k, q in summary.get("queue_info", {}).items()):
                return
            last = str(summary.get("queue_info"))
        except (OSError, RuntimeError) as exc:
            last = str(exc)
        time.sleep(0.5)
    raise TvmError(TARGET, f"RPC: no free server with key {key!r} at tracker {tracker[0]}:{tracker[1]} ({last})")


def remote(tracker: tuple[str, int], key: str, timeout: float = 60.0) -> Any:
    from tvm import rpc

    try:
        return rpc.connect_tracker(*tracker).request(key, session_timeout=timeout)
    except (OSError, RuntimeError) as exc:
        raise TvmError(TARGET, f"RPC: cannot reach a {key!r} server through {tracker[0]}:{tracker[1]}: {exc}") from exc


def run_remote(lib: Path, tracker: tuple[str, int], key: str, name: str, args: Sequence[Any]) -> list[Any]:
    """Upload the Relax VM library `lib`, run entry `name` on the remote CPU with numpy / ShapeTuple args."""
    import numpy as np
    import tvm
    from tvm import relax

    sess = remote(tracker, key)
    sess.upload(str(lib))
    dev = sess.cpu()
    vm = relax.VirtualMachine(sess.load_module(lib.name), dev)
    conv = [tvm.runtime.tensor(a, dev) if isinstance(a, np.ndarray) else a for a in args]
    vm.set_input(name, *conv)  # a tuple result over RPC is an opaque ref: read it back field by field
    vm.invoke_stateful(name)
    out = vm.get_outputs(name)
    return [o.numpy() for o in (out if isinstance(out, list | tuple) else [out])]


def tune_remote(model: Any, options: Any, tracker: tuple[str, int], key: str, progress: Progress = print) -> Any:
    """tune.tune, but every candidate is cross-built here and timed on a `key` server of the tracker."""
    from livc.backends.tvm import tune

    start = time.perf_counter()
    ms = tune._ms()  # noqa: SLF001 - the intrinsics stub of tune.py
    mod, target = tune.decode_module(model, options)
    target = _with_cores(target, tracker, key)
    tasks = ms.relax_integration.extract_tasks(mod, target)
    chosen = [t for t in tasks if tune._why_not(t) is None]  # noqa: SLF001
    if not chosen:
        raise TvmError(UNSUPPORTED, "tune --rpc: the model's decode_step has no tunable static kernels")
    database = tune._database(ms, options.db_dir)  # noqa: SLF001
    need = tune.records_needed(options)
    todo, reused = tune.partition(ms, chosen, database, target, need, options.db_dir) if options.reuse else (chosen, [])
    progress(
        f"tune: {len(chosen)} tasks: {len(todo)} to tune, {len(reused)} reused from the database; "
        f"{options.trials} trials on {key!r} via {tracker[0]}:{tracker[1]}"
    )
    if todo:
        _tune_tasks(ms, tune, todo, database, options, tracker, key)
        done = [t for t in todo if tune._valid(database, t.dispatched[0], target, 1)]  # noqa: SLF001
        tune._note(options.db_dir, target, done, need)  # noqa: SLF001 - the reuse ledger
    records = len(database.get_all_tuning_records())
    seconds = time.perf_counter() - start
    progress(f"tune: done in {seconds:.0f} s: {len(todo)} tasks tuned, {len(reused)} reused, {records} records")
    names = tuple(t.task_name for t in todo)
    return tune.TuneReport(names, (), records, seconds, tuple(t.task_name for t in reused))


def _tune_tasks(ms: Any, tune: Any, todo: list[Any], database: Any, options: Any, tracker: Any, key: str) -> None:
    """MetaSchedule over `todo`: candidates cross-built here, timed by the tracker's `key` device."""
    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
        extracted_tasks=todo, work_dir=str(options.db_dir / "logs"), seed=options.seed
    )
    linker = getattr(options.target, "linker", None)
    builder = ms.builder.LocalBuilder(
        max_workers=options.workers, timeout_sec=120, f_build=tune.fast_build, f_export=_exporter(linker)
    )
    config = ms.runner.RPCConfig(tracker_host=tracker[0], tracker_port=tracker[1], tracker_key=key)
    runner = ms.runner.RPCRunner(config, ms.runner.EvaluatorConfig(number=2, repeat=1), max_workers=1)
    ms.tune.tune_tasks(
        tasks=contexts,
        task_weights=weights,
        work_dir=str(options.db_dir / "logs"),
        max_trials_global=options.trials,
        num_trials_per_iter=min(options.per_iter, options.trials),
        builder=builder,
        runner=runner,
        database=database,
    )


def _with_cores(target: Any, tracker: tuple[str, int], key: str) -> Any:
    """MetaSchedule needs the CPU target's num-cores: a cross target (arm64-linux) has none, so ask the device."""
    import tvm

    if target.kind.name != "llvm" or target.attrs.get("num-cores") is not None:
        return target
    cores = int(remote(tracker, key).get_function("runtime.NumThreads")())
    return tvm.target.Target({**dict(target.export()), "num-cores": cores})


def _exporter(linker: str | None) -> Callable[[Any], str] | None:
    """LocalBuilder f_export: the candidate library linked by the target's linker (None: the host default)."""
    if linker is None or Path(linker).name in ("g++", "c++"):
        return None
    return _CrossExport(linker)


class _CrossExport:
    """Picklable (builder workers are processes): export_library with a cross compiler."""

    def __init__(self, linker: str) -> None:
        self.linker = linker

    def __call__(self, rt_mod: Any) -> str:
        import tempfile

        from tvm.support import cc

        path = str(Path(tempfile.mkdtemp()) / "tvm_tmp_mod.so")
        rt_mod.export_library(path, fcompile=cc.cross_compiler(self.linker))
        return path
