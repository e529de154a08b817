"""Hugging Face configs -> .liv programs, without torch or transformers (`livc import-hf`).

    import_hf(config, name) -> str     a formatted, checked .liv program for an HF config dict
    read_config_file(path) -> dict     a config.json read safely (size cap, regular files only)

Supported: `Lfm2ForCausalLM`, `LlamaForCausalLM`, `Qwen2ForCausalLM` (see hf_configs.py for the keys read).
Every number in the emitted program comes from the config (or transformers' default for an absent key);
identifiers are fixed strings except the model name, sanitised from `_name_or_path`. This module must not
import torch: turning a config into text works in a base install (tests/test_cli_io.py checks it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livc.backends.pytorch.hf_configs import Common, DecoderSpec, HFImportError, Lfm2Spec, read_config
from livc.compiler.check import check_source
from livc.compiler.pipeline import analyze_checked
from livc.compiler.resolution.loader import read_file
from livc.dsl.diagnostics import Severity
from livc.dsl.formatter import format_text
from livc.dsl.lexicon import MAX_IDENT_LEN, identifier_problem
from livc.dsl.render import render_all_text

# Names a model may not take: the stdlib names the program imports and the generated module's own names.
_RESERVED_NAMES = frozenset(
    {
        "GQA",
        "GatedShortConv",
        "SwiGLU",
        "RMSNorm",
        "Embedding",
        "LMHead",
        "lfm2_ffn_width",
        "Params",
        "Block",
        "Sublayer",
        "F",
        "nn",
        "torch",
        "math",
        "annotations",
        "linear",
        "tie",
        "positions",
        "attention",
        "init_tensor",
        "rms_norm",
        "apply_rope",
        "causal_conv",
    }
)
_DEFAULT_NAMES = {"Lfm2ForCausalLM": "Lfm2", "LlamaForCausalLM": "Llama", "Qwen2ForCausalLM": "Qwen2"}


def model_name(config: Mapping[str, Any], arch: str, name: str | None = None) -> str:
    """A valid .liv identifier for the model: `name`, else the last part of `_name_or_path`, else the arch."""
    raw = name if name is not None else str(config.get("_name_or_path") or "").rstrip("/").rsplit("/", 1)[-1]
    ident = re.sub(r"[^0-9A-Za-z_]+", "_", raw).strip("_")[: MAX_IDENT_LEN - 8] or _DEFAULT_NAMES[arch]
    if ident[0].isdigit():
        ident = "M_" + ident
    if ident in _RESERVED_NAMES or identifier_problem(ident) is not None:
        ident += "_model"
    return ident


def _lit(value: bool | int | float) -> str:
    """A .liv literal that reads back as exactly `value` (floats via repr: shortest round-trip form)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


@dataclass(frozen=True)
class Program:
    """The parts of an emitted .liv program before formatting."""

    comment: tuple[str, ...]
    imports: tuple[str, ...]
    params: tuple[tuple[str, str, bool | int | float], ...]
    lets: tuple[str, ...]
    layers: str
    common: Common

    def render(self, name: str) -> str:
        c = self.common
        params = ",\n".join(f"    {n}: {t} = {_lit(v)}" for n, t, v in self.params)
        fields = [
            "embedding: Embedding(vocab, d)",
            "norm: RMSNorm(d, eps = eps)",
            f"layers: {self.layers}",
            "final_norm: RMSNorm(d, eps = eps)",
            "head: LMHead(vocab, d, tied = tied)",
        ]
        fields += [f"context: {c.context}"] if c.context is not None else []
        fields += [f"dtype: {c.dtype}"] if c.dtype is not None else []
        body = "\n".join(f"    let {line}" for line in self.lets) + "\n\n" + "\n".join(f"    {f}" for f in fields)
        lines = [
            *(f"# {line}".rstrip() for line in self.comment),
            "",
            *self.imports,
            "",
            f"model {name}(\n{params},\n) {{\n{body}\n}}",
        ]
        return "\n".join(lines) + "\n"


def layer_list(kinds: tuple[str, ...]) -> str:
    """`n * [a] + m * [b]` for a few runs (uniform stacks), else the explicit list."""
    runs: list[list[Any]] = []
    for kind in kinds:
        if runs and runs[-1][0] == kind:
            runs[-1][1] += 1
        else:
            runs.append([kind, 1])
    if len(runs) <= 3:
        return " + ".join(f"{n} * [{k}]" if n > 1 else f"[{k}]" for k, n in runs)
    return f"[{', '.join(kinds)}]"


def _common_params(c: Common) -> list[tuple[str, str, bool | int | float]]:
    a = c.attention
    return [
        ("vocab", "int", c.vocab),
        ("d", "int", c.d),
        ("heads", "int", a.heads),
        ("kv_heads", "int", a.kv_heads),
        ("head_dim", "int", a.head_dim),
    ]


def _gqa(extra: str = "") -> str:
    return f"GQA(d, heads = heads, kv_heads = kv_heads, head_dim = head_dim, rope_theta = rope_theta{extra})"


def lfm2_program(spec: Lfm2Spec) -> Program:
    c = spec.common
    params = _common_params(c)
    if spec.ffn_auto_adjust and spec.ffn_multiplier is not None:
        params += [
            ("ff_dim", "int", spec.ff_dim),
            ("ffn_multiplier", "float", spec.ffn_multiplier),
            ("ffn_multiple_of", "int", spec.ffn_multiple_of),
        ]
        lets = ["ffn = lfm2_ffn_width(ff_dim, multiplier = ffn_multiplier, multiple_of = ffn_multiple_of)"]
    elif spec.ffn_auto_adjust:  # block_ffn_dim_multiplier null: transformers takes 2/3 and does not round
        params += [("ff_dim", "int", spec.ff_dim)]
        lets = ["ffn = int(2 * ff_dim / 3)"]
    else:
        params += [("ffn", "int", spec.ff_dim)]
        lets = []
    kinds = set(spec.layer_kinds)
    if "conv" in kinds:
        params += [("kernel", "int", spec.kernel), ("conv_bias", "bool", spec.conv_bias)]
        lets.append("conv = GatedShortConv(d, kernel = kernel, bias = conv_bias) + SwiGLU(d, ffn)")
    params += [("rope_theta", "float", c.attention.rope.theta), ("eps", "float", c.eps), ("tied", "bool", c.tied)]
    if "attn" in kinds:
        lets.append(f"attn = {_gqa(', qk_norm = true')} + SwiGLU(d, ffn)")
    imports = [
        *(["from std.attention import GQA"] if "attn" in kinds else []),
        *(["from std.conv import GatedShortConv"] if "conv" in kinds else []),
        "from std.embedding import Embedding, LMHead",
        "from std.mlp import SwiGLU" + (", lfm2_ffn_width" if any("lfm2_ffn_width" in x for x in lets) else ""),
        "from std.norms import RMSNorm",
    ]
    comment = (
        "Imported by `livc import-hf` from a Hugging Face Lfm2ForCausalLM config: gated short",
        "convolutions and GQA with QK-norm (per `layer_types`), each followed by a SwiGLU FFN, pre-norm",
        "RMSNorm residuals. Every number comes from the config; re-import rather than edit.",
    )
    return Program(comment, tuple(imports), tuple(params), tuple(lets), layer_list(spec.layer_kinds), c)


def decoder_program(spec: DecoderSpec) -> Program:
    c = spec.common
    params = [
        *_common_params(c),
        ("ffn", "int", spec.ffn),
        ("rope_theta", "float", c.attention.rope.theta),
        ("eps", "float", c.eps),
        ("tied", "bool", c.tied),
    ]
    if spec.qkv_bias == spec.out_bias:
        params.append(("attention_bias", "bool", spec.out_bias))
        bias = ", bias = attention_bias"
    else:  # Qwen2: q/k/v biases, no out_proj bias (fixed by the architecture, not by a config key)
        bias = f", qkv_bias = {_lit(spec.qkv_bias)}, bias = {_lit(spec.out_bias)}"
    params.append(("mlp_bias", "bool", spec.mlp_bias))
    mlp = "SwiGLU(d, ffn, bias = mlp_bias)"
    lets = []
    if "attn" in spec.layer_kinds:
        lets.append(f"attn = {_gqa(bias)} + {mlp}")
    if "swa" in spec.layer_kinds:
        assert spec.window is not None
        params.append(("window", "int", spec.window))
        lets.append(f"swa = {_gqa(bias + ', window = window')} + {mlp}")
    imports = (
        "from std.attention import GQA",
        "from std.embedding import Embedding, LMHead",
        "from std.mlp import SwiGLU",
        "from std.norms import RMSNorm",
    )
    window = " (`swa`: sliding window)" if spec.window is not None else ""
    comment = (
        f"Imported by `livc import-hf` from a Hugging Face {c.arch} config:",
        f"GQA with RoPE{window} and a SwiGLU FFN per layer, pre-norm RMSNorm residuals.",
        "Every number comes from the config; re-import rather than edit.",
    )
    return Program(comment, imports, tuple(params), tuple(lets), layer_list(spec.layer_kinds), c)


def import_hf(config: Mapping[str, Any], name: str | None = None) -> str:
    """The formatted .liv program of an HF config dict (deterministic); raises `HFImportError`."""
    spec = read_config(config)
    program = lfm2_program(spec) if isinstance(spec, Lfm2Spec) else decoder_program(spec)
    text = format_text(program.render(model_name(config, spec.common.arch, name)), "<import-hf>")
    checked = analyze_checked(check_source(text, "<import-hf>"))  # with the shape checks of the build
    errors = [d for d in checked.diagnostics if d.severity is Severity.ERROR]
    if errors:  # a config value the stdlib's `require`s reject (e.g. a width that does not fit)
        raise HFImportError("the imported program does not check:\n" + render_all_text(errors) + text)
    return text


def read_config_file(path: Path) -> dict[str, Any]:
    """The JSON object in `path`; raises `HFImportError` (unreadable, not JSON, not an object)."""
    text, problem = read_file(path)
    if text is None:
        raise HFImportError(f"cannot read '{path}': {problem}")
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise HFImportError(f"'{path}' is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise HFImportError(f"'{path}' is nested too deeply to be a config") from exc
    if not isinstance(config, dict):
        raise HFImportError(f"'{path}' must hold a JSON object")
    return config


__all__ = ["HFImportError", "import_hf", "model_name", "read_config_file"]
