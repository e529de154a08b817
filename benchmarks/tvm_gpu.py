"""TVM CUDA on one NVIDIA GPU (H200): correctness against the PyTorch backend, then the decode/prefill benchmark.

Two steps, because the GPU machine has no TVM compiler (its wheel is larger than what travels there):

    python benchmarks/tvm_gpu.py prepare --out .gpu          # here (TVM): CUDA libraries + the runtime libraries
    python benchmarks/tvm_gpu.py run --libs .gpu --out DIR   # on the GPU: torch + apache-tvm-ffi only

`prepare` builds, for the target `cuda` (sm_90), every example at reduced width in f32 and f16 (the check
set) and LFM2-350M and Hyena Edge at full size in f16, once plain and once with CUDA graphs
(`BuildOptions(cuda_graph=True)`), writes each `model.so`, the plan's signature and build time into
`.gpu/index.json`, and copies libtvm_runtime.so + libtvm_runtime_cuda.so beside them. Nothing there holds
weights: `run` regenerates them on the GPU machine from the PyTorch backend's initialisation (seed fixed;
timing does not depend on the values), re-derives the plan (`make_plan`, TVM-free) and refuses a library
whose signature differs.

`run` loads every library through `livc.backends.tvm.ffi_runtime.FfiSession` (tvm_ffi + the runtime
libraries; the `tvm` package is never imported) and:
- check: TVM CUDA prefill logits (11 tokens) and 6 greedy decode steps vs the PyTorch backend in f32 on the
  GPU holding the same stored weights (f16 matrices rounded as the kernels read them); max |diff| divided by
  max(1, max |torch logit|); fails above 1e-3. Also the difference to the unrounded f32 weights.
- bench: prefill of `--prefill` (512) tokens, then `--decode` (64) greedy steps with the next token kept on
  the GPU (one synchronisation at the end), for TVM CUDA f16 (plain, CUDA graphs), the PyTorch backend in bf16
  eager and torch.compile'd (decode compiled with dynamic=True: one graph for every position); per-token
  kernel count and summed kernel time of one TVM decode step from the CUDA profiler (torch.profiler, which
  sees every kernel in the process); decode as a fraction of the HBM roofline: the bytes one step reads
  (every stored weight array, the cache up to the position) over the device-to-device copy bandwidth
  measured in the same run (and over the data-sheet 4.8 TB/s).
Writes DIR/tvm_gpu.json and DIR/tvm_gpu.md (table). Run from the repository root (the folder is the `livc`
package; it is put on sys.path under that name when not installed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ("lfm2_350m", "hyena_edge")
REDUCE = dict(vocab=48, d=32, heads=4, kv_heads=2, ffn=48, ff_dim=96, n_layers=5, stripes=1, state=4, groups=4)
CHECK_LEN, BENCH_LEN = 64, 1024


def import_livc() -> None:
    try:
        import livc  # noqa: F401
    except ImportError:
        link = Path(tempfile.mkdtemp()) / "livc"
        link.symlink_to(ROOT)
        sys.path.insert(0, str(link.parent))


def examples() -> list[str]:
    return sorted(p.stem for p in (ROOT / "examples").glob("*.liv"))


def overrides_for(name: str) -> dict[str, int]:
    """REDUCE restricted to the parameters the example's (single) model declares."""
    from livc.dsl import ast as A
    from livc.dsl.diagnostics import DiagnosticSink
    from livc.dsl.parser import parse_source
    from livc.dsl.source import SourceFile

    path = ROOT / "examples" / f"{name}.liv"
    parsed = parse_source(SourceFile(str(path), path.read_text(encoding="utf-8")), DiagnosticSink())
    model = next(i for i in parsed.items if isinstance(i, A.Def) and i.kind is A.DefKind.MODEL)
    declared = {p.name.name for p in model.params}
    return {k: v for k, v in REDUCE.items() if k in declared}


def models(name: str, overrides: dict) -> tuple[Any, Any]:
    """(lower-stage, canonicalize-stage) ir.Model of an example under overrides."""
    from livc.api import to_overrides
    from livc.compiler.pipeline import compile_source

    text = (ROOT / "examples" / f"{name}.liv").read_text()
    out = []
    for stage in ("lower", "canonicalize"):
        r = compile_source(text, f"{name}.liv", stop_after=stage, overrides=to_overrides(**overrides))
        if not r.ok:
            raise RuntimeError(f"{name}: {[str(d) for d in r.diagnostics]}")
        out.append(r.models[0])
    return out[0], out[1]


def signature(plan: Any) -> dict[str, Any]:
    return {
        "weights": [[w.name, list(w.shape), w.dtype] for w in plan.weight_inputs],
        "cache": [[e.key, list(e.shape), e.dtype] for e in plan.cache],
    }


# --------------------------------------------------------------------------------------------- prepare


def entries(target: str) -> list[dict[str, Any]]:
    graphs = (False, True) if target == "cuda" else (False,)
    out = [
        dict(name=n, kind="check", fmt=f, graph=False, max_len=CHECK_LEN) for n in examples() for f in ("f32", "f16")
    ]
    out += [dict(name=n, kind="bench", fmt="f16", graph=g, max_len=BENCH_LEN) for n in BENCH for g in graphs]
    for e in out:
        e["overrides"] = overrides_for(e["name"]) if e["kind"] == "check" else {}
        e["id"] = f"{e['name']}-{e['kind']}-{e['fmt']}{'-graph' if e['graph'] else ''}"
    return out


def kernels(built: Any) -> int:
    """Distinct CUDA kernels of the build (the source declares each one before defining it)."""
    from livc.backends.tvm.gpu import nvcc

    names = set()
    for source in nvcc.cuda_sources(built.executable.mod):
        names.update(re.findall(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(', source))
    return len(names)


def prepare(out: Path, target: str = "cuda") -> int:
    from livc.backends.tvm import targets
    from livc.backends.tvm.compile import BuildOptions, build
    from livc.backends.tvm.ffi_runtime import runtime_libraries
    from livc.backends.tvm.gpu import nvcc

    out.mkdir(parents=True, exist_ok=True)
    (out / "runtime").mkdir(exist_ok=True)
    for lib in runtime_libraries(cuda=target == "cuda"):
        shutil.copy2(lib, out / "runtime" / lib.name)
    index = []
    for e in entries(target):
        try:
            lowered, _ = models(e["name"], e["overrides"])
            opts = BuildOptions(
                target=targets.resolve(target), weights=e["fmt"], max_len=e["max_len"], cuda_graph=e["graph"]
            )
            start = time.perf_counter()
            built = build(lowered, opts)
            e["build_s"] = round(time.perf_counter() - start, 3)
            e["kernels"], e["decodes"] = kernels(built), built.decodes
            built.executable.export_library(str(out / f"{e['id']}.so"))
            if target == "cuda":  # the kernels to machine code here (the GPU machine then needs no nvcc)
                start = time.perf_counter()
                (source,) = nvcc.cuda_sources(built.executable.mod)
                (out / f"{e['id']}.fatbin").write_bytes(nvcc.compile_fatbin(source, "sm_90"))
                e["nvcc_s"], e["source_key"] = round(time.perf_counter() - start, 3), nvcc.source_key(source)
            e["signature"] = signature(built.plan)
        except Exception as exc:  # noqa: BLE001 - recorded: the run reports it as a build failure
            e["build_error"] = f"{type(exc).__name__}: {exc}"
        print(e["id"], e.get("build_s", e.get("build_error")), flush=True)
        index.append(e)
    (out / "index.json").write_text(json.dumps(index, indent=1))
    return 0 if all("build_error" not in e for e in index) else 1


# --------------------------------------------------------------------------------------------- run


def one(libs: Path, eid: str, out: Path, args: argparse.Namespace) -> int:
    """One entry in this process (the `run` step starts one process per entry): its record to `out`."""
    import gpu_device

    gpu_device.DEVICE = args.device
    e = next(x for x in json.loads((libs / "index.json").read_text()) if x["id"] == eid)
    start = time.perf_counter()
    try:
        rec = gpu_device.evaluate(e, libs, gpu_device.load(libs / "runtime"), args)
    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
        rec = {"error": f"{type(exc).__name__}: {exc}"[:2000], "traceback": traceback.format_exc()[-3000:], "ok": False}
    rec["wall_s"] = round(time.perf_counter() - start, 2)
    out.write_text(json.dumps(rec, default=str))
    return 0


def _child(libs: Path, eid: str, tmp: Path, args: argparse.Namespace, blocking: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "one", "--libs", str(libs), "--id", eid, "--result", str(tmp / f"{eid}.json")]
    cmd += ["--device", args.device, "--prefill", str(args.prefill), "--decode", str(args.decode)]
    cmd += ["--reps", str(args.reps)] + (["--no-compile"] if args.no_compile else [])
    env = dict(os.environ, CUDA_LAUNCH_BLOCKING="1") if blocking else dict(os.environ)
    log = (tmp / f"{eid}{'.blocking' if blocking else ''}.log").open("w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def _collect(eid: str, proc: subprocess.Popen, tmp: Path, blocking: bool = False) -> dict[str, Any]:
    proc.wait()
    log = (tmp / f"{eid}{'.blocking' if blocking else ''}.log").read_text(errors="replace")[-2500:]
    path = tmp / f"{eid}.json"
    if proc.returncode == 0 and path.is_file():
        return json.loads(path.read_text())
    return {"error": f"process exited with {proc.returncode}", "log": log, "ok": False}


def run(libs: Path, out: Path, args: argparse.Namespace) -> int:
    """Every selected entry in its own process (a CUDA fault cannot poison the others): checks 4 at a time,
    then the benchmarks one by one; a check that faults is run again with CUDA_LAUNCH_BLOCKING=1, whose
    error names the kernel."""
    import gpu_device
    import torch

    gpu_device.DEVICE = args.device
    out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu (dry run)"
    doc: dict[str, Any] = {"device": name, "args": {k: str(v) for k, v in vars(args).items()}}
    doc["copy_tbs"] = gpu_device.copy_bandwidth()
    doc["check"], doc["bench"] = {}, {}
    picked = [e for e in json.loads((libs / "index.json").read_text()) if _picked(e["id"], args.only, args.skip)]
    tmp = Path(tempfile.mkdtemp(prefix="tvm_gpu-"))
    checks, benches = [e for e in picked if e["kind"] == "check"], [e for e in picked if e["kind"] == "bench"]
    for i in range(0, len(checks), 4):
        procs = [(e, _child(libs, e["id"], tmp, args)) for e in checks[i : i + 4]]
        for e, proc in procs:
            doc["check"][e["id"]] = _report(e["id"], _collect(e["id"], proc, tmp))
    for eid, rec in list(doc["check"].items()):
        if "illegal" in json.dumps(rec) or "exited" in rec.get("error", ""):
            rec["blocking"] = _collect(eid, _child(libs, eid, tmp, args, blocking=True), tmp, blocking=True)
    (out / "tvm_gpu.json").write_text(json.dumps(doc, indent=1, default=str))
    for e in benches:
        doc["bench"][e["id"]] = _report(e["id"], _collect(e["id"], _child(libs, e["id"], tmp, args), tmp))
        (out / "tvm_gpu.json").write_text(json.dumps(doc, indent=1, default=str))
    (out / "tvm_gpu.md").write_text(gpu_device.table(doc))
    print(gpu_device.table(doc))
    return 0 if all(r.get("ok") for part in ("check", "bench") for r in doc[part].values()) else 1


def _picked(eid: str, only: str, skip: str = "") -> bool:
    wanted = not only or any(s in eid for s in only.split(","))
    return wanted and not (skip and any(s in eid for s in skip.split(",")))


def _report(eid: str, rec: dict[str, Any]) -> dict[str, Any]:
    print(eid, json.dumps({k: v for k, v in rec.items() if k not in ("traceback", "log")}, default=str)[:700])
    return rec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="step", required=True)
    pr = sub.add_parser("prepare")
    pr.add_argument("--out", type=Path, default=Path(".gpu"))
    pr.add_argument("--target", default="cuda", help="x86: libraries for a dry run of `run --device cpu` here")
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, required=True)
    o = sub.add_parser("one", help="one entry (used by run)")
    o.add_argument("--id", required=True)
    o.add_argument("--result", type=Path, required=True)
    for q in (r, o):
        _run_options(q)
    args = p.parse_args(argv)
    import_livc()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    if args.step == "prepare":
        return prepare(args.out, args.target)
    if args.step == "one":
        return one(args.libs, args.id, args.result, args)
    return run(args.libs, args.out, args)


def _run_options(r: argparse.ArgumentParser) -> None:
    r.add_argument("--libs", type=Path, default=Path(".gpu"))
    r.add_argument("--prefill", type=int, default=512)
    r.add_argument("--decode", type=int, default=64)
    r.add_argument("--reps", type=int, default=5)
    r.add_argument("--only", default="", help="comma-separated substrings of entry ids to run")
    r.add_argument("--skip", default="", help="comma-separated substrings of entry ids not to run")
    r.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline")
    r.add_argument("--device", default="cuda", choices=("cuda", "cpu"))


if __name__ == "__main__":
    sys.exit(main())
