"""The primitive operators that .liv LIV/op bodies are built from, and builtin model-level values.

This table is the contract between the language and the compiler: the front-end checker validates
calls against `Signature`s, and (later passes) each primitive has exactly one lowering and one cost
rule keyed by the same `Prim` enum. Nothing registers itself at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    """Value kinds seen by the front end (shapes come later, in the compiler's type checker)."""

    TENSOR = "tensor"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    SYMBOL = "symbol"
    FILTER = "filter"
    INTS = "[int]"
    ANY = "any"


class Role(Enum):
    """Where a primitive may appear. ANY primitives are elementwise or structural."""

    FEATURIZER = "featurizer"
    TOKEN_MIX = "token_mix"
    CHANNEL_MIX = "channel_mix"
    ANY = "any"
    MODEL = "model"


@dataclass(frozen=True, slots=True)
class P:
    """One parameter of a primitive: name, kind, and a default (None = required)."""

    name: str
    kind: Kind
    default: object = None
    variadic: bool = False

    @property
    def required(self) -> bool:
        return self.default is None and not self.variadic


@dataclass(frozen=True, slots=True)
class Signature:
    name: str
    params: tuple[P, ...]
    role: Role
    result: Kind
    doc: str
    structure: str | None = None  # the LIV structure a token/channel mixer realises


T, I, F, B, S = Kind.TENSOR, Kind.INT, Kind.FLOAT, Kind.BOOL, Kind.SYMBOL  # noqa: E741
NONE = "none"  # default marker for optional arguments whose default is `none`


def _sig(name: str, role: Role, result: Kind, doc: str, *params: P, structure: str | None = None) -> Signature:
    return Signature(name, params, role, result, doc, structure)


_ELEMENTWISE = ("silu", "gelu", "relu", "sigmoid", "softplus", "tanh", "exp", "sin", "elu_plus_one", "logsigmoid")
# IR-level elementwise ops: the user-callable activations plus the operators `-a`, `a + b`, `a - b`, `a * b`, `a / b`.
UNARY_OPS = (*_ELEMENTWISE, "neg")
BINARY_OPS = ("add", "sub", "mul", "div")

PRIMITIVES: dict[str, Signature] = {
    s.name: s
    for s in (
        # featurizer: projections, grouping, short convolutions, positional encodings
        _sig(
            "linear",
            Role.ANY,
            T,
            "dense channel projection t -> out features (a weight [out, in])",
            P("t", T),
            P("out", I),
            P("bias", B, False),
            structure="dense",
        ),
        _sig(
            "grouped_linear",
            Role.ANY,
            T,
            "block-diagonal projection with `groups` blocks",
            P("t", T),
            P("out", I),
            P("groups", I),
            P("bias", B, False),
            structure="grouped",
        ),
        _sig(
            "split",
            Role.ANY,
            Kind.ANY,
            "split channels into `parts` equal feature groups (a tuple)",
            P("t", T),
            P("parts", I),
        ),
        _sig("split_heads", Role.ANY, T, "view channels as `n` heads of equal size", P("t", T), P("n", I)),
        _sig("merge_heads", Role.ANY, T, "concatenate heads back into channels", P("t", T)),
        _sig(
            "repeat_heads",
            Role.FEATURIZER,
            T,
            "repeat each head `times` times (GQA/MQA K/V expansion)",
            P("t", T),
            P("times", I),
        ),
        _sig(
            "short_conv",
            Role.FEATURIZER,
            T,
            "explicit causal depthwise convolution of length `kernel`",
            P("t", T),
            P("kernel", I),
            P("bias", B, False),
        ),
        _sig(
            "apply_rope",
            Role.FEATURIZER,
            T,
            "rotary position embedding on a headed tensor",
            P("t", T),
            P("theta", F, 10000.0),
            P("fraction", F, 1.0),
        ),
        _sig(
            "rmsnorm",
            Role.ANY,
            T,
            "RMSNorm over the last axis (per head on headed tensors: QK-norm)",
            P("t", T),
            P("eps", F, 1e-5),
            P("affine", B, True),
            structure="diagonal",
        ),
        _sig(
            "layernorm",
            Role.ANY,
            T,
            "LayerNorm over the last axis",
            P("t", T),
            P("eps", F, 1e-5),
            P("bias", B, True),
            structure="diagonal",
        ),
        # token mixing
        _sig(
            "attention",
            Role.TOKEN_MIX,
            T,
            "softmax attention over heads; mask causal|bidirectional",
            P("q", T),
            P("k", T),
            P("v", T),
            P("mask", S, "causal"),
            P("window", I, NONE),
            P("softcap", F, NONE),
            structure="low_rank",
        ),
        _sig(
            "linear_attention",
            Role.TOKEN_MIX,
            T,
            "causal linear attention with a positive feature map",
            P("q", T),
            P("k", T),
            P("v", T),
            P("feature_map", S, "elu_plus_one"),
            P("normalize", B, True),
            structure="semi_separable",
        ),
        _sig(
            "gated_scan",
            Role.TOKEN_MIX,
            T,
            "S_t = diag(exp(log_decay_t)) S_{t-1} + k_t^T v_t, o_t = q_t S_t",
            P("q", T),
            P("k", T),
            P("v", T),
            P("log_decay", T),
            structure="semi_separable",
        ),
        _sig(
            "selective_scan",
            Role.TOKEN_MIX,
            T,
            "Mamba-1 selective SSM (owns A_log [C, state] and skip D [C])",
            P("u", T),
            P("dt", T),
            P("b", T),
            P("c", T),
            P("state", I, 16),
            structure="semi_separable",
        ),
        _sig(
            "causal_conv",
            Role.TOKEN_MIX,
            T,
            "explicit causal depthwise Toeplitz filter of length `kernel`",
            P("t", T),
            P("kernel", I),
            P("bias", B, False),
            P("groups", I, NONE),
            structure="toeplitz",
        ),
        _sig(
            "long_conv",
            Role.TOKEN_MIX,
            T,
            "causal long convolution with an implicit filter (FFT in prefill)",
            P("t", T),
            P("filter", Kind.FILTER),
            P("bias", B, True),
            structure="toeplitz",
        ),
        _sig(
            "token_dense",
            Role.TOKEN_MIX,
            T,
            "a learned dense causal L x L mixing matrix (max_len fixed)",
            P("t", T),
            P("max_len", I),
            structure="dense",
        ),
        # channel mixing
        _sig(
            "scale",
            Role.ANY,
            T,
            "learned per-channel scale (diagonal channel mixing)",
            P("t", T),
            P("init", F, 1.0),
            structure="diagonal",
        ),
        _sig(
            "moe",
            Role.CHANNEL_MIX,
            T,
            "top-k mixture of SwiGLU experts with a linear router",
            P("t", T),
            P("experts", I),
            P("top_k", I),
            P("hidden", I),
            P("shared", I, 0),
            structure="grouped",
        ),
        # embedding and head (op bodies)
        _sig("embed", Role.ANY, T, "token embedding table [vocab, d]", P("tokens", T), P("vocab", I), P("d", I)),
        _sig(
            "lm_head",
            Role.ANY,
            T,
            "logits projection d -> vocab; tied reuses the embedding table",
            P("t", T),
            P("vocab", I),
            P("tied", B, True),
        ),
        *(_sig(n, Role.ANY, T, f"elementwise {n}", P("t", T)) for n in _ELEMENTWISE),
    )
}

# Values that build filters, wrappers and MoR settings (not tensors).
BUILDERS: dict[str, Signature] = {
    s.name: s
    for s in (
        _sig(
            "implicit_filter",
            Role.ANY,
            Kind.FILTER,
            "Hyena filter: positional encoding -> MLP with sine activation -> exponential decay window",
            P("order", I, 64),
            P("emb_dim", I, 3),
            P("inner_layers", I, 2),
            P("sine_freq", F, 1.0),
            P("decay_fast", F, 0.3),
            P("decay_slow", F, 1.5),
        ),
        _sig(
            "modal_filter",
            Role.ANY,
            Kind.FILTER,
            "Hyena-LI filter in modal form: `state` decaying exponentials per channel (recurrent decode)",
            P("state", I, 16),
        ),
        _sig("pre_norm", Role.MODEL, Kind.ANY, "wrap a sublayer as h + f(norm(h)) (the default)", P("norm", Kind.ANY)),
        _sig("post_norm", Role.MODEL, Kind.ANY, "wrap a sublayer as norm(h + f(h))", P("norm", Kind.ANY)),
        _sig("no_residual", Role.MODEL, Kind.ANY, "apply the sublayer without norm or residual"),
        _sig(
            "mor",
            Role.MODEL,
            Kind.ANY,
            "Mixture-of-Recursions over the layer stack",
            P("recursions", I),
            P("sharing", S, "middle_cycle"),
            P("router", Kind.ANY),
            P("kv", S, "recursion_wise"),
        ),
        _sig(
            "expert_choice",
            Role.MODEL,
            Kind.ANY,
            "MoR expert-choice router with per-step capacities",
            P("capacities", Kind.ANY, NONE),
            P("alpha", F, 0.1),
            P("aux_loss", F, 0.001),
            P("activation", S, "sigmoid_gate"),
        ),
        _sig(
            "token_choice",
            Role.MODEL,
            Kind.ANY,
            "MoR token-choice router with a balancing loss",
            P("alpha", F, 1.0),
            P("balance_loss", F, 0.1),
            P("z_loss", F, 1e-5),
        ),
    )
}

SYMBOLS: dict[str, str] = {
    "causal": "mask",
    "bidirectional": "mask",
    "elu_plus_one": "feature_map",
    "relu_map": "feature_map",
    "identity_map": "feature_map",
    "cycle": "mor_sharing",
    "sequence": "mor_sharing",
    "middle_cycle": "mor_sharing",
    "middle_sequence": "mor_sharing",
    "recursion_wise": "mor_kv",
    "kv_share": "mor_kv",
    "sigmoid_gate": "activation",
    "tanh_gate": "activation",
}

DTYPES: dict[str, int] = {"f32": 4, "bf16": 2, "f16": 2, "int8": 1}

SCALAR_FUNCTIONS: dict[str, str] = {
    "min": "smallest of the arguments",
    "max": "largest of the arguments",
    "abs": "absolute value",
    "ceil": "round up to an int",
    "floor": "round down to an int",
    "int": "truncate to int",
    "float": "convert to float",
    "round_up": "round_up(x, m): smallest multiple of m >= x",
    "ceil_div": "ceil_div(a, b): ceil(a / b) for ints",
    "len": "length of a list",
}

TOKEN_STRUCTURES = ("diagonal", "low_rank", "toeplitz", "semi_separable", "dense")
CHANNEL_STRUCTURES = ("diagonal", "grouped", "dense")

# Implicit inputs: `x` in liv/op bodies (the normalised residual stream), `tokens` in ops that embed.
INPUT_NAMES = ("x", "tokens")

MODEL_FIELDS: dict[str, str] = {
    "embedding": "the token embedding (an op instance, e.g. Embedding(vocab, d))",
    "layers": "the layer list: layers are sublayers joined by '+', lists repeat with 'n * [...]'",
    "norm": "the default norm of the pre-norm residual wrapper (e.g. RMSNorm(d))",
    "final_norm": "the norm after the last layer",
    "head": "the LM head (an op instance, e.g. LMHead(vocab, d, tied = true))",
    "recursion": "Mixture-of-Recursions settings, mor(...)",
    "dtype": "parameter dtype (f32, bf16, f16)",
    "context": "maximum sequence length the model is built for",
}
REQUIRED_MODEL_FIELDS = ("embedding", "layers", "head")

BUDGET_METRICS: dict[str, tuple[str, ...]] = {
    "params": (),
    "non_embedding_params": (),
    "active_params": (),
    "cache": ("batch", "seq", "dtype"),
    "cache_alloc": ("batch", "seq", "dtype"),
    "activations": ("batch", "seq", "dtype"),
    "flops_per_token": ("seq",),
    "prefill_flops": ("batch", "seq"),
}
