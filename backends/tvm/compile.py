"""build(model, BuildOptions) -> Built(executable, plan): lower to Relax, run the pass pipeline, compile.

Pipeline (PIPELINE below, in order): LegalizeOps, AnnotateTIROpPattern, FuseOps, FuseTIR, then the hand
schedules of backends/tvm/schedules.py (`apply(mod, target)`, H4; without that module the kernels stay
unscheduled), then `tvm.compile` (TVM's default VM lowering) for the target. The default target is this
x86 host (targets.resolve("x86"), else a plain x86-64 llvm target); a `tvm.target.Target`, a dict, or a
targets.Target is accepted. `tune_db` (a MetaSchedule database folder) is handed to tune.py's
`apply_database(mod, target, tune_db)` when that exists, else it is E0701.

Preconditions: a canonicalize- or lower-stage ir.Model. Non-goals: artifacts (artifact.py), tuning itself.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tvm
from tvm import relax

from livc.backends.tvm.errors import TARGET, UNSUPPORTED, TvmError
from livc.backends.tvm.lower import can_decode, lower
from livc.backends.tvm.plan import Plan, make_plan
from livc.compiler.ir.nodes import Model

HOST = {"kind": "llvm", "mtriple": "x86_64-linux-gnu"}
SCHEDULES = "livc.backends.tvm.schedules"
GPU_SCHEDULES = "livc.backends.tvm.gpu.schedules"  # GPU targets (kind other than llvm/c): issue 10
TUNE = "livc.backends.tvm.tune"


@dataclass(frozen=True)
class BuildOptions:
    target: Any = None  # tvm.target.Target | dict | targets.Target | None (this host)
    weights: str = "f32"  # matrix-weight storage format (weights.FORMATS)
    max_len: int = 2048  # cache capacity in positions
    tune_db: Path | None = None
    schedule: bool = True  # False: skip schedules.py (unscheduled kernels; for debugging)


@dataclass(frozen=True)
class Built:
    executable: Any  # tvm.runtime.Executable
    plan: Plan
    decodes: bool = True  # False: no decode_step (bidirectional attention)
    target: Any = None


def tvm_target(target: Any) -> tvm.target.Target:
    """Any accepted target form -> tvm.target.Target (dicts are wrapped: FEASIBILITY gotcha 2)."""
    if isinstance(target, tvm.target.Target):
        return target
    if isinstance(target, dict):
        return tvm.target.Target(target)
    if target is None:
        return _host()
    if hasattr(target, "llvm"):  # targets.Target (H5): plain data
        from livc.backends.tvm import targets

        return targets.tvm_target(target)
    raise TvmError(TARGET, f"target {target!r} is neither a tvm.target.Target, a dict nor a targets.Target")


def _host() -> tvm.target.Target:
    if importlib.util.find_spec("livc.backends.tvm.targets") is not None:
        from livc.backends.tvm import targets

        try:
            return targets.tvm_target(targets.resolve("x86"))
        except TvmError:
            pass
    return tvm.target.Target(HOST)


PIPELINE = (
    relax.transform.LegalizeOps,
    relax.transform.AnnotateTIROpPattern,
    relax.transform.FuseOps,
    relax.transform.FuseTIR,
)


def _optional(module: str, name: str) -> Any:
    if importlib.util.find_spec(module) is None:
        return None
    return getattr(importlib.import_module(module), name, None)


def optimize(
    mod: tvm.IRModule, target: tvm.target.Target, tune_db: Path | None = None, schedule: bool = True
) -> tvm.IRModule:
    """The Relax pass pipeline, then schedules (hand, or from a tuning database)."""
    with target:
        mod = tvm.transform.Sequential([p() for p in PIPELINE])(mod)
        if tune_db is not None:
            apply_db = _optional(TUNE, "apply_database")
            if apply_db is None:
                raise TvmError(UNSUPPORTED, "tune_db: backends/tvm/tune.py defines no apply_database")
            mod = apply_db(mod, target, tune_db)
        gpu = str(target.kind.name) not in ("llvm", "c")
        apply = _optional(GPU_SCHEDULES if gpu else SCHEDULES, "apply") if schedule else None
        return apply(mod, target) if apply is not None else mod


def build(model: Model, options: BuildOptions | None = None) -> Built:
    options = options or BuildOptions()
    plan = make_plan(model, options.weights, options.max_len)
    target = tvm_target(options.target)
    mod = optimize(lower(model, plan), target, options.tune_db, options.schedule)
    gpu = _optional(GPU_SCHEDULES, "pipeline") if str(target.kind.name) not in ("llvm", "c") else None
    executable = tvm.compile(mod, target=target, relax_pipeline=gpu(target) if gpu is not None else "default")
    return Built(executable, plan, can_decode(model), target)
