"""TVM CUDA benchmark and correctness check on one NVIDIA GPU (H200), against the PyTorch backend.

    python benchmarks/tvm_gpu.py --out DIR                 # benchmark: LFM2-350M and Hyena Edge (full size)
    python benchmarks/tvm_gpu.py --check --out DIR         # correctness: reduced-width models, CUDA vs torch
    python benchmarks/tvm_gpu.py --build-only --out DIR    # no GPU needed: build the CUDA code, count kernels

Benchmark (per model): prefill of `--prefill` (512) tokens, then `--decode` (64) greedy decode steps after that
prefill; TVM CUDA with f16 matrix weights (f32 activations) vs the PyTorch backend in bf16, eager and
torch.compile'd (default mode). Decode is also given as a fraction of the HBM roofline: the bytes one step must
read (every stored weight array once, the tied head included; the KV / history cache up to the position; fixed
states) divided by `--hbm-tbs` (default 4.8 TB/s, the H200 data-sheet figure; the issue quotes ~4.2 measured).
Weights are the PyTorch backend's initialisation (seed 0): timing does not depend on the values.
Check: for reduced-width versions of the examples, TVM CUDA (f32 weights) prefill logits and decode-step logits
vs the PyTorch backend (f32, on the GPU), max abs difference relative to the logits' scale; fails above 1e-3.
Writes DIR/tvm_gpu.json (every number, build times, errors) and prints a table.
Self-contained: run from the repository root (the folder is the `livc` package; it is put on sys.path under that
name when not installed). Needs torch (CUDA) and apache-tvm 0.27 with apache-tvm-ffi==0.1.14.post1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"lfm2_350m": {}, "hyena_edge": {}}
CHECKS = {
    "lfm2_350m": dict(vocab=256, d=64, heads=4, kv_heads=2, ff_dim=128),
    "hyena_edge": dict(vocab=256, d=64, heads=4, kv_heads=2, ffn=128),
    "transformer_pp": dict(vocab=256, d=64, n_layers=2, heads=4, kv_heads=2, ffn=128),
    "mamba_hybrid": dict(vocab=256, d=64, heads=4, kv_heads=2, ffn=128, state=8),
    "striped_hyena2": dict(vocab=256, d=64, heads=4, ffn=128, groups=8),
}


def _import_livc() -> None:
    try:
        import livc  # noqa: F401
    except ImportError:
        link = Path(tempfile.mkdtemp()) / "livc"
        link.symlink_to(ROOT)
        sys.path.insert(0, str(link.parent))


def _models(name: str, overrides: dict) -> tuple[Any, Any]:
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


def _build(lowered: Any, fmt: str, max_len: int) -> tuple[Any, float]:
    from livc.backends.tvm import targets
    from livc.backends.tvm.compile import BuildOptions, build

    start = time.perf_counter()
    built = build(lowered, BuildOptions(target=targets.resolve("cuda"), weights=fmt, max_len=max_len))
    return built, time.perf_counter() - start


def _kernels(built: Any) -> int:
    def walk(m: Any) -> list[Any]:
        return [m] + [x for i in m.imports for x in walk(i)]

    mods = [m for m in walk(built.executable.mod) if m.kind == "cuda"]
    return sum(m.inspect_source().count('extern "C" __global__') for m in mods[:1])


def _stats(seconds: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(seconds) * 1e3, "min_ms": min(seconds) * 1e3, "n": len(seconds)}


def _sync() -> None:
    import torch

    torch.cuda.synchronize()


# --------------------------------------------------------------------------------------------- TVM


def _tvm_session(built: Any, state: dict) -> Any:
    import tvm

    from livc.backends.tvm.runtime import Session

    return Session(built, state, device=tvm.cuda(0))


def _tvm_times(session: Any, ids: Any, decode: int, reps: int) -> dict[str, Any]:
    import numpy as np
    import tvm

    dev = session.device
    tokens = tvm.runtime.tensor(np.asarray(ids, dtype=np.int32).reshape(1, -1), dev)
    pre: list[float] = []
    for _ in range(reps + 1):
        session.init_cache()
        dev.sync()
        t0 = time.perf_counter()
        logits = session._run("prefill", tokens)  # noqa: SLF001 - timed without the cache allocation
        dev.sync()
        pre.append(time.perf_counter() - t0)
    session.pos = len(ids)
    token = int(np.argmax(logits[0]))
    steps: list[float] = []
    for _ in range(decode):
        t0 = time.perf_counter()
        token = int(np.argmax(session.decode(token)[0]))
        steps.append(time.perf_counter() - t0)
    return {"prefill": _stats(pre[1:]), "decode": _stats(steps[2:] or steps)}


def _step_bytes(plan: Any, pos: int) -> int:
    import numpy as np

    total = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in plan.weight_inputs)
    for e in plan.cache:
        size = int(np.prod(e.shape)) * np.dtype(e.dtype).itemsize
        if e.position_axis is not None:
            size = size * min(pos + 1, e.shape[e.position_axis]) // e.shape[e.position_axis]
        total += size
    return total


# --------------------------------------------------------------------------------------------- torch


def _torch_module(canonical: Any, state: dict, dtype: Any) -> Any:

    from livc.backends.tvm.bench import torch_module

    return torch_module(canonical, state).to(device="cuda", dtype=dtype)


def _torch_times(module: Any, ids: Any, decode: int, reps: int, max_len: int, compiled: bool) -> dict[str, Any]:
    import torch

    tokens = torch.as_tensor(ids, dtype=torch.long, device="cuda")[None]
    prefill, step = module.prefill, module.decode_step
    if compiled:
        prefill, step = torch.compile(module.prefill), torch.compile(module.decode_step)
    pre: list[float] = []
    with torch.no_grad():
        for _ in range(reps + 1):
            cache = module.init_cache(1, max_len)
            _sync()
            t0 = time.perf_counter()
            logits = prefill(tokens, cache, last_only=True)
            _sync()
            pre.append(time.perf_counter() - t0)
        token = logits[..., -1, :].argmax(-1).reshape(1, 1) if logits.dim() == 3 else logits.argmax(-1).reshape(1, 1)
        steps: list[float] = []
        for _ in range(decode + (3 if compiled else 0)):
            t0 = time.perf_counter()
            out = step(token, cache)
            token = out.reshape(1, -1).argmax(-1).reshape(1, 1)
            _sync()
            steps.append(time.perf_counter() - t0)
    return {"prefill": _stats(pre[1:]), "decode": _stats(steps[3:] if compiled else steps[2:])}


# --------------------------------------------------------------------------------------------- runs


def bench(args: argparse.Namespace, out: dict) -> None:
    import numpy as np
    import torch

    from livc.backends.tvm.checkpoint import initial_state

    max_len = args.prefill + args.decode + 8
    for name, overrides in MODELS.items():
        rec: dict[str, Any] = {}
        out["bench"][name] = rec
        try:
            lowered, canonical = _models(name, overrides)
            state = initial_state(canonical, 0)
            ids = np.random.default_rng(0).integers(0, lowered.vocab, size=args.prefill).astype(np.int32)
            built, secs = _build(lowered, "f16", max_len)
            rec["tvm_build_s"] = secs
            rec["cuda_kernels"] = _kernels(built)
            rec["tvm_cuda_f16"] = _tvm_times(_tvm_session(built, state), ids, args.decode, args.reps)
            step = _step_bytes(built.plan, args.prefill + args.decode // 2)
            rec["decode_bytes"] = step
            rec["roofline_ms"] = step / (args.hbm_tbs * 1e12) * 1e3
            rec["tvm_roofline_fraction"] = rec["roofline_ms"] / rec["tvm_cuda_f16"]["decode"]["median_ms"]
            del built
        except Exception as exc:  # noqa: BLE001 - record it, go on with the baselines
            rec["tvm_error"] = f"{type(exc).__name__}: {exc}"
            rec["tvm_traceback"] = traceback.format_exc()[-4000:]
        for label, compiled in (("torch_eager_bf16", False), ("torch_compile_bf16", True)):
            try:
                module = _torch_module(canonical, state, torch.bfloat16)
                rec[label] = _torch_times(module, ids, args.decode, args.reps, max_len, compiled)
                del module
            except Exception as exc:  # noqa: BLE001
                rec[label + "_error"] = f"{type(exc).__name__}: {exc}"
            torch.cuda.empty_cache()
        _dump(args, out)


def check(args: argparse.Namespace, out: dict) -> bool:
    import numpy as np
    import torch

    from livc.backends.tvm.checkpoint import initial_state

    ok = True
    for name, overrides in CHECKS.items():
        rec: dict[str, Any] = {}
        out["check"][name] = rec
        try:
            lowered, canonical = _models(name, overrides)
            state = initial_state(canonical, 1)
            built, rec["build_s"] = _build(lowered, "f32", 64)
            session = _tvm_session(built, state)
            module = _torch_module(canonical, state, torch.float32)
            ids = np.random.default_rng(1).integers(0, lowered.vocab, size=11)
            diffs = []
            with torch.no_grad():
                cache = module.init_cache(1, 64)
                want = module.prefill(torch.as_tensor(ids, device="cuda")[None], cache, last_only=True)
                want = want.reshape(1, -1).float().cpu().numpy()
                got = session.prefill(ids)
                diffs.append(float(np.abs(got - want).max() / max(1.0, np.abs(want).max())))
                token = int(np.argmax(want[0]))
                for _ in range(6) if built.decodes else ():
                    w = module.decode_step(torch.tensor([[token]], device="cuda"), cache).reshape(1, -1)
                    w = w.float().cpu().numpy()
                    diffs.append(float(np.abs(session.decode(token) - w).max() / max(1.0, np.abs(w).max())))
                    token = int(np.argmax(w[0]))
            rec["max_rel_diff"] = max(diffs)
            rec["ok"] = max(diffs) < 1e-3
        except Exception as exc:  # noqa: BLE001
            rec["error"] = f"{type(exc).__name__}: {exc}"
            rec["traceback"] = traceback.format_exc()[-4000:]
            rec["ok"] = False
        ok = ok and rec["ok"]
        _dump(args, out)
    return ok


def build_only(args: argparse.Namespace, out: dict) -> None:
    for name, overrides in MODELS.items():
        rec: dict[str, Any] = {}
        out["build"][name] = rec
        try:
            lowered, _ = _models(name, overrides)
            built, rec["build_s"] = _build(lowered, "f16", args.prefill + args.decode + 8)
            rec["cuda_kernels"] = _kernels(built)
            rec["decode_bytes"] = _step_bytes(built.plan, args.prefill + args.decode // 2)
        except Exception as exc:  # noqa: BLE001
            rec["error"] = f"{type(exc).__name__}: {exc}"
        _dump(args, out)


def _dump(args: argparse.Namespace, out: dict) -> None:
    path = Path(args.out) / "tvm_gpu.json"
    path.write_text(json.dumps(out, indent=2, default=str))


def _table(out: dict) -> str:
    lines = ["| model | backend | prefill ms | decode ms/token | decode % roofline |", "|---|---|---|---|---|"]
    for name, rec in out.get("bench", {}).items():
        roof = rec.get("roofline_ms")
        for label in ("tvm_cuda_f16", "torch_eager_bf16", "torch_compile_bf16"):
            r = rec.get(label)
            if r is None:
                lines.append(f"| {name} | {label} | error: {rec.get(label + '_error', rec.get('tvm_error'))} | | |")
                continue
            d = r["decode"]["median_ms"]
            pct = f"{100 * roof / d:.1f}%" if roof else "-"
            lines.append(f"| {name} | {label} | {r['prefill']['median_ms']:.2f} | {d:.3f} | {pct} |")
    for name, rec in out.get("check", {}).items():
        lines.append(f"check {name}: {rec}")
    for name, rec in out.get("build", {}).items():
        lines.append(f"build {name}: {rec}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--check", action="store_true", help="correctness vs the PyTorch backend (reduced width)")
    p.add_argument("--build-only", action="store_true", help="build the CUDA code only (no GPU needed)")
    p.add_argument("--prefill", type=int, default=512)
    p.add_argument("--decode", type=int, default=64)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--hbm-tbs", type=float, default=4.8)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    _import_livc()
    out: dict[str, Any] = {"args": vars(args), "bench": {}, "check": {}, "build": {}}
    ok = True
    if args.build_only:
        build_only(args, out)
    elif args.check:
        ok = check(args, out)
    else:
        import torch

        out["device"] = torch.cuda.get_device_name(0)
        ok = check(args, out)
        bench(args, out)
    _dump(args, out)
    print(_table(out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
