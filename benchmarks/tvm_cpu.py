"""TVM on the host CPU: decode and prefill rates at every weight format next to the PyTorch backend.

    python benchmarks/tvm_cpu.py [--models lfm2_350m,hyena_edge,transformer_pp] [--formats f32,f16,bf16,q8,q4]
                                 [--prompt 512] [--decode 8] [--repeat 3] [--threads 2] [--no-compile]
                                 [--long 4096] [--block] [--quick] [--out benchmarks/results/tvm_cpu.json]

Per model (full size, random weights): the PyTorch backend in f32 eager and under torch.compile, and one TVM
build per weight format, all in one process, measured round-robin (`--repeat` rounds; medians):
- prefill tok/s: one prefill of `--prompt` tokens on a fresh cache;
- decode tok/s: `--decode` decode steps right after that prefill;
- the copy bandwidth (a 1 GiB buffer, far larger than the LLC) and a read-only pass, measured inside the
  rounds, and decode as a fraction of the bandwidth roofline: (bytes of stored weights + cache bytes read at
  that position) / decode time, against the copy (read + write) and the read bandwidth;
- build times (TVM: lower + schedule + compile; torch.compile: the first calls).
`--long L`: Hyena Edge vs Transformer++ decode at position L (the cache filled to L; the time of a step does not
depend on the values) and the bytes of weights + cache. `--block`: one LFM2 block (short conv + SwiGLU, d 1024,
ffn 4608) decode step, TVM per format vs torch eager. Writes JSON and an SVG bar chart under benchmarks/results/.

TVM's thread count is fixed by TVM_NUM_THREADS, which this script sets from --threads before importing TVM.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("lfm2_350m", "hyena_edge", "transformer_pp")
FORMATS = ("f32", "f16", "bf16", "q8", "q4")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--formats", default=",".join(FORMATS))
    p.add_argument("--prompt", type=int, default=512)
    p.add_argument("--decode", type=int, default=8)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--long", type=int, default=0, help="Hyena Edge vs Transformer++ decode at this position")
    p.add_argument("--block", action="store_true", help="only the one-LFM2-block decode comparison")
    p.add_argument("--quick", action="store_true", help="prompt 32, 2 decode steps, 1 round, f32 + q4")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.prompt, args.decode, args.repeat, args.formats, args.no_compile = 32, 2, 1, "f32,q4", True
    return args


ARGS = parse_args(sys.argv[1:] if __name__ == "__main__" else [])
os.environ["TVM_NUM_THREADS"] = str(ARGS.threads)  # read by TVM's thread pool at import: set it first

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import RESULTS, copy_bandwidth, machine_info, read_bandwidth, write_json  # noqa: E402

from livc.api import to_overrides  # noqa: E402
from livc.backends.pytorch.generate import generate  # noqa: E402
from livc.backends.pytorch.load import Built as TorchBuilt  # noqa: E402
from livc.backends.tvm.compile import BuildOptions, build  # noqa: E402
from livc.backends.tvm.plan import cache_read_bytes, weight_bytes  # noqa: E402
from livc.backends.tvm.runtime import Session  # noqa: E402
from livc.compiler.pipeline import compile_source  # noqa: E402

BLOCK_LIV = """
from std.norms import RMSNorm
from std.embedding import Embedding, LMHead
from std.conv import GatedShortConv
from std.mlp import SwiGLU

model LFM2Block(vocab: int = 256, d: int = 1024, ffn: int = 4608) {
    embedding: Embedding(vocab, d)
    norm: RMSNorm(d, eps = 1e-5)
    layers: [GatedShortConv(d, kernel = 3) + SwiGLU(d, ffn)]
    final_norm: RMSNorm(d, eps = 1e-5)
    head: LMHead(vocab, d, tied = true)
    context: 4096
}
"""


# --------------------------------------------------------------------------------------------- subjects


@dataclass
class Subject:
    """One engine: `prefill(ids)` then `decode(tokens)` continuing from it; `bytes_per_token(pos)` read."""

    name: str
    prefill: Callable[[np.ndarray], object]
    decode: Callable[[np.ndarray], object]
    seek: Callable[[int], None]  # set the position of an (already allocated) cache
    weight_bytes: int
    cache_bytes: Callable[[int], int]
    build_s: float
    info: dict[str, Any] = field(default_factory=dict)


def ir(source: str, stage: str, **overrides: object) -> Any:
    result = compile_source(source, "<bench>", stop_after=stage, overrides=to_overrides(**overrides))
    if not result.ok:
        raise SystemExit(f"model does not compile: {[str(d) for d in result.diagnostics]}")
    return result.models[0]


def torch_model(source: str) -> torch.nn.Module:
    model = ir(source, "canonicalize")
    torch.manual_seed(0)
    return TorchBuilt.load(model, generate(model, "<bench>", source)).model_class(dtype=torch.float32).eval()


def torch_subject(name: str, module: torch.nn.Module, max_len: int, compiled: bool) -> Subject:
    prefill_fn = torch.compile(module.prefill) if compiled else module.prefill
    step_fn = torch.compile(module.decode_step) if compiled else module.decode_step
    holder: dict[str, Any] = {}

    def prefill(ids: np.ndarray) -> None:
        holder["cache"] = module.init_cache(1, max_len)
        with torch.no_grad():
            prefill_fn(torch.from_numpy(ids.reshape(1, -1).astype(np.int64)), holder["cache"], last_only=True)

    def decode(tokens: np.ndarray) -> None:
        with torch.no_grad():
            for t in tokens:
                step_fn(torch.tensor([[int(t)]]), holder["cache"])

    def seek(pos: int) -> None:
        holder["cache"] = module.init_cache(1, max_len)
        holder["cache"]["pos"].fill_(pos)

    weights = sum(p.numel() * 4 for p in module.parameters())
    return Subject(name, prefill, decode, seek, weights, lambda pos: 0, 0.0)


def tvm_subject(source: str, fmt: str, state: dict[str, np.ndarray], max_len: int) -> Subject:
    start = time.perf_counter()
    built = build(ir(source, "lower"), BuildOptions(weights=fmt, max_len=max_len))
    build_s = time.perf_counter() - start
    session = Session(built, state)

    def decode(tokens: np.ndarray) -> None:
        for t in tokens:
            session.decode(int(t))

    def seek(pos: int) -> None:
        session.init_cache()
        session.pos = pos

    weights = weight_bytes(built.plan)

    def cache_bytes(pos: int) -> int:
        return cache_read_bytes(built.plan, pos)

    return Subject(f"tvm {fmt}", session.prefill, decode, seek, weights, cache_bytes, build_s)


def subjects_for(source: str, formats: list[str], max_len: int, compiled: bool) -> list[Subject]:
    module = torch_model(source)
    state = {k: v.detach().float().numpy() for k, v in module.state_dict().items()}
    out = [tvm_subject(source, fmt, state, max_len) for fmt in formats]
    torch_side = [torch_subject("torch eager", module, max_len, False)]
    if compiled:
        torch_side.append(torch_subject("torch.compile", module, max_len, True))
    for s in torch_side:  # the same cache layout as TVM's plan (TEAM.md contract), all f32
        s.cache_bytes = out[0].cache_bytes if out else s.cache_bytes
    return out + torch_side


# --------------------------------------------------------------------------------------------- measuring


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def warm(subject: Subject, ids: np.ndarray, tokens: np.ndarray) -> None:
    """First calls (torch.compile compiles here: its time is the build time)."""
    subject.info["first_call_s"] = timed(lambda: (subject.prefill(ids), subject.decode(tokens[:2])))
    if subject.name == "torch.compile":
        subject.build_s = subject.info["first_call_s"]


def rounds(subjects: list[Subject], ids: np.ndarray, tokens: np.ndarray, repeat: int) -> dict[str, dict[str, list]]:
    """Round-robin: per round, each subject's prefill then decode; the bandwidths once per round."""
    samples: dict[str, dict[str, list]] = {s.name: {"prefill_s": [], "decode_s": []} for s in subjects}
    samples["memory"] = {"copy_Bps": [], "read_Bps": []}
    for r in range(repeat):
        for s in subjects:
            samples[s.name]["prefill_s"].append(timed(lambda s=s: s.prefill(ids)))
            samples[s.name]["decode_s"].append(timed(lambda s=s: s.decode(tokens)) / len(tokens))
            print(
                f"  round {r + 1}/{repeat} {s.name}: prefill {len(ids) / samples[s.name]['prefill_s'][-1]:.1f} "
                f"tok/s, decode {1 / samples[s.name]['decode_s'][-1]:.2f} tok/s",
                flush=True,
            )
        samples["memory"]["copy_Bps"].append(copy_bandwidth("cpu", repeat=3))
        samples["memory"]["read_Bps"].append(read_bandwidth("cpu", repeat=3))
    return samples


def summarize(subjects: list[Subject], samples: dict[str, dict[str, list]], prompt: int, decode: int) -> dict[str, Any]:
    copy_bw = statistics.median(samples["memory"]["copy_Bps"])
    read_bw = statistics.median(samples["memory"]["read_Bps"])
    rows = {}
    for s in subjects:
        pre = statistics.median(samples[s.name]["prefill_s"])
        dec = statistics.median(samples[s.name]["decode_s"])
        read = s.weight_bytes + s.cache_bytes(prompt + decode // 2)
        rows[s.name] = {
            "prefill_tok_s": prompt / pre,
            "decode_tok_s": 1 / dec,
            "bytes_per_token": read,
            "roofline_fraction_copy": read / copy_bw / dec,
            "roofline_fraction_read": read / read_bw / dec,
            "build_s": s.build_s,
            "samples": samples[s.name],
            **s.info,
        }
    return {"memory": {"copy_GBps": copy_bw / 1e9, "read_GBps": read_bw / 1e9, **samples["memory"]}, "rows": rows}


def long_context(models: dict[str, str], formats: list[str], pos: int, n: int, repeat: int) -> dict[str, Any]:
    """Decode at position `pos` (cache allocated for pos + n), TVM per format and torch eager, interleaved."""
    subjects: list[Subject] = []
    for name, source in models.items():
        for s in subjects_for(source, formats, pos + n + 1, compiled=False):
            s.name = f"{name} | {s.name}"
            subjects.append(s)
    tokens = np.arange(n) % 1000
    times: dict[str, list[float]] = {s.name: [] for s in subjects}
    for _ in range(repeat):
        for s in subjects:
            s.seek(pos)
            times[s.name].append(timed(lambda s=s: s.decode(tokens)) / n)
    return {
        s.name: {
            "decode_tok_s": 1 / statistics.median(times[s.name]),
            "weight_bytes": s.weight_bytes,
            "cache_bytes_at_pos": s.cache_bytes(pos),
            "samples_s": times[s.name],
        }
        for s in subjects
    }


# --------------------------------------------------------------------------------------------- output


def svg_bars(title: str, values: dict[str, float], unit: str) -> str:
    """A small horizontal bar chart (no plotting library needed)."""
    width, bar, left = 640, 22, 260
    top = max(values.values(), default=1.0) or 1.0
    rows = [f'<text x="10" y="20" font-size="14" font-family="sans-serif">{title}</text>']
    for i, (name, v) in enumerate(values.items()):
        y = 34 + i * (bar + 6)
        w = (width - left - 80) * v / top
        rows.append(f'<text x="10" y="{y + 16}" font-size="12" font-family="sans-serif">{name}</text>')
        rows.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="#4878a8"/>')
        rows.append(
            f'<text x="{left + w + 4:.1f}" y="{y + 16}" font-size="12" font-family="sans-serif">{v:.1f} {unit}</text>'
        )
    height = 44 + len(values) * (bar + 6)
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">' + "".join(rows) + "</svg>\n"


def table(results: dict[str, Any]) -> str:
    lines = [
        "| model | engine | prefill tok/s | decode tok/s | decode / copy roofline | decode / read roofline | build s |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, res in results.items():
        for name, r in res["rows"].items():
            lines.append(
                f"| {model} | {name} | {r['prefill_tok_s']:.1f} | {r['decode_tok_s']:.2f} | "
                f"{r['roofline_fraction_copy']:.2f} | {r['roofline_fraction_read']:.2f} | {r['build_s']:.1f} |"
            )
    return "\n".join(lines)


def block_mode(args: argparse.Namespace, formats: list[str]) -> dict[str, Any]:
    subjects = subjects_for(BLOCK_LIV, formats, 64, compiled=False)
    ids, tokens = np.arange(8) % 256, np.arange(32) % 256
    for s in subjects:
        warm(s, ids, tokens)
    samples = rounds(subjects, ids, tokens, max(args.repeat, 5))
    return summarize(subjects, samples, len(ids), len(tokens))


def main() -> int:
    args, formats = ARGS, ARGS.formats.split(",")
    torch.set_num_threads(args.threads)
    payload: dict[str, Any] = {
        "machine": machine_info("cpu", args.threads),
        "args": vars(args) | {"out": str(args.out)},
    }
    if args.block:
        payload["block"] = block_mode(args, formats)
        print(table({"LFM2 block": payload["block"]}))
    else:
        rng = np.random.default_rng(0)
        ids, tokens = rng.integers(0, 65536, args.prompt), rng.integers(0, 65536, args.decode)
        payload["models"] = {}
        for name in args.models.split(","):
            print(f"{name}: building", flush=True)
            subjects = subjects_for(
                (ROOT / "examples" / f"{name}.liv").read_text(),
                formats,
                args.prompt + args.decode + 1,
                not args.no_compile,
            )
            for s in subjects:
                warm(s, ids, tokens)
            payload["models"][name] = summarize(
                subjects, rounds(subjects, ids, tokens, args.repeat), args.prompt, args.decode
            )
        print(table(payload["models"]))
        if args.long:
            models = {n: (ROOT / "examples" / f"{n}.liv").read_text() for n in ("hyena_edge", "transformer_pp")}
            payload["long"] = long_context(
                models, [f for f in ("q4", "f32") if f in formats], args.long, 4, args.repeat
            )
            for k, v in payload["long"].items():
                print(
                    f"{k}: decode {v['decode_tok_s']:.2f} tok/s at {args.long}, weights "
                    f"{v['weight_bytes'] / 2**20:.0f} MiB, cache {v['cache_bytes_at_pos'] / 2**20:.1f} MiB"
                )
    stem = "tvm_cpu_block" if args.block else ("tvm_cpu_quick" if args.quick else "tvm_cpu")
    out = args.out or RESULTS / f"{stem}.json"
    stem = out.stem  # charts are named after the JSON they come with
    write_json(out, payload)
    for model, res in payload.get("models", {"block": payload.get("block")}).items():
        chart = {k: v["decode_tok_s"] for k, v in res["rows"].items()}
        (out.parent / f"{stem}_{model}_decode.svg").write_text(svg_bars(f"{model}: decode tok/s", chart, "tok/s"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
