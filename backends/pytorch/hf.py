"""Hugging Face interop: HF configs -> .liv programs, HF checkpoints -> generated PyTorch modules.

    import_hf(config) -> str                   a formatted .liv program for an HF config dict
    hf_state_dict_to_livc(arch, sd, ir_model)  HF tensors renamed/reshaped to the IR parameter ids
    load_hf_weights(module, source)            load an HF state_dict / .safetensors file(s) / directory
    cmd_import_hf(args) -> int                 `livc import-hf config.json -o model.liv`

Supported: `Lfm2ForCausalLM`, `LlamaForCausalLM`, `Qwen2ForCausalLM` (see hf_configs.py for the keys read).
Every number in the emitted program comes from the config (or transformers' default for an absent key);
identifiers are fixed strings except the model name, sanitised from `_name_or_path`. Weight names are an
explicit per-architecture table; missing, unexpected and wrong-shaped tensors are reported together.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from livc.backends.pytorch.hf_configs import (
    ARCHITECTURES,
    Common,
    DecoderSpec,
    HFImportError,
    Lfm2Spec,
    architecture,
    read_config,
)
from livc.compiler.check import check_text
from livc.compiler.ir.nodes import Model
from livc.dsl.diagnostics import Severity
from livc.dsl.formatter import format_text
from livc.dsl.lexicon import MAX_IDENT_LEN, identifier_problem
from livc.dsl.render import render_all_text


class HFWeightsError(HFImportError):
    """An HF checkpoint whose tensors do not match the livc model (names and shapes are listed)."""


# ---------------------------------------------------------------------------------------------------------
# Config -> .liv

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
    errors = [d for d in check_text(text, "<import-hf>") if d.severity is Severity.ERROR]
    if errors:  # a config value the stdlib's `require`s reject (e.g. a width that does not fit)
        raise HFImportError("the imported program does not check:\n" + render_all_text(errors) + text)
    return text


# ---------------------------------------------------------------------------------------------------------
# Weights: explicit name tables per architecture

# HF name inside `model.layers.{i}.` -> livc name inside `layers.{i}.` (sublayer 0: operator, 1: FFN)
LFM2_LAYER = {
    "operator_norm.weight": "0.norm.out.weight",
    "conv.in_proj.weight": "0.in_proj.weight",
    "conv.in_proj.bias": "0.in_proj.bias",
    "conv.conv.weight": "0.conv.weight",
    "conv.conv.bias": "0.conv.bias",
    "conv.out_proj.weight": "0.out_proj.weight",
    "conv.out_proj.bias": "0.out_proj.bias",
    "self_attn.q_proj.weight": "0.q_proj.weight",
    "self_attn.k_proj.weight": "0.k_proj.weight",
    "self_attn.v_proj.weight": "0.v_proj.weight",
    "self_attn.q_layernorm.weight": "0.q_layernorm.weight",
    "self_attn.k_layernorm.weight": "0.k_layernorm.weight",
    "self_attn.out_proj.weight": "0.out_proj.weight",
    "ffn_norm.weight": "1.norm.out.weight",
    "feed_forward.w1.weight": "1.w1.weight",
    "feed_forward.w3.weight": "1.w3.weight",
    "feed_forward.w2.weight": "1.w2.weight",
}
LFM2_GLOBAL = {
    "model.embed_tokens.weight": "embedding.out.weight",
    "model.embedding_norm.weight": "final_norm.out.weight",
    "lm_head.weight": "head.out.weight",
}
DECODER_LAYER = {
    "input_layernorm.weight": "0.norm.out.weight",
    **{f"self_attn.{p}_proj.{t}": f"0.{p}_proj.{t}" for p in "qkv" for t in ("weight", "bias")},
    "self_attn.o_proj.weight": "0.out_proj.weight",
    "self_attn.o_proj.bias": "0.out_proj.bias",
    "post_attention_layernorm.weight": "1.norm.out.weight",
    **{
        f"mlp.{hf}.{t}": f"1.{ours}.{t}"
        for hf, ours in (("gate_proj", "w1"), ("up_proj", "w3"), ("down_proj", "w2"))
        for t in ("weight", "bias")
    },
}
DECODER_GLOBAL = {
    "model.embed_tokens.weight": "embedding.out.weight",
    "model.norm.weight": "final_norm.out.weight",
    "lm_head.weight": "head.out.weight",
}
NAME_MAPS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "lfm2": (LFM2_GLOBAL, LFM2_LAYER),
    "llama": (DECODER_GLOBAL, DECODER_LAYER),
    "qwen2": (DECODER_GLOBAL, DECODER_LAYER),
}
# HF tensors that are not weights (old checkpoints saved RoPE's inverse frequencies).
IGNORED = re.compile(r"^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$|^model\.rotary_emb\.inv_freq$")
_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)$")
HEAD, LM_HEAD, HF_EMBED = "head.out.weight", "lm_head.weight", "model.embed_tokens.weight"


def family(arch: str) -> str:
    """`lfm2` | `llama` | `qwen2` for a transformers class name or model_type."""
    if arch in ARCHITECTURES:
        return ARCHITECTURES[arch]
    if arch in NAME_MAPS:
        return arch
    raise HFImportError(f"architecture {arch!r} is not supported; supported: {', '.join(ARCHITECTURES)}")


def livc_name(fam: str, hf_name: str) -> str | None:
    """The livc parameter id of an HF tensor name, or None when the table has no entry."""
    glob, layer = NAME_MAPS[fam]
    if hf_name in glob:
        return glob[hf_name]
    match = _LAYER.match(hf_name)
    if match and match[2] in layer:
        return f"layers.{match[1]}.{layer[match[2]]}"
    return None


def hf_name_of(fam: str, ours: str) -> str:
    """The HF tensor name that the table maps to livc id `ours` (for error messages)."""
    glob, layer = NAME_MAPS[fam]
    for hf, mine in glob.items():
        if mine == ours:
            return hf
    match = re.match(r"^layers\.(\d+)\.(.+)$", ours)
    if match:
        for hf, mine in layer.items():
            if mine == match[2]:
                return f"model.layers.{match[1]}.{hf}"
    return "?"


def _convert(ours: str, tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """HF layout -> livc layout: the depthwise Conv1d weight [D, 1, k] becomes [D, k]."""
    if ours.endswith(".conv.weight") and tensor.dim() == 3 and tensor.shape[1] == 1 and len(shape) == 2:
        return tensor.squeeze(1)
    return tensor


def _listing(title: str, items: list[str], limit: int = 20) -> str:
    shown = items[:limit] + ([f"... and {len(items) - limit} more"] if len(items) > limit else [])
    return f"  {title} ({len(items)}):\n" + "".join(f"    {s}\n" for s in shown)


@dataclass
class Mismatch:
    """Everything wrong between a checkpoint and the livc model, reported in one error."""

    missing: list[str]
    unexpected: list[str]
    shapes: list[str]
    notes: list[str]

    def raise_if_any(self, arch: str) -> None:
        if not (self.missing or self.unexpected or self.shapes or self.notes):
            return
        text = f"the {arch} checkpoint does not match the livc model:\n"
        text += _listing("missing from the checkpoint", self.missing) if self.missing else ""
        text += _listing("unexpected in the checkpoint", self.unexpected) if self.unexpected else ""
        text += _listing("wrong shape", self.shapes) if self.shapes else ""
        text += "".join(f"  {n}\n" for n in self.notes)
        raise HFWeightsError(text.rstrip("\n"))


def _check_tied_head(
    state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], notes: list[str]
) -> None:
    """A tied livc head owns no weight: an HF lm_head.weight must then equal the embedding (or be absent)."""
    if HEAD in expected or LM_HEAD not in state_dict or HF_EMBED not in state_dict:
        return
    head, embed = state_dict[LM_HEAD], state_dict[HF_EMBED]
    if head.shape != embed.shape or not torch.equal(head, embed):
        notes.append(
            f"the livc head is tied (tie_word_embeddings) but the checkpoint's {LM_HEAD} differs from "
            f"{HF_EMBED}: import the config with tie_word_embeddings = false"
        )


def convert_state_dict(
    arch: str, state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]]
) -> dict[str, torch.Tensor]:
    """Rename and reshape HF tensors to the livc ids in `expected` (id -> shape); raises `HFWeightsError`."""
    fam = family(arch)
    if HEAD not in expected and HF_EMBED not in state_dict and LM_HEAD in state_dict:
        state_dict = {HF_EMBED if k == LM_HEAD else k: v for k, v in state_dict.items()}  # tied, saved as the head
    out: dict[str, torch.Tensor] = {}
    seen: set[str] = set()
    problems = Mismatch([], [], [], [])
    _check_tied_head(state_dict, expected, problems.notes)
    for hf_name in sorted(state_dict):
        ours = livc_name(fam, hf_name)
        if IGNORED.match(hf_name) or (ours == HEAD and HEAD not in expected):
            continue
        if ours is None or ours not in expected:
            why = "no livc name for it" if ours is None else f"-> {ours}, which the livc model does not have"
            problems.unexpected.append(f"{hf_name} ({why})")
            continue
        seen.add(ours)
        tensor = _convert(ours, state_dict[hf_name], expected[ours])
        if tuple(tensor.shape) != tuple(expected[ours]):
            problems.shapes.append(
                f"{hf_name} -> {ours}: checkpoint {tuple(state_dict[hf_name].shape)}, livc {tuple(expected[ours])}"
            )
            continue
        out[ours] = tensor
    for ours in expected:
        if ours not in seen:
            hint = " (the config unties the head but the checkpoint has no lm_head)" if ours == HEAD else ""
            problems.missing.append(f"{hf_name_of(fam, ours)} (-> {ours}){hint}")
    problems.raise_if_any(arch)
    return out


def hf_state_dict_to_livc(arch: str, state_dict: Mapping[str, torch.Tensor], ir_model: Model) -> dict[str, Any]:
    """HF tensors keyed by the IR parameter ids of `ir_model` (a tied head is the embedding's id only)."""
    return convert_state_dict(arch, state_dict, {p.id: tuple(p.shape) for p in ir_model.params})


# ---------------------------------------------------------------------------------------------------------
# Reading checkpoints


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def checkpoint_files(path: Path) -> list[Path]:
    """The .safetensors files of a checkpoint directory, index file or single file."""
    if path.is_dir():
        index = path / "model.safetensors.index.json"
        if index.exists():
            return checkpoint_files(index)
        single = path / "model.safetensors"
        files = [single] if single.exists() else sorted(path.glob("*.safetensors"))
        if not files:
            raise HFWeightsError(f"no .safetensors files in {path}")
        return files
    if path.name.endswith(".index.json"):
        try:
            weight_map = json.loads(path.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HFWeightsError(f"cannot read the shard index {path}: {exc}") from exc
        return [path.parent / shard for shard in sorted(set(weight_map.values()))]
    if not path.exists():
        raise HFWeightsError(f"checkpoint file {path} does not exist")
    return [path]


def read_checkpoint(files: Iterable[Path]) -> dict[str, torch.Tensor]:
    """All tensors of the given .safetensors files (a name in two files is an error)."""
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        for name, tensor in _load_safetensors(file).items():
            if name in tensors:
                raise HFWeightsError(f"tensor {name} appears in more than one checkpoint file (again in {file})")
            tensors[name] = tensor
    return tensors


Source = Mapping[str, torch.Tensor] | str | Path | Iterable[str | Path]


def read_source(source: Source) -> tuple[dict[str, torch.Tensor], str | None]:
    """The tensors of `source` and, for a directory with a config.json, its architecture."""
    if isinstance(source, Mapping):
        return dict(source), None
    paths = [Path(source)] if isinstance(source, (str, Path)) else [Path(p) for p in source]
    files = [f for p in paths for f in checkpoint_files(p)]
    arch = None
    if len(paths) == 1 and (paths[0] / "config.json").is_file():
        arch = architecture(json.loads((paths[0] / "config.json").read_text(encoding="utf-8")))
    return read_checkpoint(files), arch


def infer_arch(state_dict: Mapping[str, torch.Tensor]) -> str:
    """LFM2 vs Llama-style names (Llama and Qwen2 share the table)."""
    names = set(state_dict)
    if any(".feed_forward.w1." in n or ".operator_norm." in n for n in names):
        return "lfm2"
    if any(".mlp.gate_proj." in n or ".input_layernorm." in n for n in names):
        return "llama"
    raise HFWeightsError("cannot tell the architecture from the checkpoint's tensor names; pass arch=")


def unique_parameters(module: nn.Module) -> dict[str, nn.Parameter]:
    """Each parameter once; a tied head is named by the tensor's other name (the embedding)."""
    names: dict[int, str] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        if id(param) not in names or names[id(param)] == HEAD:
            names[id(param)] = name
    return {name: module.get_parameter(name) for name in names.values()}


def load_hf_weights(module: nn.Module, source: Source, arch: str | None = None) -> None:
    """Copy HF weights into a generated module: a state_dict, a .safetensors file / list / index, or a dir.

    The module's own (deduplicated) parameters are the expected names; every one must be filled.
    """
    state_dict, found = read_source(source)
    arch = arch or found or infer_arch(state_dict)
    params = unique_parameters(module)
    converted = convert_state_dict(arch, state_dict, {n: tuple(p.shape) for n, p in params.items()})
    with torch.no_grad():
        for name, tensor in converted.items():
            params[name].copy_(tensor)


# ---------------------------------------------------------------------------------------------------------
# CLI


def _read_config(path: str) -> dict[str, Any]:
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise HFImportError(f"cannot read '{path}': {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise HFImportError(f"'{path}' is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise HFImportError(f"'{path}' must hold a JSON object")
    return config


def cmd_import_hf(args: argparse.Namespace) -> int:
    """`livc import-hf CONFIG -o OUT.liv` (`-o -` prints); errors go to stderr as `error: ...`, exit 1."""
    from livc.cli import _write_atomic_new

    try:
        text = import_hf(_read_config(args.config), getattr(args, "name", None))
        if args.output == "-":
            sys.stdout.write(text)
        else:
            _write_atomic_new(Path(args.output), text)
            print(f"wrote {args.output}")
    except (HFImportError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


__all__ = ["HFImportError", "HFWeightsError", "cmd_import_hf", "hf_state_dict_to_livc", "import_hf", "load_hf_weights"]
