"""livc's generated PyTorch LFM2-350M vs transformers' Lfm2ForCausalLM, the same random weights in both.

Builds examples/lfm2_350m.liv with the PyTorch backend and an HF `Lfm2ForCausalLM` from the matching
`Lfm2Config` (hidden 1024, 16 layers with attention at 2, 5, 8, 10, 12, 14, 16 / 8 heads,
block_ff_dim 6656 auto-adjusted to 4608, vocab 65536, tied head), copies HF's random weights into the
livc module, checks that the parameter counts (livc module, HF model, static cost report) are equal
and that the logits agree (forward, prefill and cached decode), then times, side by side and
interleaved in one process under torch.inference_mode:

    prefill   tokens/s for one prompt of --prompt tokens (cache allocation included on both sides;
              HF: model(ids, use_cache=True), which makes its hybrid DynamicCache; logits at
              every position on both sides)
    decode    ms/token for --new-tokens tokens fed one at a time after that prompt (HF: its
              hybrid DynamicCache; livc: decode_step on the static cache); fixed random tokens, so
              both sides do identical work

for livc eager, transformers eager and (unless --no-compile) livc under torch.compile (default
mode; prefill and decode_step compiled separately; compile time = the first call's time, reported
apart). Medians of --repeat runs after --warmup runs. The batch-1 decode roofline is
(weights in the run dtype + the static cache at the prompt length) / the measured copy bandwidth.

    python benchmarks/torch_vs_hf.py [--device cpu|cuda] [--dtype fp32|bf16] [--quick] [--no-compile]

Goals (from the issue): livc eager >= 1.3x HF prefill tokens/s and >= 1.5x HF decode speed; reported as
MET / MISSED, never a failure. A parameter-count or logit mismatch is a failure (exit status 1).
Writes benchmarks/results/torch_vs_hf_<device>_<dtype>[_quick].json.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from common import (
    DTYPES,
    EXAMPLES,
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
    read_bandwidth,
    setup_torch,
    synchronize,
    time_once,
    write_json,
)
from rich.console import Console
from torch import nn

from livc.backends.pytorch.load import build
from livc.compiler.analysis.evaluate import Context, numbers
from livc.compiler.ir.nodes import DType
from livc.compiler.pipeline import analyze_path

LIV = EXAMPLES / "lfm2_350m.liv"
ATTENTION_LAYERS = (2, 5, 8, 10, 12, 14)
PREFILL_GOAL = 1.3
DECODE_GOAL = 1.5
FP32_TOLERANCE = 1e-3  # max |livc - HF| / max |HF| over the checked logits, both in fp32 (fatal)
BF16_TOLERANCE = 1e-1  # the same in bf16, where rounding order differs between the implementations
RUN_DTYPE = {"fp32": DType.F32, "bf16": DType.BF16}


# --------------------------------------------------------------------------------------------- models


def hf_config() -> Any:
    """The Lfm2Config of LFM2-350M as examples/lfm2_350m.liv writes it."""
    from transformers import Lfm2Config

    return Lfm2Config(
        vocab_size=65536,
        hidden_size=1024,
        intermediate_size=6656,
        block_auto_adjust_ff_dim=True,
        num_hidden_layers=16,
        num_attention_heads=16,
        num_key_value_heads=8,
        layer_types=["full_attention" if i in ATTENTION_LAYERS else "conv" for i in range(16)],
        conv_L_cache=3,
        conv_bias=False,
        norm_eps=1e-5,
        tie_word_embeddings=True,
    )  # RoPE theta: Lfm2Config's default, 1e6 (the logit check would catch any other)


_LAYER_RENAMES = (
    ("operator_norm.weight", "0.norm.out.weight"),
    ("ffn_norm.weight", "1.norm.out.weight"),
    ("conv.conv.weight", "0.conv.weight"),
    ("conv.in_proj", "0.in_proj"),
    ("conv.out_proj", "0.out_proj"),
    ("self_attn.q_layernorm.weight", "0.q_layernorm.weight"),
    ("self_attn.k_layernorm.weight", "0.k_layernorm.weight"),
    ("self_attn.", "0."),
    ("feed_forward.", "1."),
)
_TOP_RENAMES = {
    "model.embed_tokens.weight": "embedding.out.weight",
    "model.embedding_norm.weight": "final_norm.out.weight",
    "lm_head.weight": "head.out.weight",
}


def livc_key(hf_key: str) -> str:
    """HF Lfm2ForCausalLM state_dict key -> livc parameter id (state_dict key of the generated module)."""
    if hf_key in _TOP_RENAMES:
        return _TOP_RENAMES[hf_key]
    match = re.fullmatch(r"model\.layers\.(\d+)\.(.*)", hf_key)
    if match is None:
        raise KeyError(f"unmapped HF parameter {hf_key}")
    index, rest = match.groups()
    for old, new in _LAYER_RENAMES:
        if rest.startswith(old):
            rest = new + rest[len(old) :]
            break
    return f"layers.{index}.{rest}"


def hf_to_livc_state_dict(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename HF's tensors to livc ids; the depthwise conv weight [C, 1, k] becomes livc's [C, k]."""
    out: dict[str, torch.Tensor] = {}
    for key, value in hf_state.items():
        new = livc_key(key)
        out[new] = value.squeeze(1) if new.endswith(".conv.weight") else value
    return out


def _load_with_project_helper(hf: nn.Module, ours: nn.Module) -> str | None:
    """Use livc.backends.pytorch.hf.load_hf_weights where it exists and works; the method used, or None."""
    try:
        from livc.backends.pytorch.hf import load_hf_weights  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        load_hf_weights(ours, hf.state_dict())
    except Exception:  # noqa: BLE001 - any failure of the optional helper falls back to the local mapping
        return None
    return "livc.backends.pytorch.hf.load_hf_weights"


def copy_weights(hf: nn.Module, ours: nn.Module) -> str:
    """Copy HF's weights into the livc module (strict); returns which mapping did it."""
    method = _load_with_project_helper(hf, ours)
    if method is not None and _same_weights(hf, ours):
        return method
    missing, unexpected = ours.load_state_dict(hf_to_livc_state_dict(hf.state_dict()), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"weight mapping: missing {missing}, unexpected {unexpected}")
    return "benchmarks.torch_vs_hf.hf_to_livc_state_dict"


def _same_weights(hf: nn.Module, ours: nn.Module) -> bool:
    mapped = hf_to_livc_state_dict(hf.state_dict())
    state = ours.state_dict()
    return all(torch.equal(state[k], v) for k, v in mapped.items())


def unique_params(module: nn.Module) -> int:
    """Parameters counted once per tensor (tied embedding / head once)."""
    return sum(p.numel() for p in module.parameters())


@dataclass
class Models:
    hf: nn.Module
    ours: nn.Module
    config: Any
    mapping: str
    params: dict[str, int]


def build_models(device: str) -> Models:
    """Both models in fp32 on `device`, HF's random weights copied into livc's module."""
    from transformers import Lfm2ForCausalLM

    config = hf_config()
    hf = Lfm2ForCausalLM(config).eval()
    ours = build(LIV).model_class(dtype=torch.float32).eval()  # the .liv says bf16; compare in fp32 first
    mapping = copy_weights(hf, ours)
    hf.to(device=device)
    ours.to(device=device)
    report = analyze_path(LIV).reports[0]
    params = {"livc_module": unique_params(ours), "hf_model": unique_params(hf), "static_report": report.params}
    return Models(hf, ours, config, mapping, params)


# --------------------------------------------------------------------------------------------- engines


class Engine:
    """One way of running the model: prefill(ids) -> state, decode(state, tokens) one token at a time."""

    name: str

    def prefill(self, ids: torch.Tensor) -> Any:
        raise NotImplementedError

    def decode(self, state: Any, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class LivcEngine(Engine):
    """livc's generated module: a static cache from init_cache, prefill / decode_step (eager or compiled)."""

    def __init__(
        self,
        name: str,
        model: nn.Module,
        max_len: int,
        dtype: torch.dtype,
        device: str,
        prefill_fn: Callable[..., torch.Tensor],
        decode_fn: Callable[..., torch.Tensor],
    ) -> None:
        self.name, self.model, self.max_len, self.dtype, self.device = name, model, max_len, dtype, device
        self.prefill_fn, self.decode_fn = prefill_fn, decode_fn
        self.last_logits: torch.Tensor | None = None

    def prefill(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        cache = self.model.init_cache(ids.shape[0], self.max_len, self.dtype, self.device)
        self.last_logits = self.prefill_fn(ids, cache)
        return cache

    def decode(self, state: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
        logits = None
        for i in range(tokens.shape[1]):
            logits = self.decode_fn(tokens[:, i : i + 1], state)
        assert logits is not None
        return logits


class HfEngine(Engine):
    """transformers' Lfm2ForCausalLM with the cache object it returns (grown step by step)."""

    def __init__(self, model: nn.Module, config: Any) -> None:
        self.name, self.model, self.config = "transformers eager", model, config
        self.last_logits: torch.Tensor | None = None

    def prefill(self, ids: torch.Tensor) -> Any:
        out = self.model(ids, use_cache=True)  # the model makes its own (hybrid) DynamicCache
        self.last_logits = out.logits
        return out.past_key_values

    def decode(self, state: Any, tokens: torch.Tensor) -> torch.Tensor:
        logits = None
        for i in range(tokens.shape[1]):
            out = self.model(tokens[:, i : i + 1], past_key_values=state, use_cache=True)
            state, logits = out.past_key_values, out.logits
        assert logits is not None
        return logits


# --------------------------------------------------------------------------------------------- checks


def relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    ours, ref = ours.float(), ref.float()
    return float((ours - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def check_agreement(models: Models, device: str, dtype: torch.dtype, prompt: int, steps: int) -> dict[str, float]:
    """Relative max error of livc vs HF: parallel forward, prefill, and `steps` cached decode steps."""
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, models.config.vocab_size, (1, prompt + steps), generator=gen).to(device)
    hf = HfEngine(models.hf, models.config)
    ours = LivcEngine("livc", models.ours, prompt + steps, dtype, device, models.ours.prefill, models.ours.decode_step)
    ref_full = models.hf(ids[:, :prompt]).logits
    errors = {"forward": relative_error(models.ours(ids[:, :prompt]).logits, ref_full)}
    hf_state, our_state = hf.prefill(ids[:, :prompt]), ours.prefill(ids[:, :prompt])
    assert ours.last_logits is not None and hf.last_logits is not None
    errors["prefill"] = relative_error(ours.last_logits, hf.last_logits)
    worst = 0.0
    for i in range(prompt, prompt + steps):
        worst = max(
            worst, relative_error(ours.decode(our_state, ids[:, i : i + 1]), hf.decode(hf_state, ids[:, i : i + 1]))
        )
    errors["decode"] = worst
    return errors


def agreement(
    models: Models, args: argparse.Namespace, dtype: torch.dtype, log: Callable[[str], None]
) -> dict[str, dict[str, float]] | None:
    """Check the logits in fp32, then cast both models to the run dtype (and check again there)."""
    errors = {"fp32": check_agreement(models, args.device, torch.float32, args.check_prompt, 4)}
    models.hf.to(dtype=dtype)
    models.ours.to(dtype=dtype)
    if dtype != torch.float32:
        errors[args.dtype] = check_agreement(models, args.device, dtype, args.check_prompt, 4)
    bf16_error = max(errors.get("bf16", {"-": 0.0}).values())
    ok = max(errors["fp32"].values()) <= FP32_TOLERANCE and bf16_error <= BF16_TOLERANCE
    log(f"logit agreement (max |livc - HF| / max |HF|): {errors} -> {'OK' if ok else 'MISMATCH'}")
    return errors if ok else None


# --------------------------------------------------------------------------------------------- timing


def prefill_seconds(engine: Engine, ids: torch.Tensor, device: str) -> float:
    return time_once(lambda: engine.prefill(ids), device)


def decode_seconds_per_token(engine: Engine, ids: torch.Tensor, tokens: torch.Tensor, device: str) -> float:
    state = engine.prefill(ids)
    synchronize(device)
    return time_once(lambda: engine.decode(state, tokens), device) / tokens.shape[1]


def interleaved(
    engines: list[Engine], measure: Callable[[Engine], float], warmup: int, repeat: int, log: Callable[[str], None]
) -> dict[str, Timing]:
    """Warm each engine up, then run the repeats round-robin over the engines (drift hits all alike)."""
    for engine in engines:
        for _ in range(warmup):
            measure(engine)
    samples: dict[str, list[float]] = {e.name: [] for e in engines}
    for r in range(repeat):
        for engine in engines:
            samples[engine.name].append(measure(engine))
        log(f"  repeat {r + 1}/{repeat}: " + ", ".join(f"{k} {v[-1] * 1e3:.1f} ms" for k, v in samples.items()))
    return {name: Timing.of(values) for name, values in samples.items()}


def compiled_engine(
    models: Models, max_len: int, dtype: torch.dtype, device: str, ids: torch.Tensor, tokens: torch.Tensor
) -> tuple[LivcEngine | None, dict[str, Any]]:
    """livc under torch.compile (default mode); the first calls' times are the compile times."""
    info: dict[str, Any] = {"mode": "default"}
    model = models.ours
    engine = LivcEngine(
        "livc torch.compile",
        model,
        max_len,
        dtype,
        device,
        torch.compile(model.prefill),
        torch.compile(model.decode_step),
    )
    try:
        start = time.perf_counter()
        state = engine.prefill(ids)
        synchronize(device)
        info["prefill_first_call_s"] = time.perf_counter() - start
        start = time.perf_counter()
        engine.decode(state, tokens[:, :2])
        synchronize(device)
        info["decode_first_calls_s"] = time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - a compile failure is reported, not fatal
        info["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        return None, info
    info["compile_s"] = info["prefill_first_call_s"] + info["decode_first_calls_s"]
    return engine, info


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--prompt", type=int, default=None, help="prompt length L (default 512; quick 128)")
    parser.add_argument("--new-tokens", type=int, default=None, help="decoded tokens (default 128; quick 16)")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time livc under torch.compile (default: on, off with --quick)",
    )
    parser.add_argument("--check-prompt", type=int, default=32, help="prompt length of the logit check")
    args = parser.parse_args(argv)
    quick = args.quick
    args.prompt = args.prompt or (128 if quick else 512)
    args.new_tokens = args.new_tokens or (16 if quick else 128)
    args.repeat = args.repeat or (2 if quick else 5)
    args.warmup = args.warmup if args.warmup is not None else 1
    args.compile = (not quick) if args.compile is None else args.compile
    args.out = args.out or default_out("torch_vs_hf", args.device, args.dtype, quick)
    return args


def roofline(args: argparse.Namespace) -> Roofline:
    """Weights in the run dtype + the static cache at the prompt length, over bandwidths measured now."""
    report = analyze_path(LIV).reports[0]
    run_dtype = RUN_DTYPE[args.dtype]
    cache = numbers(report.total, Context(1, args.prompt, run_dtype), report.dtype_bytes).cache_min_bytes
    return Roofline(report.params * run_dtype.bytes, cache, copy_bandwidth(args.device), read_bandwidth(args.device))


def summarize(
    engines: list[Engine], prefill: dict[str, Timing], decode: dict[str, Timing], prompt: int, line: Roofline
) -> dict[str, dict[str, float]]:
    hf_prefill, hf_decode = prefill["transformers eager"].median, decode["transformers eager"].median
    out: dict[str, dict[str, float]] = {}
    for e in engines:
        p, d = prefill[e.name].median, decode[e.name].median
        out[e.name] = {
            "prefill_ms": p * 1e3,
            "prefill_tokens_per_s": prompt / p,
            "decode_ms_per_token": d * 1e3,
            "prefill_speedup_vs_hf": hf_prefill / p,
            "decode_speedup_vs_hf": hf_decode / d,
            "decode_roofline_fraction": line.fraction(d * 1e3),
            "decode_read_roofline_fraction": line.read_fraction(d * 1e3),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = console()
    threads = setup_torch(args.device, args.threads)
    dtype = DTYPES[args.dtype]
    info = machine_info(args.device, threads)
    out.print(f"[bold]torch_vs_hf[/]: {describe_machine(info)}; torch.get_num_threads() = {threads}")
    out.print(
        f"device {args.device}, dtype {args.dtype}, prompt {args.prompt}, new tokens {args.new_tokens}, "
        f"warm-up {args.warmup}, repeats {args.repeat}, compile {args.compile}"
    )
    with torch.inference_mode():
        models = build_models(args.device)
        out.print(
            f"parameters: {models.params} (weights copied with {models.mapping}); "
            f"HF attention: {models.hf.config._attn_implementation}"
        )
        if len(set(models.params.values())) != 1:
            out.print("[red]parameter counts differ[/]")
            return 1
        errors = agreement(models, args, dtype, out.print)
        if errors is None:
            return 1
        line = roofline(args)
        gen = torch.Generator().manual_seed(2)
        ids = torch.randint(0, 65536, (1, args.prompt), generator=gen).to(args.device)
        tokens = torch.randint(0, 65536, (1, args.new_tokens), generator=gen).to(args.device)
        max_len = args.prompt + args.new_tokens
        engines: list[Engine] = [
            LivcEngine(
                "livc eager", models.ours, max_len, dtype, args.device, models.ours.prefill, models.ours.decode_step
            ),
            HfEngine(models.hf, models.config),
        ]
        compile_info: dict[str, Any] = {"skipped": True}
        if args.compile:
            out.print("compiling livc prefill and decode_step with torch.compile (mode default) ...")
            engine, compile_info = compiled_engine(models, max_len, dtype, args.device, ids, tokens)
            out.print(f"  {compile_info}")
            if engine is not None:
                engines.append(engine)
        out.print("prefill:")
        prefill = interleaved(
            engines, lambda e: prefill_seconds(e, ids, args.device), args.warmup, args.repeat, out.print
        )
        out.print("decode (per token):")
        decode = interleaved(
            engines,
            lambda e: decode_seconds_per_token(e, ids, tokens, args.device),
            args.warmup,
            args.repeat,
            out.print,
        )
    summary = summarize(engines, prefill, decode, args.prompt, line)
    render(out, summary, line, args)
    goals = goal_verdicts(summary)
    for text in goals.values():
        out.print(text)
    payload = {
        "benchmark": "torch_vs_hf",
        "machine": info,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "model": {
            "liv": str(LIV.relative_to(EXAMPLES.parent)),
            "params": models.params,
            "weight_mapping": models.mapping,
            "hf_attn_implementation": models.hf.config._attn_implementation,
        },
        "agreement": {"relative_max_error": errors, "tolerance": {"fp32": FP32_TOLERANCE, "bf16": BF16_TOLERANCE}},
        "compile": compile_info,
        "roofline": line.to_json(),
        "prefill_s": {k: v.to_json() for k, v in prefill.items()},
        "decode_s_per_token": {k: v.to_json() for k, v in decode.items()},
        "summary": summary,
        "goals": goals,
    }
    out.print(f"wrote {write_json(args.out, payload)}")
    return 0


def render(out: Console, summary: dict[str, dict[str, float]], line: Roofline, args: argparse.Namespace) -> None:
    rows = [
        (
            name,
            fmt(s["prefill_tokens_per_s"], 1),
            fmt(s["prefill_ms"], 1),
            fmt_ratio(s["prefill_speedup_vs_hf"]),
            fmt(s["decode_ms_per_token"], 2),
            fmt_ratio(s["decode_speedup_vs_hf"]),
            f"{100 * s['decode_roofline_fraction']:.0f}%",
        )
        for name, s in summary.items()
    ]
    title = (
        f"LFM2-350M, {args.device} {args.dtype}: prefill L={args.prompt}, decode {args.new_tokens} tokens "
        f"(medians of {args.repeat}); roofline {line.ms_per_token:.2f} ms/token "
        f"= {line.bytes_per_token / 1e6:.0f} MB / {line.bandwidth / 1e9:.1f} GB/s"
    )
    columns = ("engine", "prefill tok/s", "prefill ms", "vs HF", "decode ms/tok", "vs HF", "of roofline")
    out.print(make_table(title, columns, rows))


def goal_verdicts(summary: dict[str, dict[str, float]]) -> dict[str, str]:
    s = summary["livc eager"]
    p, d = s["prefill_speedup_vs_hf"], s["decode_speedup_vs_hf"]
    return {"prefill": _verdict("prefill", p, PREFILL_GOAL), "decode": _verdict("decode", d, DECODE_GOAL)}


def _verdict(what: str, ratio: float, goal: float) -> str:
    return f"{what} goal livc eager >= {goal}x HF: {ratio:.2f}x -> {'MET' if ratio >= goal else 'MISSED'}"


if __name__ == "__main__":
    sys.exit(main())
