"""build(model, BuildOptions) -> Built(executable, plan): lower to Relax, run the pass pipeline, compile.

Pipeline (PIPELINE below, in order): LegalizeOps, AnnotateTIROpPattern, FuseOps, FuseTIR, then the records
of a tuning database if given (`tune.apply_database`), then the hand schedules of backends/tvm/schedules.py
(`apply(mod, target)`; GPU targets: gpu/schedules.py), then `tvm.compile` (TVM's default VM lowering; GPU
targets: gpu/schedules.pipeline). The default target is this x86 host (targets.resolve("x86"), else a plain
x86-64 llvm target); a `tvm.target.Target`, a dict, or a targets.Target is accepted.

Preconditions: a canonicalize- or lower-stage ir.Model. Non-goals: artifacts (artifact.py), tuning itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tvm
from tvm import relax

from livc.backends.tvm.errors import TARGET, TvmError
from livc.backends.tvm.lower import can_decode, lower
from livc.backends.tvm.plan import Plan, make_plan
from livc.compiler.ir.nodes import Model

HOST = {"kind": "llvm", "mtriple": "x86_64-linux-gnu"}


@dataclass(frozen=True)
class BuildOptions:
    target: Any = None  # tvm.target.Target | dict | targets.Target | None (this host)
    weights: str = "f32"  # matrix-weight storage format (weights.FORMATS)
    max_len: int = 2048  # cache capacity in positions
    tune_db: Path | None = None
    schedule: bool = True  # False: skip schedules.py (unscheduled kernels; for debugging)
    cuda_graph: bool = False  # cuda only: capture the static-shape stretches of each entry as CUDA graphs


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
    from livc.backends.tvm import targets

    try:
        return targets.tvm_target(targets.resolve("x86"))
    except TvmError:
        return tvm.target.Target(HOST)


PIPELINE = (
    relax.transform.LegalizeOps,
    relax.transform.AnnotateTIROpPattern,
    relax.transform.FuseOps,
    relax.transform.FuseTIR,
)


def _is_gpu(target: tvm.target.Target) -> bool:
    return str(target.kind.name) not in ("llvm", "c")


def optimize(
    mod: tvm.IRModule, target: tvm.target.Target, tune_db: Path | None = None, schedule: bool = True
) -> tvm.IRModule:
    """The Relax pass pipeline, then schedules: a tuning database's records first, then the hand schedules
    (CPU: schedules.py; GPU targets: gpu/schedules.py) for every function still unscheduled."""
    from livc.backends.tvm import schedules, tune
    from livc.backends.tvm.gpu import schedules as gpu_schedules

    with target:
        mod = tvm.transform.Sequential([p() for p in PIPELINE])(mod)
        if tune_db is not None:
            mod = tune.apply_database(mod, target, tune_db)
        if not schedule:
            return mod
        return (gpu_schedules if _is_gpu(target) else schedules).apply(mod, target)


def build(model: Model, options: BuildOptions | None = None) -> Built:
    options = options or BuildOptions()
    plan = make_plan(model, options.weights, options.max_len)
    target = tvm_target(options.target)
    mod = optimize(lower(model, plan), target, options.tune_db, options.schedule)
    pipeline: Any = "default"
    if options.cuda_graph and str(target.kind.name) != "cuda":
        raise TvmError(TARGET, f"cuda_graph needs the cuda target, not {target.kind.name}")
    if _is_gpu(target):
        from livc.backends.tvm.gpu.schedules import pipeline as gpu_pipeline

        pipeline = gpu_pipeline(target)
    with tvm.transform.PassContext(config={"relax.backend.use_cuda_graph": options.cuda_graph}):
        executable = tvm.compile(mod, target=target, relax_pipeline=pipeline)
    return Built(executable, plan, can_decode(model), target)
