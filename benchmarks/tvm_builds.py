"""TVM build times and device-kernel counts of every example per target, and tuning time with database reuse.

    python benchmarks/tvm_builds.py builds [--models a,b] [--targets adreno,mali,cuda,webgpu,x86,arm64-linux]
    python benchmarks/tvm_builds.py tune [--trials 2] [--first transformer_pp] [--then hyena_edge]

`builds`: each example at full size, built with `compile.build(model, BuildOptions(target=targets.resolve(t),
weights=fmt))` for adreno and mali (f32, f16; OpenCL kernels = kernels defined in the program, gpu/opencl.py),
cuda (f16; `__global__` kernels, distinct names), webgpu (f32; WGSL `@compute` entry points), x86 (f32, q4) and
arm64-linux (f32, when aarch64-linux-gnu-g++ is installed; build only, nothing is linked). Time = lower + Relax
pipeline + schedules + tvm.compile, one process, sequential.
`tune`: tune.py on x86 with `--trials` trials per task: (a) `--then` into a fresh database, (b) `--first` into a
fresh database, then `--then` into the same one (tasks whose workload is already there are reused).
Both record os.getloadavg() (the build machine is shared) and merge their section into
benchmarks/results/tvm_builds.json, then rewrite benchmarks/results/tvm_builds.md from the whole JSON.
Non-goals: running anything on a GPU, linking artifacts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tvm_gpu import examples, import_livc, models  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CELLS = (
    ("adreno", "f32"),
    ("adreno", "f16"),
    ("mali", "f32"),
    ("mali", "f16"),
    ("cuda", "f16"),
    ("webgpu", "f32"),
    ("x86", "f32"),
    ("x86", "q4"),
    ("arm64-linux", "f32"),
)
_CUDA = re.compile(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\s*\(')
_WGSL = re.compile(r"@compute @workgroup_size\([^)]*\)\s*fn (\w+)\s*\(")


def _load() -> tuple[float, float, float]:
    return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]


def _walk(mod: Any) -> list[Any]:
    return [mod] + [x for sub in mod.imports for x in _walk(sub)]


def device_kernels(executable: Any, kind: str) -> int | None:
    """Distinct device kernels of a built executable (None for CPU targets)."""
    if kind == "opencl":
        from livc.backends.tvm.gpu import opencl

        return len(opencl.signatures(opencl.source(executable)))
    pattern = {"cuda": _CUDA, "webgpu": _WGSL}.get(kind)
    if pattern is None:
        return None
    names = {n for m in _walk(executable.mod) if m.kind == kind for n in pattern.findall(m.inspect_source())}
    return len(names)


def _kind(target: str) -> str:
    return {"adreno": "opencl", "mali": "opencl"}.get(target, target)


def build_one(lowered: Any, target: str, fmt: str) -> dict[str, Any]:
    from livc.backends.tvm import targets
    from livc.backends.tvm.compile import BuildOptions, build

    rec: dict[str, Any] = {"target": target, "weights": fmt, "load_before": _load()}
    try:
        tgt = targets.resolve(target)
        start = time.perf_counter()
        built = build(lowered, BuildOptions(target=tgt, weights=fmt))
        rec["build_s"] = round(time.perf_counter() - start, 2)
        rec["kernels"] = device_kernels(built.executable, _kind(target))
    except Exception as exc:  # noqa: BLE001 - recorded per cell, the matrix goes on
        rec["error"] = f"{type(exc).__name__}: {exc}"[:300]
    return rec


def run_builds(names: list[str], wanted: list[str]) -> dict[str, Any]:
    cells = [(t, f) for t, f in CELLS if t in wanted]
    if "arm64-linux" in wanted and shutil.which("aarch64-linux-gnu-g++") is None:
        print("arm64-linux skipped: apt-get install -y g++-aarch64-linux-gnu")
        cells = [(t, f) for t, f in cells if t != "arm64-linux"]
    out: dict[str, Any] = {"cells": [f"{t}/{f}" for t, f in cells], "load_start": _load(), "models": {}}
    start = time.perf_counter()
    for name in names:
        lowered, _ = models(name, {})
        rows = []
        for target, fmt in cells:
            rows.append(build_one(lowered, target, fmt))
            r = rows[-1]
            print(name, target, fmt, r.get("build_s", r.get("error")), r.get("kernels"), r["load_before"], flush=True)
        out["models"][name] = rows
    out["total_s"], out["load_end"] = round(time.perf_counter() - start, 1), _load()
    return out


# --------------------------------------------------------------------------------------------- tune


def tune_case(names: list[str], trials: int, label: str) -> dict[str, Any]:
    """Tune `names` in order into one fresh database; one row per model."""
    from livc.backends.tvm import targets, tune

    db = Path(tempfile.mkdtemp(prefix="tvm_builds-db-"))
    rows = []
    for name in names:
        lowered, _ = models(name, {})
        opts = tune.TuneOptions(db, target=targets.resolve("x86"), per_task=trials, workers=2)
        load = _load()
        report = tune.tune(lowered, opts, progress=lambda m: print(f"  [{label}] {m}", flush=True))
        rows.append(
            {
                "model": name,
                "tasks": len(report.tasks) + len(report.reused),
                "tuned": len(report.tasks),
                "reused": len(report.reused),
                "skipped": len(report.skipped),
                "records": report.records,
                "wall_s": round(report.seconds, 1),
                "load_before": load,
                "load_after": _load(),
            }
        )
        print(label, rows[-1], flush=True)
    shutil.rmtree(db, ignore_errors=True)
    return {"case": label, "rows": rows}


def run_tune(first: str, then: str, trials: int) -> dict[str, Any]:
    cases = [tune_case([then], trials, f"fresh: {then}"), tune_case([first, then], trials, f"{first} then {then}")]
    return {"target": "x86", "trials_per_task": trials, "size": "full", "cases": cases}


# --------------------------------------------------------------------------------------------- output


def markdown(doc: dict[str, Any]) -> str:
    lines = ["# TVM builds and tuning (benchmarks/tvm_builds.py)", ""]
    b = doc.get("builds")
    if b:
        lines += [f"Full-size examples; build seconds (device kernels). Load average {b['load_start']} at the start,"]
        lines += [f"{b['load_end']} at the end (1/5/15 min; 2 shared cores); total {b['total_s']} s.", ""]
        lines += ["| model | " + " | ".join(b["cells"]) + " |", "|---" * (len(b["cells"]) + 1) + "|"]
        for name, rows in b["models"].items():
            cells = [_cell(r) for r in rows]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    t = doc.get("tune")
    if t:
        lines += [f"Tuning on {t['target']}, {t['trials_per_task']} trials per task, {t['size']}-size models.", ""]
        lines += ["| case | model | tasks | tuned | reused | records after | wall s | load before |"]
        lines += ["|---|---|---|---|---|---|---|---|"]
        for case in t["cases"]:
            for r in case["rows"]:
                row = (case["case"], r["model"], r["tasks"], r["tuned"], r["reused"], r["records"], r["wall_s"])
                lines.append("| " + " | ".join(map(str, row)) + f" | {r['load_before'][0]} |")
        lines.append("")
    return "\n".join(lines)


def _cell(r: dict[str, Any]) -> str:
    if "error" in r:
        return "error: " + r["error"].split(":")[0]
    return f"{r['build_s']}" + (f" ({r['kernels']})" if r.get("kernels") is not None else "")


def save(section: str, data: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "tvm_builds.json"
    doc = json.loads(path.read_text()) if path.is_file() else {}
    doc[section] = data
    path.write_text(json.dumps(doc, indent=1))
    text = markdown(doc)
    (RESULTS / "tvm_builds.md").write_text(text)
    print(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="step", required=True)
    b = sub.add_parser("builds")
    b.add_argument("--models", default="", help="comma-separated example names (default: all)")
    b.add_argument("--targets", default=",".join(dict.fromkeys(t for t, _ in CELLS)))
    t = sub.add_parser("tune")
    t.add_argument("--trials", type=int, default=2, help="trials per task")
    t.add_argument("--first", default="transformer_pp")
    t.add_argument("--then", default="hyena_edge")
    args = p.parse_args(argv)
    import_livc()
    if args.step == "builds":
        names = [n for n in args.models.split(",") if n] or examples()
        save("builds", run_builds(names, args.targets.split(",")))
    else:
        save("tune", run_tune(args.first, args.then, args.trials))
    return 0


if __name__ == "__main__":
    sys.exit(main())
