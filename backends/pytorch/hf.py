"""Hugging Face interop: HF checkpoints -> generated PyTorch modules (configs -> .liv: `hf_import`).

    import_hf(config) -> str                   re-exported from `hf_import` (torch-free)
    hf_state_dict_to_livc(arch, sd, ir_model)  HF tensors renamed/reshaped to the IR parameter ids
    load_hf_weights(module, source)            load an HF state_dict / .safetensors file(s) / directory

Supported: `Lfm2ForCausalLM`, `LlamaForCausalLM`, `Qwen2ForCausalLM` (see hf_configs.py for the keys read).
Weight names are an explicit per-architecture table; missing, unexpected and wrong-shaped tensors are
reported together.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from livc.backends.pytorch.hf_configs import ARCHITECTURES, HFImportError, architecture
from livc.backends.pytorch.hf_import import import_hf
from livc.compiler.ir.nodes import Model


class HFWeightsError(HFImportError):
    """An HF checkpoint whose tensors do not match the livc model (names and shapes are listed)."""


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


__all__ = ["HFImportError", "HFWeightsError", "hf_state_dict_to_livc", "import_hf", "load_hf_weights"]
