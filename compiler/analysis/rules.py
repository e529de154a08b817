"""Cost rules: one function per primitive, returning symbolic per-sequence costs (batch 1).

Conventions (documented in docs/costs.md):
- a multiply-add is 2 FLOPs; elementwise ops (add, mul, silu, exp, ...) cost 1 FLOP per element;
- prefill at length L, decode of the token at position t (it sees t + 1 keys, `t1` = t + 1);
- attention counts its two matmuls (QK^T and AV) over the (causal / banded) pairs; softmax is
  not counted; RMSNorm costs 4 FLOPs/element, LayerNorm 7, RoPE 3 per rotated element;
- FFT convolution: a real FFT of size n costs 2.5·n·log2(n); a long convolution over L is two
  forward FFTs and one inverse of size 2L plus a complex product (6 FLOPs per frequency);
- `pairs` (prefill FLOPs quadratic in L) are kept apart from `linear` so that Mixture-of-Recursions
  can scale them by the square of the capacity;
- caches are counted in elements; `cache_min` is the state mathematically needed, `cache_alloc`
  what the generated PyTorch module allocates for `init_cache(batch, max_len = L)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from livc.compiler.ir.nodes import Op, TensorType
from livc.compiler.ir.primitives import BINARY_OPS, UNARY_OPS
from livc.compiler.ir.sym import LOG2_2L, T1, ZERO, L, Poly, min_l, min_t1


@dataclass(frozen=True)
class OpCost:
    prefill_linear: Poly = ZERO  # FLOPs linear in L (per token work)
    prefill_pairs: Poly = ZERO  # FLOPs over token pairs (attention, dense token mixing)
    decode_token: Poly = ZERO  # FLOPs for one decoded token, excluding its work over the history
    decode_history: Poly = ZERO  # FLOPs over the cached history (in t1)
    cache_min: Poly = ZERO
    cache_alloc: Poly = ZERO
    activations: Poly = ZERO  # elements saved for backward (training), per sequence


@dataclass(frozen=True)
class OpView:
    """What a rule sees: the op, its input types, and (for attention) the pre-repeat K/V types."""

    op: Op
    inputs: tuple[TensorType, ...]
    kv_heads: tuple[TensorType, TensorType] | None = None

    @property
    def out(self) -> TensorType:
        return self.op.outputs[0].type

    def attr(self, name: str, default: object = None) -> object:
        return self.op.attr(name, default)


def per_token(flops: int, act: int = 0, state: int = 0) -> OpCost:
    """Work proportional to the number of tokens, plus an optional constant recurrent state."""
    return OpCost(
        prefill_linear=L * flops,
        decode_token=Poly.const(flops),
        activations=L * act,
        cache_min=Poly.const(state),
        cache_alloc=Poly.const(state),
    )


def _n(t: TensorType) -> int:
    return t.numel


def linear(v: OpView) -> OpCost:
    extra = _n(v.out) if v.op.param("bias") else 0
    return per_token(2 * _n(v.inputs[0]) * _n(v.out) + extra, _n(v.out))


def grouped_linear(v: OpView) -> OpCost:
    groups = int(v.attr("groups"))  # type: ignore[arg-type]
    return per_token(2 * _n(v.inputs[0]) * _n(v.out) // groups, _n(v.out))


def view(v: OpView) -> OpCost:
    return OpCost()


def elementwise(v: OpView) -> OpCost:
    return per_token(_n(v.out), _n(v.out))


def conv(v: OpView) -> OpCost:
    c, k = _n(v.out), int(v.attr("kernel"))  # type: ignore[arg-type]
    bias = c if v.op.param("bias") else 0
    return per_token(2 * k * c + bias, c, state=(k - 1) * c)


def rope(v: OpView) -> OpCost:
    return per_token(3 * int(_n(v.out) * float(v.attr("fraction", 1.0))), _n(v.out))  # type: ignore[arg-type]


def rmsnorm(v: OpView) -> OpCost:
    return per_token((4 if v.op.param("weight") else 3) * _n(v.out), _n(v.out))


def layernorm(v: OpView) -> OpCost:
    n = _n(v.out)
    return per_token(5 * n + (n if v.op.param("weight") else 0) + (n if v.op.param("bias") else 0), n)


def _causal_pairs(window: int | None, mask: object) -> tuple[Poly, Poly]:
    """(prefill pairs in L, decode keys in t1)."""
    if mask == "bidirectional":
        return L * L, T1
    if window is None:
        return (L * L + L) * _HALF, T1
    m = min_l(window)
    return (m * m + m) * _HALF + L * window - m * window, min_t1(window)


_HALF = Fraction(1, 2)


def attention(v: OpView) -> OpCost:
    h, dk = v.inputs[0].shape
    dv = v.inputs[2].shape[1]
    window = v.attr("window")
    pairs, keys = _causal_pairs(window if isinstance(window, int) else None, v.attr("mask"))
    per_pair = h * (2 * dk + 2 * dv)
    cache_min = cache_alloc = Poly.const(0)
    if v.attr("cache_owner") is None and v.kv_heads is not None:
        kv = _n(v.kv_heads[0]) + _n(v.kv_heads[1])
        # the generated module keeps [B, KV, max_len, d] buffers, or a ring of min(window, max_len) positions
        cache_min = cache_alloc = (min_l(window) if isinstance(window, int) else L) * kv
    return OpCost(
        prefill_pairs=pairs * per_pair,
        decode_history=keys * per_pair,
        cache_min=cache_min,
        cache_alloc=cache_alloc,
        activations=L * (_n(v.out) + h),
    )


def _state_op(v: OpView, flops: int, state: int) -> OpCost:
    owned = 0 if v.attr("cache_owner") is not None else state
    return per_token(flops, _n(v.out), owned)


def linear_attention(v: OpView) -> OpCost:
    h, dk = v.inputs[0].shape
    dv = v.inputs[2].shape[1]
    norm = 1 if v.attr("normalize") else 0
    return _state_op(v, 4 * h * dk * dv + 4 * h * dk * norm + 2 * h * dk, h * dk * dv + h * dk * norm)


def gated_scan(v: OpView) -> OpCost:
    h, dk = v.inputs[0].shape
    dv = v.inputs[2].shape[1]
    return _state_op(v, 5 * h * dk * dv + h * dk, h * dk * dv)


def selective_scan(v: OpView) -> OpCost:
    e, n = _n(v.out), int(v.attr("state"))  # type: ignore[arg-type]
    return _state_op(v, 9 * e * n + 2 * e, e * n)


def _filter_spec(text: str) -> dict[str, float]:
    return {k: float(x) for k, x in re.findall(r"(\w+) = ([0-9.eE+-]+)", text)}


def long_conv(v: OpView) -> OpCost:
    c = _n(v.out)
    spec_text = str(v.attr("filter"))
    spec = _filter_spec(spec_text)
    fft = (LOG2_2L * L * 15 + L * 6) * c
    bias = 2 * c + (c if v.op.param("bias") else 0)  # skip D·u (mul + add), then the optional bias
    if spec_text.startswith("modal_filter"):
        s = int(spec["state"])
        return OpCost(
            prefill_linear=fft + L * (4 * c * s + bias),
            decode_token=Poly.const(4 * c * s + bias),
            cache_min=Poly.const(c * s),
            cache_alloc=Poly.const(c * s),
            activations=L * c,
        )
    f, e, inner = int(spec["order"]), int(spec["emb_dim"]), int(spec["inner_layers"])
    # per position: Linear(e->f) + bias + sin(freq * .) -> 2ef + 3f; each inner layer 2f^2 + 3f; out 2fc; window c
    filter_gen = 2 * e * f + 3 * f + inner * (2 * f * f + 3 * f) + 2 * f * c + c
    return OpCost(
        prefill_linear=fft + L * (filter_gen + bias),
        decode_token=Poly.const(bias),
        decode_history=T1 * (2 * c),
        cache_min=L * c,
        cache_alloc=L * c,
        activations=L * c,
    )


def token_dense(v: OpView) -> OpCost:
    c = _n(v.out)
    return OpCost(
        prefill_pairs=(L * L + L) * _HALF * (2 * c),
        decode_history=T1 * (2 * c),
        cache_min=L * c,
        cache_alloc=L * c,
        activations=L * c,
    )


def moe(v: OpView) -> OpCost:
    d = _n(v.out)
    n, k, f, s = (int(v.attr(a, 0)) for a in ("experts", "top_k", "hidden", "shared"))  # type: ignore[arg-type]
    # router 2dn + n; each active expert is a SwiGLU: 6df + 2f (silu, gate product); combine (2k - 1 + s)d
    return per_token(2 * d * n + n + (k + s) * (6 * d * f + 2 * f) + (2 * k - 1 + s) * d, (k + s) * 3 * f + d)


def lm_head(v: OpView) -> OpCost:
    return per_token(2 * _n(v.inputs[0]) * _n(v.out), _n(v.out))


def embed(v: OpView) -> OpCost:
    return OpCost(activations=L * _n(v.out))


RULES = {
    "linear": linear,
    "grouped_linear": grouped_linear,
    "split": view,
    "split_heads": view,
    "merge_heads": view,
    "repeat_heads": view,
    "shared_feature": view,
    "short_conv": conv,
    "causal_conv": conv,
    "apply_rope": rope,
    "rmsnorm": rmsnorm,
    "layernorm": layernorm,
    "attention": attention,
    "linear_attention": linear_attention,
    "gated_scan": gated_scan,
    "selective_scan": selective_scan,
    "long_conv": long_conv,
    "token_dense": token_dense,
    "scale": elementwise,
    "moe": moe,
    "embed": embed,
    "lm_head": lm_head,
    **{n: elementwise for n in (*UNARY_OPS, *BINARY_OPS)},
}
