"""Read Hugging Face `config.json` dicts into typed, validated specs (no transformers import needed).

One spec per supported architecture: `Lfm2Spec` (`Lfm2ForCausalLM`) and `DecoderSpec` (`LlamaForCausalLM`,
`Qwen2ForCausalLM`). Absent keys take the defaults of the transformers config classes (`DEFAULTS`, checked
against transformers in tests/test_hf_parity.py), and legacy keys are resolved with transformers' precedence
(`block_ff_dim` over `intermediate_size`, `tie_embedding` over `tie_word_embeddings`, `rope_scaling` over
`rope_parameters`, `full_attn_idxs` when `layer_types` is absent). Anything the .liv stdlib cannot express
exactly raises `HFImportError` naming the offending key: a different model is never produced silently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ARCHITECTURES: dict[str, str] = {
    "Lfm2ForCausalLM": "lfm2",
    "LlamaForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
}

# Defaults of transformers' Lfm2Config / LlamaConfig / Qwen2Config (5.x) for every key this module reads.
DEFAULTS: dict[str, dict[str, Any]] = {
    "lfm2": {
        "vocab_size": 65536,
        "hidden_size": 2560,
        "intermediate_size": 12288,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 128_000,
        "norm_eps": 1e-5,
        "tie_word_embeddings": True,
        "conv_bias": False,
        "conv_L_cache": 3,
        "block_multiple_of": 256,
        "block_ffn_dim_multiplier": 1.0,
        "block_auto_adjust_ff_dim": True,
        "rope_theta": 1_000_000.0,
    },
    "llama": {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": None,
        "hidden_act": "silu",
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "rope_theta": 10_000.0,
    },
    "qwen2": {
        "vocab_size": 151936,
        "hidden_size": 4096,
        "intermediate_size": 22016,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "hidden_act": "silu",
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
        "use_sliding_window": False,
        "sliding_window": 4096,
        "max_window_layers": 28,
        "rope_theta": 10_000.0,
    },
}

# The eps of the QK-norm inside std.attention.GQA (the `rmsnorm` primitive's default).
QK_NORM_EPS = 1e-5
DTYPES = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}


class HFImportError(ValueError):
    """A Hugging Face config or checkpoint that livc cannot represent exactly; the message names the key."""


@dataclass(frozen=True)
class Rope:
    theta: float


@dataclass(frozen=True)
class Attention:
    heads: int
    kv_heads: int
    head_dim: int
    rope: Rope


@dataclass(frozen=True)
class Common:
    """What every supported architecture has: widths, depth, norms, head and metadata."""

    arch: str
    vocab: int
    d: int
    layers: int
    eps: float
    tied: bool
    context: int | None
    dtype: str | None
    attention: Attention


@dataclass(frozen=True)
class Lfm2Spec:
    common: Common
    layer_kinds: tuple[str, ...]  # "conv" | "attn"
    ff_dim: int
    ffn_auto_adjust: bool
    ffn_multiplier: float | None
    ffn_multiple_of: int
    kernel: int
    conv_bias: bool


@dataclass(frozen=True)
class DecoderSpec:
    common: Common
    ffn: int
    qkv_bias: bool
    out_bias: bool
    mlp_bias: bool
    window: int | None
    layer_kinds: tuple[str, ...]  # "attn" | "swa"


class Reader:
    """Typed access to one config dict with the architecture's defaults; errors name the key."""

    def __init__(self, config: Mapping[str, Any], family: str) -> None:
        self.config = config
        self.family = family
        self.defaults = DEFAULTS[family]

    def has(self, key: str) -> bool:
        return key in self.config

    def raw(self, key: str) -> Any:
        return self.config[key] if key in self.config else self.defaults.get(key)

    def int(self, key: str, value: Any = None) -> int:
        value = self.raw(key) if value is None else value
        if isinstance(value, bool) or not isinstance(value, int):
            raise HFImportError(f"config key '{key}' must be an integer, got {value!r}")
        if value < 1:
            raise HFImportError(f"config key '{key}' must be positive, got {value!r}")
        return value

    def float(self, key: str, value: Any = None) -> float:
        value = self.raw(key) if value is None else value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise HFImportError(f"config key '{key}' must be a finite number, got {value!r}")
        return float(value)

    def bool(self, key: str, value: Any = None) -> bool:
        value = self.raw(key) if value is None else value
        if not isinstance(value, bool):
            raise HFImportError(f"config key '{key}' must be true or false, got {value!r}")
        return value

    def str_list(self, key: str) -> list[str]:
        value = self.raw(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise HFImportError(f"config key '{key}' must be a list of strings, got {value!r}")
        return value


def architecture(config: Mapping[str, Any]) -> str:
    """The transformers class name of `config` (from `architectures`, else `model_type`); unknown ones raise."""
    archs = config.get("architectures")
    if archs is None:
        by_type = {family: name for name, family in ARCHITECTURES.items()}
        model_type = config.get("model_type")
        if model_type in by_type:
            return by_type[model_type]
        raise HFImportError(
            f"config has no 'architectures' and its 'model_type' {model_type!r} is not supported; "
            f"supported: {', '.join(ARCHITECTURES)}"
        )
    if not isinstance(archs, list) or len(archs) != 1:
        raise HFImportError(f"config key 'architectures' must list exactly one architecture, got {archs!r}")
    if archs[0] not in ARCHITECTURES:
        raise HFImportError(
            f"config key 'architectures': {archs[0]!r} is not supported; supported: {', '.join(ARCHITECTURES)}"
        )
    return str(archs[0])


def read_rope(r: Reader) -> Rope:
    """Default RoPE only: theta from `rope_parameters` / `rope_scaling` / `rope_theta`; anything else raises."""
    for key in ("partial_rotary_factor", "rotary_pct"):
        if r.config.get(key) not in (None, 1, 1.0):
            raise HFImportError(
                f"config key '{key}' = {r.config[key]!r}: partial rotary embeddings are not "
                "expressible (std.attention rotates the whole head)"
            )
    key = "rope_scaling" if r.config.get("rope_scaling") else "rope_parameters"
    params = r.config.get(key) or {}
    if not isinstance(params, dict):
        raise HFImportError(f"config key '{key}' must be a dict, got {params!r}")
    if params and all(isinstance(v, dict) for v in params.values()):
        raise HFImportError(f"config key '{key}': per-layer-type RoPE parameters are not supported")
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type != "default":
        raise HFImportError(
            f"config key '{key}': rope_type {rope_type!r} is not supported (only default RoPE; "
            "std.attention has no llama3/yarn/linear/dynamic/longrope scaling)"
        )
    factor = params.get("partial_rotary_factor")
    if factor not in (None, 1, 1.0):
        raise HFImportError(
            f"config key '{key}.partial_rotary_factor' = {factor!r}: partial rotary embeddings are not expressible"
        )
    unknown = sorted(set(params) - {"rope_type", "type", "rope_theta", "partial_rotary_factor"})
    if unknown:
        raise HFImportError(f"config key '{key}' has entries livc cannot honour: {', '.join(unknown)}")
    theta = params.get("rope_theta", r.raw("rope_theta"))
    return Rope(r.float(f"{key}.rope_theta" if "rope_theta" in params else "rope_theta", theta))


def read_attention(r: Reader, d: int, kv_default: int | None) -> Attention:
    heads = r.int("num_attention_heads")
    kv = r.raw("num_key_value_heads") if r.has("num_key_value_heads") else kv_default
    kv_heads = r.int("num_key_value_heads", heads if kv is None else kv)
    head_dim = r.config.get("head_dim")
    head_dim = r.int("head_dim", head_dim) if head_dim is not None else d // heads
    if head_dim < 1:
        raise HFImportError(f"config keys 'hidden_size' ({d}) / 'num_attention_heads' ({heads}) give head_dim 0")
    if heads % kv_heads:
        raise HFImportError(
            f"config key 'num_key_value_heads' ({kv_heads}) must divide 'num_attention_heads' ({heads})"
        )
    return Attention(heads, kv_heads, head_dim, read_rope(r))


def read_dtype(config: Mapping[str, Any]) -> str | None:
    value = config.get("dtype", config.get("torch_dtype"))
    return DTYPES.get(value) if isinstance(value, str) else None


def read_common(r: Reader, arch: str, eps_key: str, tie_key: str) -> Common:
    d = r.int("hidden_size")
    context = r.raw("max_position_embeddings")
    kv_default = DEFAULTS[r.family]["num_key_value_heads"]
    return Common(
        arch=arch,
        vocab=r.int("vocab_size"),
        d=d,
        layers=r.int("num_hidden_layers"),
        eps=r.float(eps_key),
        tied=r.bool(tie_key, r.raw(tie_key)),
        context=r.int("max_position_embeddings") if context is not None else None,
        dtype=read_dtype(r.config),
        attention=read_attention(r, d, kv_default),
    )


def check_layer_types(key: str, kinds: list[str], allowed: Mapping[str, str], layers: int) -> tuple[str, ...]:
    if len(kinds) != layers:
        raise HFImportError(f"config key '{key}' has {len(kinds)} entries but 'num_hidden_layers' is {layers}")
    bad = sorted({k for k in kinds if k not in allowed})
    if bad:
        raise HFImportError(f"config key '{key}' has unsupported layer types {bad}; supported: {sorted(allowed)}")
    return tuple(allowed[k] for k in kinds)


def lfm2_layer_kinds(r: Reader, layers: int) -> tuple[str, ...]:
    allowed = {"conv": "conv", "full_attention": "attn"}
    if r.config.get("layer_types") is not None:
        return check_layer_types("layer_types", r.str_list("layer_types"), allowed, layers)
    idxs = r.config.get("full_attn_idxs")
    if idxs is None:
        return ("attn",) * layers
    if not isinstance(idxs, list) or not all(isinstance(i, int) and 0 <= i < layers for i in idxs):
        raise HFImportError(f"config key 'full_attn_idxs' must list layer indices below {layers}, got {idxs!r}")
    return tuple("attn" if i in idxs else "conv" for i in range(layers))


def read_lfm2(config: Mapping[str, Any]) -> Lfm2Spec:
    r = Reader(config, "lfm2")
    tie_key = "tie_embedding" if "tie_embedding" in config else "tie_word_embeddings"
    common = read_common(r, "Lfm2ForCausalLM", "norm_eps", tie_key)
    kinds = lfm2_layer_kinds(r, common.layers)
    if "attn" in kinds and common.eps != QK_NORM_EPS:
        raise HFImportError(
            f"config key 'norm_eps' = {common.eps!r}: LFM2's QK-norm uses norm_eps, but "
            f"std.attention.GQA's QK-norm eps is fixed at {QK_NORM_EPS!r}"
        )
    ff_key = "block_ff_dim" if "block_ff_dim" in config else "intermediate_size"
    multiplier = r.raw("block_ffn_dim_multiplier")
    return Lfm2Spec(
        common=common,
        layer_kinds=kinds,
        ff_dim=r.int(ff_key),
        ffn_auto_adjust=r.bool("block_auto_adjust_ff_dim"),
        ffn_multiplier=None if multiplier is None else r.float("block_ffn_dim_multiplier"),
        ffn_multiple_of=r.int("block_multiple_of"),
        kernel=r.int("conv_L_cache"),
        conv_bias=r.bool("conv_bias"),
    )


def check_activation(r: Reader) -> None:
    act = r.raw("hidden_act")
    if act != "silu":
        raise HFImportError(f"config key 'hidden_act' = {act!r}: std.mlp.SwiGLU uses silu only")


def qwen2_layer_kinds(r: Reader, layers: int) -> tuple[tuple[str, ...], int | None]:
    """Qwen2: `layer_types`, else layers >= max_window_layers slide when `use_sliding_window` (as transformers)."""
    window = r.int("sliding_window") if r.bool("use_sliding_window") else None
    if r.config.get("layer_types") is not None:
        allowed = {"full_attention": "attn", "sliding_attention": "swa"}
        kinds = check_layer_types("layer_types", r.str_list("layer_types"), allowed, layers)
        if "swa" in kinds and window is None:
            raise HFImportError(
                "config key 'layer_types' has sliding_attention layers but 'use_sliding_window' "
                "is false (transformers then has no window)"
            )
        return kinds, window
    if window is None:
        return ("attn",) * layers, None
    first = r.raw("max_window_layers")
    first = layers if first is None else first
    if isinstance(first, bool) or not isinstance(first, int) or first < 0:
        raise HFImportError(f"config key 'max_window_layers' must be a non-negative integer, got {first!r}")
    return tuple("swa" if i >= first else "attn" for i in range(layers)), window


def read_decoder(config: Mapping[str, Any], arch: str) -> DecoderSpec:
    family = ARCHITECTURES[arch]
    r = Reader(config, family)
    common = read_common(r, arch, "rms_norm_eps", "tie_word_embeddings")
    check_activation(r)
    if family == "qwen2":
        kinds, window = qwen2_layer_kinds(r, common.layers)
        qkv_bias, out_bias, mlp_bias = True, False, False
    else:
        if config.get("layer_types") is not None or config.get("sliding_window") is not None:
            key = "layer_types" if config.get("layer_types") is not None else "sliding_window"
            raise HFImportError(f"config key '{key}': LlamaForCausalLM has no sliding-window layers")
        kinds, window = ("attn",) * common.layers, None
        qkv_bias = out_bias = r.bool("attention_bias")
        mlp_bias = r.bool("mlp_bias")
    return DecoderSpec(common, r.int("intermediate_size"), qkv_bias, out_bias, mlp_bias, window, kinds)


def read_config(config: Mapping[str, Any]) -> Lfm2Spec | DecoderSpec:
    """The validated spec of a supported Hugging Face config dict; raises `HFImportError` otherwise."""
    if not isinstance(config, Mapping):
        raise HFImportError(f"a Hugging Face config must be a JSON object, got {type(config).__name__}")
    arch = architecture(config)
    return read_lfm2(config) if arch == "Lfm2ForCausalLM" else read_decoder(config, arch)


__all__ = ["ARCHITECTURES", "DEFAULTS", "Common", "DecoderSpec", "HFImportError", "Lfm2Spec", "read_config"]
