"""MetaSchedule tuning of the static kernels of `decode_step` into a persistent JSON database.

    tune(model, TuneOptions(...), progress) -> TuneReport     tune and write `db_dir` (workloads + records)
    partition(ms, tasks, database, target, need, db_dir) -> (todo, reused)   still to tune / already in the database
    apply_database(mod, target, db_dir) -> mod                 compile.py: tuned schedules for the kernels found

Only decode_step is tuned, and of it only PrimFuncs with static buffer shapes (MetaSchedule crashes on
dynamic-T tasks, TVM-NOTES "prefill"), minus the tasks known to crash design-space generation (TE attention:
`reverse-compute-at ... producer(s)`) or that are in-place cache writes (opaque, op_pattern 8). Later builds with
`BuildOptions(tune_db=db_dir)` apply every record whose workload matches (MetaScheduleApplyDatabase); the hand
schedules of schedules.py then leave those functions alone (they are already scheduled) and schedule the rest.

Database reuse across models: MetaSchedule itself re-tunes every task it is given, even when the database
already holds records for that workload (it only seeds its search with them). `tune` therefore skips a task
whose workload (structural equality, so the same kernel shape in a sibling model matches) already has at
least `need` valid records for this target, where `need` = `per_task` if set, else min(per_iter, trials)
(the trials one round of the task scheduler gives each task). A task whose design space is smaller than
`need` (a reshape has one candidate) never gets `need` records, so `db_dir/livc_tuned.json` (LEDGER) also
notes, per target and workload hash, the trials a finished `tune` gave it; such a task is reused when it
has a record and the ledger says it was given >= `need` trials. `reuse=False` tunes everything.

Two workarounds from FEASIBILITY.md / TVM-NOTES.md are built in:
- the builder's `f_build` is `default_build` without `import tvm.s_tir.tensor_intrin` (20-114 s per worker,
  which made every build time out);
- a stub package stands in for `tvm.s_tir.tensor_intrin` in this process, importing only the x86 and arm_cpu
  intrinsics (TuneContext imports the package; the CUDA half alone took 21.7 s). It is installed in
  `sys.modules` only while no real import of that package has happened.

Preconditions: apache-tvm-ffi 0.1.14.post1 (0.1.15 segfaults in the JSON database); xgboost installed.
Non-goals: tuning prefill (dynamic shapes), RPC/phone runners (docs/tvm.md).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tvm
from tvm import relax, tirx

from livc.backends.tvm.errors import UNSUPPORTED, TvmError

INTRIN = "tvm.s_tir.tensor_intrin"
INTRIN_KEEP = ("x86", "arm_cpu")
EXCLUDE = ("attention", "kv_store", "inplace")  # task-name fragments never tuned (see the module docstring)
OPAQUE = 8
LEDGER = "livc_tuned.json"  # {"<target>|<workload structural hash>": trials given}, beside the database
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TuneOptions:
    db_dir: Path
    trials: int = 64  # max trials over all tasks
    target: Any = None  # as compile.BuildOptions.target
    weights: str = "f32"
    max_len: int = 2048
    per_iter: int = 16
    workers: int = 2
    seed: int = 0
    per_task: int = 0  # > 0: every task tuned gets this many trials (the global budget is per_task x tasks)
    reuse: bool = True  # skip tasks whose workload already has enough records in the database


def records_needed(options: TuneOptions) -> int:
    """Valid records of a workload for this target at which its task counts as already tuned."""
    return options.per_task if options.per_task > 0 else min(options.per_iter, options.trials)


@dataclass(frozen=True)
class TuneReport:
    tasks: tuple[str, ...]  # tuned task names
    skipped: tuple[tuple[str, str], ...]  # (task name, why)
    records: int  # tuning records in the database afterwards
    seconds: float
    reused: tuple[str, ...] = ()  # tunable tasks not tuned: their workload already had enough records


# --------------------------------------------------------------------------------------------- workarounds


def install_intrin_stub() -> None:
    """Put a stub `tvm.s_tir.tensor_intrin` (x86 + arm_cpu intrinsics only) into sys.modules, once."""
    if INTRIN in sys.modules:
        return
    spec = importlib.util.find_spec(INTRIN)
    if spec is None or spec.submodule_search_locations is None:
        return
    stub = types.ModuleType(INTRIN)
    stub.__path__ = list(spec.submodule_search_locations)
    sys.modules[INTRIN] = stub
    for name in INTRIN_KEEP:
        setattr(stub, name, importlib.import_module(f"{INTRIN}.{name}"))


def fast_build(mod: tvm.IRModule, target: tvm.target.Target, _params: object) -> Any:
    """MetaSchedule's default_build minus `import tvm.s_tir.tensor_intrin` (returns a runtime Module)."""
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    return tvm_build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


def _ms() -> Any:
    install_intrin_stub()
    return importlib.import_module("tvm.s_tir.meta_schedule")


# --------------------------------------------------------------------------------------------- tasks


def _static(func: tirx.PrimFunc) -> bool:
    """Every parameter is a buffer of constant shape (a scalar parameter, e.g. the position, is dynamic)."""
    for param in func.params:
        try:
            shape = list(param.shape)
        except (AttributeError, TypeError, RuntimeError):
            return False
        if not shape and "BufferType" not in str(param.ty) or not all(isinstance(d, tirx.IntImm) for d in shape):
            return False
    return True


def _why_not(task: Any) -> str | None:
    """None if the task is tunable, else the reason it is skipped."""
    name = task.task_name
    if any(frag in name for frag in EXCLUDE):
        return "excluded (known MetaSchedule crash or in-place cache write)"
    func = task.dispatched[0]["main"]
    if not _static(func):
        return "dynamic shapes"
    if func.attrs is not None and int(func.attrs.get("op_pattern", 0)) == OPAQUE:
        return "opaque kernel"
    return None


def decode_module(model: Any, options: TuneOptions) -> tuple[tvm.IRModule, tvm.target.Target]:
    """decode_step alone after the Relax pipeline up to FuseTIR (what compile.optimize schedules)."""
    from livc.backends.tvm.compile import PIPELINE, tvm_target
    from livc.backends.tvm.lower import lower
    from livc.backends.tvm.plan import make_plan

    target = tvm_target(options.target)
    mod = lower(model, make_plan(model, options.weights, options.max_len))
    if "decode_step" not in [gv.name_hint for gv in mod.get_global_vars()]:
        raise TvmError(UNSUPPORTED, "tune: the model has no decode_step (bidirectional attention)")
    with target:
        mod = tvm.transform.Sequential([p() for p in PIPELINE])(mod)
        mod = relax.transform.DeadCodeElimination(["decode_step"])(_without(mod, "prefill"))
    return mod, target


def _without(mod: tvm.IRModule, name: str) -> tvm.IRModule:
    out = tvm.IRModule({gv: f for gv, f in mod.functions_items() if gv.name_hint != name}, attrs=mod.attrs)
    return out


# --------------------------------------------------------------------------------------------- tune / apply


def _database(ms: Any, db_dir: Path) -> Any:
    db_dir.mkdir(parents=True, exist_ok=True)
    return ms.database.JSONDatabase(work_dir=str(db_dir))


def tune(model: Any, options: TuneOptions, progress: Progress = print) -> TuneReport:
    """Tune decode_step's static kernels for `options.trials` trials into `options.db_dir`."""
    start = time.perf_counter()
    ms = _ms()
    mod, target = decode_module(model, options)
    tasks = ms.relax_integration.extract_tasks(mod, target)
    skipped = [(t.task_name, why) for t in tasks if (why := _why_not(t)) is not None]
    chosen = [t for t in tasks if _why_not(t) is None]
    for name, why in skipped:
        progress(f"tune: skip {name}: {why}")
    database = _database(ms, options.db_dir)
    need = records_needed(options)
    todo, reused = partition(ms, chosen, database, target, need, options.db_dir) if options.reuse else (chosen, [])
    for t in reused:
        progress(f"tune: reuse {t.task_name}: >= {need} records of its workload in the database")
    budget = options.per_task * len(todo) if options.per_task > 0 else options.trials
    progress(
        f"tune: {len(chosen)} tasks: {len(todo)} to tune, {len(reused)} reused from the database; "
        f"{budget} trials, database {options.db_dir}"
    )
    if todo:
        _run(ms, todo, database, target, options)
        _note(options.db_dir, target, [t for t in todo if _valid(database, t.dispatched[0], target, 1)], need)
    records = len(database.get_all_tuning_records())
    seconds = time.perf_counter() - start
    progress(f"tune: done in {seconds:.0f} s: {len(todo)} tasks tuned, {len(reused)} reused, {records} records")
    names = tuple(t.task_name for t in todo)
    return TuneReport(names, tuple(skipped), records, seconds, tuple(t.task_name for t in reused))


def partition(
    ms: Any, tasks: list[Any], database: Any, target: tvm.target.Target, need: int, db_dir: Path | None = None
) -> tuple[list[Any], list[Any]]:
    """(tasks to tune, tasks already tuned for `target` with >= `need` trials: see the module docstring)."""
    ledger = _ledger(db_dir) if db_dir is not None else {}
    todo, reused = [], []
    for task in tasks:
        mod = task.dispatched[0]
        done = _valid(database, mod, target, need)
        given = ledger.get(_key(target, mod), 0)
        (reused if need > 0 and (done >= need or (done >= 1 and given >= need)) else todo).append(task)
    return todo, reused


def _valid(database: Any, mod: tvm.IRModule, target: tvm.target.Target, need: int) -> int:
    """Valid records of `mod` for `target` (counted up to a bound well above `need`)."""
    if not database.has_workload(mod):  # commit_workload would add it otherwise: only asked when present
        return 0
    top = database.get_top_k(database.commit_workload(mod), max(need, 1) * 64)
    return sum(1 for r in top if str(r.target) == str(target))


def _key(target: tvm.target.Target, mod: tvm.IRModule) -> str:
    import tvm_ffi

    return f"{target}|{tvm_ffi.structural_hash(mod):x}"


def _ledger(db_dir: Path) -> dict[str, int]:
    path = db_dir / LEDGER
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _note(db_dir: Path, target: tvm.target.Target, tasks: list[Any], trials: int) -> None:
    ledger = _ledger(db_dir)
    for task in tasks:
        key = _key(target, task.dispatched[0])
        ledger[key] = max(ledger.get(key, 0), trials)
    (db_dir / LEDGER).write_text(json.dumps(ledger, indent=1, sort_keys=True), encoding="utf-8")


def _run(ms: Any, chosen: list[Any], database: Any, target: tvm.target.Target, options: TuneOptions) -> None:
    work = options.db_dir / "logs"
    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
        extracted_tasks=chosen, work_dir=str(work), seed=options.seed
    )
    builder = ms.builder.LocalBuilder(max_workers=options.workers, timeout_sec=120, f_build=fast_build)
    runner = ms.runner.LocalRunner(
        timeout_sec=60, evaluator_config=ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=20)
    )
    if options.per_task > 0:  # the scheduler's first rounds visit every task once: per_task trials each
        budget = dict(max_trials_global=options.per_task * len(chosen), num_trials_per_iter=options.per_task)
        budget["max_trials_per_task"] = options.per_task
    else:
        budget = dict(max_trials_global=options.trials, num_trials_per_iter=min(options.per_iter, options.trials))
    ms.tune.tune_tasks(
        tasks=contexts,
        task_weights=weights,
        work_dir=str(work),
        builder=builder,
        runner=runner,
        database=database,
        **budget,
    )


def apply_database(mod: tvm.IRModule, target: tvm.target.Target, db_dir: Path) -> tvm.IRModule:
    """Replace every PrimFunc that has a record in `db_dir` by its best tuned schedule."""
    db_dir = Path(db_dir)
    if not (db_dir / "database_workload.json").exists():
        raise TvmError(UNSUPPORTED, f"tune_db: {db_dir} holds no MetaSchedule database (run `livc tune` first)")
    ms = _ms()
    database = _database(ms, db_dir)
    with target, database, tvm.transform.PassContext(opt_level=3):
        return relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
