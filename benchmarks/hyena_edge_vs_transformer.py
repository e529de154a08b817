"""Hyena Edge (examples/hyena_edge.liv) vs its Transformer++ baseline (examples/transformer_pp.liv), built by livc.

Both models are built with livc's PyTorch backend (random weights) and compared side by side in one
process, the two models interleaved at every prompt length L (default 128 ... 4096):

    prefill   latency of init_cache(1, L + n) + prefill(L tokens) (logits at every position, as the
              generated module returns them)
    decode    ms/token of n = --decode-tokens decode_step calls after that prompt
    memory    peak above the weights while allocating the cache and prefilling, and the extra peak of
              the decode steps after it (CUDA: torch.cuda.max_memory_allocated; CPU: peak RSS through
              /proc/self/status VmHWM, reset via /proc/self/clear_refs), in a separate untimed run
    static    parameters and the cache at L (cache_min, run dtype) from livc's static cost report

Medians of --repeat runs after --warmup runs, torch.inference_mode. The seed claims Hyena Edge is up to
30% faster than the Transformer++ beyond 256 tokens and lighter at every length; the script reports what
it measures (speedup = Transformer++ time / Hyena Edge time). It also reports the batch-1 decode
roofline: (weights in the run dtype + static cache at L) / measured copy bandwidth. With --compile the
decode steps run through torch.compile(decode_step) (default mode), which removes much of the per-op
launch overhead; prefill and the memory runs stay eager.

    python benchmarks/hyena_edge_vs_transformer.py [--device cpu|cuda] [--dtype fp32|bf16] [--quick]
        [--lengths 128 256 ...] [--decode-tokens N] [--compile]

Writes benchmarks/results/hyena_edge_vs_transformer[_compiled]_<device>_<dtype>[_quick].json and, next to
it, a plot with the same name (.png): latency and memory vs L, log x.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from common import (
    DTYPES,
    EXAMPLES,
    MiB,
    Roofline,
    Timing,
    add_common_args,
    console,
    copy_bandwidth,
    default_out,
    describe_machine,
    fmt,
    fmt_ratio,
    machine_info,
    make_table,
    measure_peak,
    read_bandwidth,
    setup_torch,
    synchronize,
    time_once,
    write_json,
)
from rich.console import Console
from torch import nn

from livc.backends.pytorch.load import build
from livc.compiler.analysis.costs import CostReport
from livc.compiler.analysis.evaluate import Context, numbers
from livc.compiler.ir.nodes import DType
from livc.compiler.pipeline import analyze_path

SUBJECTS = {"Hyena Edge": EXAMPLES / "hyena_edge.liv", "Transformer++": EXAMPLES / "transformer_pp.liv"}
HYENA, BASELINE = "Hyena Edge", "Transformer++"
LENGTHS = (128, 256, 512, 1024, 2048, 4096)
QUICK_LENGTHS = (128, 256)
RUN_DTYPE = {"fp32": DType.F32, "bf16": DType.BF16}
PARAM_TOLERANCE = 0.005


@dataclass
class Subject:
    name: str
    path: Path
    model: nn.Module
    report: CostReport
    decode_fn: Callable[..., torch.Tensor]  # model.decode_step, or torch.compile of it (--compile)

    def static_cache_bytes(self, length: int, dtype: DType) -> int:
        return numbers(self.report.total, Context(1, length, dtype), self.report.dtype_bytes).cache_min_bytes

    def weight_bytes(self, dtype: DType) -> int:
        return self.report.params * dtype.bytes


def load_subjects(device: str, dtype: torch.dtype, compile_decode: bool) -> list[Subject]:
    subjects = []
    for name, path in SUBJECTS.items():
        torch.manual_seed(0)
        model = build(path).model_class().eval().to(device=device, dtype=dtype)
        decode_fn = torch.compile(model.decode_step) if compile_decode else model.decode_step
        subjects.append(Subject(name, path, model, analyze_path(path).reports[0], decode_fn))
    return subjects


# --------------------------------------------------------------------------------------------- measurements


@dataclass(frozen=True)
class Workload:
    """One prompt length: the prompt ids, the decode tokens, the device and dtype."""

    ids: torch.Tensor
    tokens: torch.Tensor
    device: str
    dtype: torch.dtype

    @property
    def max_len(self) -> int:
        return self.ids.shape[1] + self.tokens.shape[1]

    def prefill(self, model: nn.Module) -> dict[str, torch.Tensor]:
        cache = model.init_cache(1, self.max_len, self.dtype, self.device)
        model.prefill(self.ids, cache)
        return cache

    def decode(self, step: Callable[..., torch.Tensor], cache: dict[str, torch.Tensor]) -> None:
        for i in range(self.tokens.shape[1]):
            step(self.tokens[:, i : i + 1], cache)


def make_workload(length: int, n_decode: int, device: str, dtype: torch.dtype) -> Workload:
    gen = torch.Generator().manual_seed(length)
    ids = torch.randint(0, 65536, (1, length), generator=gen).to(device)
    tokens = torch.randint(0, 65536, (1, n_decode), generator=gen).to(device)
    return Workload(ids, tokens, device, dtype)


def prefill_seconds(model: nn.Module, work: Workload) -> float:
    return time_once(lambda: work.prefill(model), work.device)


def decode_seconds_per_token(
    step: Callable[..., torch.Tensor], work: Workload, cache: dict[str, torch.Tensor]
) -> float:
    """Decode the n tokens again from position L of an already prefilled static cache (rewinding `pos`)."""
    cache["pos"].fill_(work.ids.shape[1])
    synchronize(work.device)
    return time_once(lambda: work.decode(step, cache), work.device) / work.tokens.shape[1]


def peak_memory(model: nn.Module, work: Workload) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Peak bytes above the weights for cache + prefill, and above the post-prefill state for the decode steps.

    Also returns the prefilled cache, which the decode timings reuse.
    """
    holder: dict[str, dict[str, torch.Tensor]] = {}

    def prefill() -> None:
        holder["cache"] = work.prefill(model)

    prefill_peak, method = measure_peak(prefill, work.device)
    decode_peak, _ = measure_peak(lambda: work.decode(model.decode_step, holder["cache"]), work.device)
    return {"prefill_peak_bytes": prefill_peak, "decode_peak_bytes": decode_peak, "method": method}, holder["cache"]


def interleaved(
    subjects: list[Subject], measure: Callable[[Subject], float], warmup: int, repeat: int
) -> dict[str, Timing]:
    """Warm each model up, then run the repeats round-robin over the models (drift hits both alike)."""
    for subject in subjects:
        for _ in range(warmup):
            measure(subject)
    samples: dict[str, list[float]] = {s.name: [] for s in subjects}
    for _ in range(repeat):
        for subject in subjects:
            samples[subject.name].append(measure(subject))
    return {name: Timing.of(values) for name, values in samples.items()}


def warm_up(subjects: list[Subject], args: argparse.Namespace) -> None:
    """One short prefill + decode per model, so that one-time allocations and lazy initialisation are done."""
    work = make_workload(16, 2, args.device, DTYPES[args.dtype])
    for s in subjects:
        work.decode(s.model.decode_step, work.prefill(s.model))
    synchronize(args.device)


def measure_length(
    subjects: list[Subject],
    length: int,
    args: argparse.Namespace,
    bandwidths: tuple[float, float],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Every number for one prompt length, both models."""
    dtype, run_dtype = DTYPES[args.dtype], RUN_DTYPE[args.dtype]
    work = make_workload(length, args.decode_tokens, args.device, dtype)
    prefill = interleaved(subjects, lambda s: prefill_seconds(s.model, work), args.warmup, args.repeat)
    memory: dict[str, dict[str, Any]] = {}
    caches: dict[str, dict[str, torch.Tensor]] = {}
    for s in subjects:  # untimed: memory peaks; the caches it leaves are reused by the decode timings
        memory[s.name], caches[s.name] = peak_memory(s.model, work)
    decode = interleaved(
        subjects,
        lambda s: decode_seconds_per_token(s.decode_fn, work, caches[s.name]),
        max(args.warmup, 1 if args.compile else 0),
        args.repeat,
    )
    caches.clear()
    row: dict[str, Any] = {"L": length}
    for s in subjects:
        line = Roofline(s.weight_bytes(run_dtype), s.static_cache_bytes(length, run_dtype), *bandwidths)
        decode_ms = decode[s.name].median * 1e3
        row[s.name] = {
            "prefill_ms": prefill[s.name].median * 1e3,
            "prefill_s": prefill[s.name].to_json(),
            "decode_ms_per_token": decode_ms,
            "decode_s_per_token": decode[s.name].to_json(),
            "static_cache_bytes": s.static_cache_bytes(length, run_dtype),
            "weight_bytes": s.weight_bytes(run_dtype),
            "roofline_ms_per_token": line.ms_per_token,
            "decode_roofline_fraction": line.fraction(decode_ms),
            "decode_read_roofline_fraction": line.read_fraction(decode_ms),
            **memory[s.name],
        }
    h, b = row[HYENA], row[BASELINE]
    row["hyena_prefill_speedup"] = b["prefill_ms"] / h["prefill_ms"]
    row["hyena_decode_speedup"] = b["decode_ms_per_token"] / h["decode_ms_per_token"]
    row["hyena_prefill_memory_ratio"] = h["prefill_peak_bytes"] / max(1, b["prefill_peak_bytes"])
    log(
        f"  L={length}: prefill {h['prefill_ms']:.1f} / {b['prefill_ms']:.1f} ms, decode "
        f"{h['decode_ms_per_token']:.2f} / {b['decode_ms_per_token']:.2f} ms/token, prefill peak "
        f"{h['prefill_peak_bytes'] / MiB:.0f} / {b['prefill_peak_bytes'] / MiB:.0f} MiB (Hyena Edge / Transformer++)"
    )
    return row


# --------------------------------------------------------------------------------------------- output


def render(out: Console, rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    columns = (
        "L",
        "prefill ms H / T",
        "speedup",
        "decode ms/tok H / T",
        "speedup",
        "peak MiB H / T",
        "decode peak MiB H / T",
        "static cache MiB H / T",
        "roofline H / T",
    )
    table_rows = []
    for r in rows:
        h, b = r[HYENA], r[BASELINE]
        table_rows.append(
            (
                str(r["L"]),
                f"{fmt(h['prefill_ms'], 1)} / {fmt(b['prefill_ms'], 1)}",
                fmt_ratio(r["hyena_prefill_speedup"]),
                f"{fmt(h['decode_ms_per_token'])} / {fmt(b['decode_ms_per_token'])}",
                fmt_ratio(r["hyena_decode_speedup"]),
                f"{fmt(h['prefill_peak_bytes'] / MiB, 0)} / {fmt(b['prefill_peak_bytes'] / MiB, 0)}",
                f"{fmt(h['decode_peak_bytes'] / MiB, 1)} / {fmt(b['decode_peak_bytes'] / MiB, 1)}",
                f"{fmt(h['static_cache_bytes'] / MiB, 1)} / {fmt(b['static_cache_bytes'] / MiB, 1)}",
                f"{100 * h['decode_roofline_fraction']:.0f}% / {100 * b['decode_roofline_fraction']:.0f}%",
            )
        )
    mode = "decode torch.compile" if args.compile else "eager"
    title = (
        f"Hyena Edge (H) vs Transformer++ (T), livc PyTorch {mode}, {args.device} {args.dtype}, decode "
        f"{args.decode_tokens} tokens, medians of {args.repeat}; speedup = T time / H time"
    )
    out.print(make_table(title, columns, table_rows))


def claims(rows: list[dict[str, Any]]) -> dict[str, str]:
    """The seed's two claims, against the measurements."""
    beyond = [r for r in rows if r["L"] > 256]
    text: dict[str, str] = {}
    if beyond:
        best_p = max(r["hyena_prefill_speedup"] for r in beyond)
        best_d = max(r["hyena_decode_speedup"] for r in beyond)
        text["faster_beyond_256"] = (
            f"L > 256: Hyena Edge prefill speedup {min(r['hyena_prefill_speedup'] for r in beyond):.2f}x .. "
            f"{best_p:.2f}x, decode speedup {min(r['hyena_decode_speedup'] for r in beyond):.2f}x .. {best_d:.2f}x "
            f"(claim: up to 1.30x)"
        )
    lighter = [r["L"] for r in rows if r[HYENA]["prefill_peak_bytes"] < r[BASELINE]["prefill_peak_bytes"]]
    cache_lighter = all(r[HYENA]["static_cache_bytes"] < r[BASELINE]["static_cache_bytes"] for r in rows)
    text["lighter"] = (
        f"Hyena Edge peak memory lower at L = {lighter} of {[r['L'] for r in rows]}; static cache "
        f"lower at every L: {cache_lighter}"
    )
    return text


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = [r["L"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    panels = (
        ("prefill latency (ms)", lambda d: d["prefill_ms"]),
        ("decode latency (ms/token)", lambda d: d["decode_ms_per_token"]),
        ("peak memory above weights, prefill (MiB)", lambda d: d["prefill_peak_bytes"] / MiB),
    )
    for ax, (label, value) in zip(axes, panels, strict=True):
        for name, marker in ((HYENA, "o"), (BASELINE, "s")):
            ax.plot(lengths, [value(r[name]) for r in rows], marker=marker, label=name)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("prompt length L (tokens)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    for name, style in ((HYENA, "C0--"), (BASELINE, "C1--")):
        axes[2].plot(
            lengths,
            [r[name]["static_cache_bytes"] / MiB for r in rows],
            style,
            label=f"{name} static cache (cost model)",
        )
    axes[0].set_yscale("log")
    axes[2].set_yscale("log")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument(
        "--lengths",
        type=int,
        nargs="+",
        default=None,
        help=f"prompt lengths (default {LENGTHS}; quick {QUICK_LENGTHS})",
    )
    parser.add_argument("--decode-tokens", type=int, default=None, help="decode steps timed per length (32; quick 4)")
    parser.add_argument("--plot", type=Path, default=None, help="plot path (default next to the JSON)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="time decode through torch.compile(decode_step) (default mode; memory stays eager)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.lengths = args.lengths or list(QUICK_LENGTHS if quick else LENGTHS)
    args.decode_tokens = args.decode_tokens or (4 if quick else 32)
    args.repeat = args.repeat or (1 if quick else 3)
    args.warmup = args.warmup if args.warmup is not None else 1
    stem = "hyena_edge_vs_transformer" + ("_compiled" if args.compile else "")
    args.out = args.out or default_out(stem, args.device, args.dtype, quick)
    args.plot = args.plot or args.out.with_suffix(".png")
    return args


def static_summary(subjects: list[Subject]) -> dict[str, Any]:
    params = {s.name: s.report.params for s in subjects}
    diff = abs(params[HYENA] - params[BASELINE]) / params[BASELINE]
    return {
        "params": params,
        "relative_difference": diff,
        "within_0.5%": diff <= PARAM_TOLERANCE,
        "module_params": {s.name: sum(p.numel() for p in s.model.parameters()) for s in subjects},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = console()
    threads = setup_torch(args.device, args.threads)
    info = machine_info(args.device, threads)
    out.print(f"[bold]hyena_edge_vs_transformer[/]: {describe_machine(info)}; torch.get_num_threads() = {threads}")
    out.print(
        f"device {args.device}, dtype {args.dtype}, lengths {args.lengths}, decode tokens {args.decode_tokens}, "
        f"warm-up {args.warmup}, repeats {args.repeat}"
    )
    rows: list[dict[str, Any]] = []
    payload: dict[str, Any] = {
        "benchmark": "hyena_edge_vs_transformer",
        "machine": info,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "complete": False,
        "rows": rows,
    }
    with torch.inference_mode():
        subjects = load_subjects(args.device, DTYPES[args.dtype], args.compile)
        payload["static"] = static = static_summary(subjects)
        out.print(
            f"parameters (static cost report): {static['params']}, difference "
            f"{100 * static['relative_difference']:.2f}% (within 0.5%: {static['within_0.5%']}); "
            f"module counts {static['module_params']}"
        )
        bandwidths = copy_bandwidth(args.device), read_bandwidth(args.device)
        payload["copy_bandwidth_GBps"], payload["read_bandwidth_GBps"] = (b / 1e9 for b in bandwidths)
        out.print(
            f"copy bandwidth (read + write): {bandwidths[0] / 1e9:.1f} GB/s; read-only: {bandwidths[1] / 1e9:.1f} GB/s"
        )
        warm_up(subjects, args)
        for length in args.lengths:
            rows.append(measure_length(subjects, length, args, bandwidths, out.print))
            write_json(args.out, payload)  # partial results survive a time limit
    render(out, rows, args)
    payload["claims"] = verdicts = claims(rows)
    for text in verdicts.values():
        out.print(text)
    title = f"livc: Hyena Edge vs Transformer++ ({info.get('gpu') or info['cpu_model']}, {args.dtype})"
    payload["plot"] = str(plot(rows, args.plot, title))
    payload["complete"] = True
    out.print(f"wrote {write_json(args.out, payload)} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
