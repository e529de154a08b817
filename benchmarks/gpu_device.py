"""The GPU-machine side of benchmarks/tvm_gpu.py: no TVM compiler, only torch + apache-tvm-ffi + runtime libraries.

evaluate(entry, libs, runtime, args) -> record: regenerate the weights (PyTorch backend init, fixed seed),
check the prepared library's signature, then the check (vs torch f32 on the same stored weights) and, for
bench entries, the timings. See tvm_gpu.py's docstring for the method.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import common
import numpy as np
import torch
from tvm_gpu import models, signature

TOL = 1e-3
DATASHEET_TBS = 4.8
DEVICE = "cuda"  # "cpu": a dry run of the whole flow on this host (x86 libraries from `prepare --target x86`)


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def load(runtime_dir: Path) -> tuple[Path, ...]:
    from livc.backends.tvm.ffi_runtime import load_runtime, runtime_libraries

    if DEVICE == "cuda":
        torch.cuda.init()  # libcudart.so.13 in the process before libtvm_runtime_cuda.so asks for it
    paths = runtime_libraries(cuda=DEVICE == "cuda", libdir=runtime_dir)
    load_runtime(paths)
    return paths


def copy_bandwidth() -> float:
    """Device-to-device copy, bytes read + written per second, TB/s (benchmarks/common.py's measurement)."""
    return common.copy_bandwidth(DEVICE, 2 * 1024**3 if DEVICE == "cuda" else 256 * 1024**2) / 1e12


def torch_module(canonical: Any, state: dict[str, np.ndarray], dtype: torch.dtype) -> Any:
    from livc.backends.tvm.bench import torch_module as build_module

    return build_module(canonical, state).to(device=DEVICE, dtype=dtype).eval()


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.float().reshape(-1), want.float().reshape(-1)
    return float((got - want).abs().max() / max(1.0, float(want.abs().max())))


def _torch_logits(module: Any, ids: np.ndarray, steps: int, max_len: int) -> list[torch.Tensor]:
    cache = module.init_cache(1, max_len)
    tokens = torch.as_tensor(ids, dtype=torch.long, device=DEVICE)[None]
    T = len(ids) - steps
    with torch.no_grad():
        out = [module.prefill(tokens[:, :T], cache, last_only=True).reshape(1, -1)]
        for s in range(steps):
            out.append(module.decode_step(tokens[:, T + s : T + s + 1], cache).reshape(1, -1))
    return out


def _tvm_logits(session: Any, ids: np.ndarray, steps: int) -> list[torch.Tensor]:
    T = len(ids) - steps
    out = [session.prefill(ids[:T])]
    out += [session.decode(int(ids[T + s])) for s in range(steps)]
    return out


def check(session: Any, canonical: Any, plan: Any, state: dict, decodes: bool, T: int = 11) -> dict[str, Any]:
    steps = 6 if decodes else 0
    vocab = int(canonical.vocab)
    ids = np.random.default_rng(1).integers(0, vocab, size=T + steps).astype(np.int64)
    got = _tvm_logits(session, ids, steps)
    rec: dict[str, Any] = {}
    from livc.backends.tvm.plan import as_stored

    for label, st in (("vs_stored", as_stored(plan, state)), ("vs_f32", state)):
        module = torch_module(canonical, st, torch.float32)
        want = _torch_logits(module, ids, steps, plan.max_len)
        diffs = [_rel(g, w) for g, w in zip(got, want, strict=True)]
        rec[label] = max(diffs)
        rec[label + "_steps"] = [float(f"{d:.3g}") for d in diffs]  # prefill, then each decode step
        if label == "vs_stored":
            rec["greedy_agree"] = float(
                np.mean([int(g.argmax()) == int(w.argmax()) for g, w in zip(got, want, strict=True)])
            )
        del module
    rec["ok"] = rec["vs_stored"] < TOL
    return rec


def evaluate(e: dict[str, Any], libs: Path, runtime: tuple[Path, ...], args: Any) -> dict[str, Any]:
    from livc.backends.tvm.checkpoint import initial_state
    from livc.backends.tvm.ffi_runtime import FfiSession
    from livc.backends.tvm.plan import make_plan

    if "build_error" in e:
        return {"error": "build: " + e["build_error"], "ok": False}
    lowered, canonical = models(e["name"], e["overrides"])
    plan = make_plan(lowered, e["fmt"], e["max_len"])
    if signature(plan) != e["signature"]:
        return {"error": "the library's weight/cache signature differs from this checkout's plan", "ok": False}
    state = initial_state(canonical, 0 if e["kind"] == "bench" else 1)
    fatbin = libs / f"{e['id']}.fatbin"
    binaries = {e["source_key"]: fatbin.read_bytes()} if fatbin.is_file() else {}
    session = FfiSession(libs / f"{e['id']}.so", plan, plan.pack(state), DEVICE, runtime, e["decodes"], binaries)
    from livc.backends.tvm.gpu import nvcc

    rec: dict[str, Any] = {"build_s": e["build_s"], "kernels": e["kernels"], "nvcc_s": e.get("nvcc_s")}
    rec["kernel_binaries"] = dict(nvcc.STATS)
    rec["check"] = check(session, canonical, plan, state, e["decodes"])
    rec["ok"] = rec["check"]["ok"]
    if e["kind"] == "bench":
        rec.update(bench(session, canonical, plan, state, args, graph=e["graph"]))
    return rec


# --------------------------------------------------------------------------------------------- timing


def _median_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1e3


def _ids(vocab: int, n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, vocab, size=n).astype(np.int64)


def tvm_times(session: Any, ids: np.ndarray, decode: int, reps: int) -> dict[str, float]:
    pre = []
    tokens = session.tokens(ids)
    for _ in range(reps + 1):
        session.init_cache()
        sync()
        t0 = time.perf_counter()
        logits = session.run("prefill", tokens)
        sync()
        pre.append(time.perf_counter() - t0)
    session.pos = len(ids)
    tok = logits.argmax(-1).to(torch.int32).reshape(1, 1)
    runs = []
    for _ in range(2):  # the first also warms up (CUDA graph capture)
        start_pos = session.pos
        sync()
        t0 = time.perf_counter()
        for i in range(decode):
            logits = session.run("decode_step", session.ffi.from_dlpack(tok), session.ffi.Shape((start_pos + i,)))
            tok = logits.argmax(-1).to(torch.int32).reshape(1, 1)
        sync()
        runs.append((time.perf_counter() - t0) / decode)
        session.pos = start_pos  # the second run overwrites the same positions
    return {"prefill_ms": _median_ms(pre[1:]), "decode_ms": min(runs) * 1e3, "decode_first_ms": runs[0] * 1e3}


def tvm_profile(session: Any, ids: np.ndarray, steps: int = 8) -> dict[str, Any]:
    """Kernels per decode step and their summed device time (CUDA profiler over `steps` steps)."""
    from torch.profiler import ProfilerActivity, profile

    if DEVICE != "cuda":
        return {}
    session.prefill(ids)
    tok = torch.zeros((1, 1), dtype=torch.int32, device=DEVICE)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for i in range(steps):
            session.run("decode_step", session.ffi.from_dlpack(tok), session.ffi.Shape((len(ids) + i,)))
        sync()
    events = [e for e in prof.events() if e.device_type.name == "CUDA" and e.device_time_total > 0]
    by_name: dict[str, float] = {}
    for e in events:
        by_name[e.name] = by_name.get(e.name, 0.0) + e.device_time_total
    top = sorted(by_name.items(), key=lambda kv: -kv[1])[:8]
    return {
        "kernels_per_step": len(events) / steps,
        "kernel_ms_per_step": sum(by_name.values()) / steps / 1e3,
        "top": [[n[:80], round(t / steps / 1e3, 4)] for n, t in top],
    }


def torch_times(module: Any, ids: np.ndarray, decode: int, reps: int, max_len: int, compiled: bool) -> dict[str, float]:
    tokens = torch.as_tensor(ids, dtype=torch.long, device=DEVICE)[None]
    prefill, step = module.prefill, module.decode_step
    if compiled:
        prefill, step = torch.compile(module.prefill), torch.compile(module.decode_step, dynamic=True)
    pre = []
    with torch.no_grad():
        for _ in range(reps + 1):
            cache = module.init_cache(1, max_len)
            sync()
            t0 = time.perf_counter()
            logits = prefill(tokens, cache, last_only=True)
            sync()
            pre.append(time.perf_counter() - t0)
        tok = logits.reshape(1, -1).argmax(-1).reshape(1, 1)
        for _ in range(3):  # warm-up (compilation) on positions past the timed ones
            step(tok, cache)
        runs = []
        for _ in range(2):
            sync()
            t0 = time.perf_counter()
            for _ in range(decode):
                tok = step(tok, cache).reshape(1, -1).argmax(-1).reshape(1, 1)
            sync()
            runs.append((time.perf_counter() - t0) / decode)
    return {"prefill_ms": _median_ms(pre[1:]), "decode_ms": min(runs) * 1e3}


def step_bytes(plan: Any, pos: int) -> int:
    from livc.backends.tvm.plan import cache_read_bytes, weight_bytes

    return weight_bytes(plan) + cache_read_bytes(plan, pos)


def bench(session: Any, canonical: Any, plan: Any, state: dict, args: Any, graph: bool) -> dict[str, Any]:
    ids = _ids(int(canonical.vocab), args.prefill)
    rec: dict[str, Any] = {"tvm": tvm_times(session, ids, args.decode, args.reps)}
    rec["profile"] = tvm_profile(session, ids)
    rec["decode_bytes"] = step_bytes(plan, args.prefill + args.decode)
    if graph:  # the baselines once per model (with the plain entry)
        return rec
    for label, compiled in (("torch_eager_bf16", False), ("torch_compile_bf16", True)):
        if compiled and args.no_compile:
            continue
        try:
            module = torch_module(canonical, state, torch.bfloat16)
            rec[label] = torch_times(module, ids, args.decode, args.reps, plan.max_len, compiled)
            del module
        except Exception as exc:  # noqa: BLE001 - a baseline failing is recorded, not fatal
            rec[label] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        torch.cuda.empty_cache()
    return rec


# --------------------------------------------------------------------------------------------- report


def table(doc: dict[str, Any]) -> str:
    bw = doc.get("copy_tbs", DATASHEET_TBS)
    lines = [f"device: {doc.get('device')}; measured copy bandwidth {bw:.2f} TB/s", ""]
    lines += ["| entry | engine | prefill ms | decode ms/token | of roofline (measured bw) | of roofline (4.8 TB/s) |"]
    lines += ["|---|---|---|---|---|---|"]
    for eid, rec in doc.get("bench", {}).items():
        if "error" in rec:
            lines.append(f"| {eid} | error | {rec['error'][:120]} | | | |")
            continue
        roof = rec["decode_bytes"] / (bw * 1e12) * 1e3
        sheet = rec["decode_bytes"] / (DATASHEET_TBS * 1e12) * 1e3
        for label in ("tvm", "torch_eager_bf16", "torch_compile_bf16"):
            r = rec.get(label)
            if r is None:
                continue
            if "error" in r:
                lines.append(f"| {eid} | {label} | error: {r['error'][:100]} | | | |")
                continue
            d = r["decode_ms"]
            lines.append(
                f"| {eid} | {label} | {r['prefill_ms']:.2f} | {d:.3f} | "
                f"{100 * roof / d:.1f}% | {100 * sheet / d:.1f}% |"
            )
    lines += ["", "| check entry | ok | vs stored weights | vs f32 weights | greedy agree | kernels | build s |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for eid, rec in {**doc.get("check", {}), **doc.get("bench", {})}.items():
        c = rec.get("check", {})
        if "error" in rec:
            lines.append(f"| {eid} | no | error: {rec['error'][:100]} | | | | |")
            continue
        lines.append(
            f"| {eid} | {'yes' if c['ok'] else 'NO'} | {c['vs_stored']:.2e} | {c['vs_f32']:.2e} | "
            f"{c['greedy_agree']:.2f} | {rec['kernels']} | {rec['build_s']} |"
        )
    return "\n".join(lines) + "\n"
