"""Per-operator cost checks: livc's cost report against independent hand computations.

For every stdlib operator, a one-layer model is written in .liv text around it (small, mostly odd
widths: d = 45 or 48, vocab 97), compiled by the real pipeline and analysed. The layer row's
parameters, prefill FLOPs at two lengths L (so that both the L and the L^2 terms count), decode
FLOPs at two positions t, and the inference cache (minimal and allocated, in elements) at two L are
compared with a hand computation written out below, term by term, from the papers / reference code
(LIV-NOTES §2-§6) and livc's documented conventions (compiler/analysis/rules.py, docs/costs.md):

- a multiply-add is 2 FLOPs; an elementwise op (add, mul, silu, exp, ...) is 1 FLOP per element;
- RMSNorm 4 FLOPs per element (3 without weight), LayerNorm 7 (5 + weight + bias), RoPE 3 per
  rotated element; softmax is not counted;
- attention counts QK^T and AV over the causal (banded) pairs; decode at position t sees t + 1 keys;
- a long convolution in prefill is 3 real FFTs of size 2L (2.5 n log2 n each) plus a complex
  product of 6 FLOPs per frequency (L frequencies per channel);
- caches are in elements per sequence: `cache_min` the state mathematically needed, `cache_alloc`
  what the generated PyTorch module (backends/pytorch) allocates for `init_cache(batch, max_len = L)`:
  static [B, KV, max_len, hd] K/V buffers (a ring of min(window, max_len) positions for a sliding window)
  and k - 1 taps per conv channel (HF's Lfm2HybridConvCache / MambaCache keep k taps; livc's module does not).

Every layer is wrapped pre-norm residual, so the layer row also holds the wrapper: an RMSNorm(d)
(d weights, 4d FLOPs per token) and the residual add (d FLOPs per token); `_wrapped` adds them.
None of the expected values below is computed by livc code: they only use the formulas written here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from livc.compiler.analysis.costs import CostReport, Row, analyze
from livc.compiler.pipeline import compile_source
from livc.dsl.render import render_all_text

VOCAB = 97
LENGTHS = (3, 37)  # two prompt lengths; 3 is below and 37 above the windows (5, 7) used below
POSITIONS = (2, 40)  # two decode positions: t + 1 = 3 keys and t + 1 = 41 keys

MODULES = {
    "GQA": "attention",
    "MHA": "attention",
    "MQA": "attention",
    "SWA": "attention",
    "LinearAttention": "attention",
    "GLA": "recurrence",
    "Mamba": "recurrence",
    "GatedShortConv": "conv",
    "SwiGLU": "mlp",
    "GLU": "mlp",
    "MoE": "mlp",
    "Hyena": "hyena",
    "HyenaX": "hyena",
    "HyenaY": "hyena",
    "HyenaSE": "hyena",
    "HyenaMR": "hyena",
    "HyenaLI": "hyena",
    "RMSNorm": "norms",
    "LayerNorm": "norms",
}


# --------------------------------------------------------------------------------------------
# the one-layer models


def model_text(layer: str, d: int, tied: bool = False) -> str:
    """A one-layer model around `layer` (a .liv expression such as `GQA(d, heads = 6)`)."""
    name = layer.split("(")[0]
    imports = ["from std.norms import RMSNorm, LayerNorm", "from std.embedding import Embedding, LMHead"]
    if MODULES[name] != "norms":
        imports.append(f"from std.{MODULES[name]} import {name}")
    return (
        "\n".join(imports)
        + f"""

model OneLayer(vocab: int = {VOCAB}, d: int = {d}) {{
    embedding: Embedding(vocab, d)
    norm: RMSNorm(d)
    layers: [{layer}]
    final_norm: RMSNorm(d)
    head: LMHead(vocab, d, tied = {"true" if tied else "false"})
}}
"""
    )


@functools.cache
def report(layer: str, d: int, tied: bool = False) -> CostReport:
    result = compile_source(model_text(layer, d, tied), f"<{layer}>")
    assert result.ok, render_all_text(list(result.diagnostics))
    (model,) = result.models
    return analyze(model)


def row(rep: CostReport, key: str) -> Row:
    return next(r for r in rep.rows if r.key == key)


# --------------------------------------------------------------------------------------------
# hand computations


@dataclass(frozen=True)
class Hand:
    """Expected costs of one operator (without the pre-norm wrapper)."""

    params: int
    prefill: Callable[[int], float]  # FLOPs for a prompt of L tokens
    decode: Callable[[int], float]  # FLOPs for the token at position t (it sees t + 1 keys)
    cache_min: Callable[[int], int]  # elements per sequence after L tokens
    cache_alloc: Callable[[int], int]


def per_token(params: int, flops: int, state: int = 0) -> Hand:
    """An operator whose work is the same for every token and whose decode state is constant (and allocated)."""
    return Hand(params, lambda L: L * flops, lambda t: flops, lambda L: state, lambda L: state)


def _wrapped(h: Hand, d: int) -> Hand:
    """Add the pre-norm residual wrapper: RMSNorm(d) weights d, 4d FLOPs/token; residual add d FLOPs/token."""
    wrap = 4 * d + d
    return Hand(
        h.params + d, lambda L: h.prefill(L) + L * wrap, lambda t: h.decode(t) + wrap, h.cache_min, h.cache_alloc
    )


def causal_pairs(L: int, window: int | None) -> int:
    """(query, key) pairs of a causal mask over L tokens, banded to the last `window` keys: counted one by one."""
    return sum(i + 1 if window is None else min(i + 1, window) for i in range(L))


def fft_conv(L: int, c: int) -> float:
    """FFT convolution of c channels over L tokens: u and h forward, one inverse, each a real FFT of size
    n = 2L at 2.5 n log2 n FLOPs, plus the pointwise complex product at 6 FLOPs per frequency. livc takes
    L frequencies per channel (a real FFT of size 2L has L + 1 bins: the Nyquist bin is dropped)."""
    n = 2 * L
    return c * (3 * 2.5 * n * math.log2(n) + 6 * L)


def attention_hand(
    d: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    *,
    qk_norm: bool = False,
    rope: bool = True,
    window: int | None = None,
    bias: bool = False,
) -> Hand:
    """GQA (Ainslie et al. 2023) as HF LlamaAttention / Lfm2Attention; MHA: kv_heads = heads; MQA: kv_heads = 1."""
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    params = (
        d * q_out  # q_proj
        + d * kv_out  # k_proj
        + d * kv_out  # v_proj
        + q_out * d  # out_proj
        + (head_dim + head_dim if qk_norm else 0)  # q_layernorm, k_layernorm: one head_dim weight each
        + (q_out + kv_out + kv_out + d if bias else 0)
    )  # biases of q, k, v, out
    token = (
        2 * d * q_out  # q_proj (multiply-add = 2)
        + 2 * d * kv_out
        + 2 * d * kv_out  # k_proj, v_proj (only kv_heads heads are computed)
        + 2 * q_out * d  # out_proj
        + (q_out + kv_out + kv_out + d if bias else 0)  # bias adds
        + (4 * q_out + 4 * kv_out if qk_norm else 0)  # RMSNorm over head_dim on q and on k (before repeat)
        + (3 * q_out + 3 * kv_out if rope else 0)
    )  # RoPE on q and on k (before repeat)
    pair = heads * (2 * head_dim) + heads * (2 * head_dim)  # QK^T and AV for one (query, key) pair, all heads
    keep = (lambda n: n) if window is None else (lambda n: min(n, window))
    return Hand(
        params,
        lambda L: L * token + causal_pairs(L, window) * pair,
        lambda t: token + keep(t + 1) * pair,  # position t attends to t + 1 keys (at most `window`)
        lambda L: 2 * kv_out * keep(L),  # K and V of kv_heads heads for the kept tokens (not repeated)
        lambda L: 2 * kv_out * keep(L),  # max_len K/V buffers, or a ring of min(window, max_len) positions
    )


def linear_attention_hand(d: int, heads: int, normalize: bool) -> Hand:
    """Katharopoulos et al. 2020: o = phi(q) S / phi(q) z with S += phi(k)^T v, z += phi(k), phi = elu + 1."""
    hd = d // heads
    inner = heads * hd
    params = 3 * d * inner + inner * d  # q, k, v, out projections (no bias)
    per_head = (
        hd
        + hd  # phi on q and on k (1 FLOP/element)
        + 2 * hd * hd  # S += phi(k)^T v: one multiply-add per state entry
        + 2 * hd * hd  # phi(q) S: hd x hd multiply-adds
        + (
            (
                hd  # z += phi(k)
                + 2 * hd  # phi(q) . z
                + hd
            )  # divide the hd outputs by it
            if normalize
            else 0
        )
    )
    flops = 2 * d * inner * 3 + 2 * inner * d + heads * per_head
    state = heads * (hd * hd + (hd if normalize else 0))  # S per head, plus z per head when normalizing
    return per_token(params, flops, state)


def gla_hand(d: int, heads: int, key_dim: int, value_dim: int, gate_rank: int) -> Hand:
    """GLA (Yang et al. 2023) as fla `layers/gla.py`; params as LIV-NOTES §5.3."""
    dk, dv = key_dim // heads, value_dim // heads
    params = (
        d * key_dim  # q_proj
        + d * key_dim  # k_proj
        + d * value_dim  # v_proj
        + d * value_dim  # g_proj
        + d * gate_rank  # gk_proj[0]: d -> rank, no bias
        + gate_rank * key_dim
        + key_dim  # gk_proj[1]: rank -> key_dim, with bias
        + value_dim // heads  # g_norm: RMSNorm over head_v_dim (one weight shared by all heads)
        + value_dim * d
    )  # o_proj
    scan_per_head = (
        dk  # exp of the log decay
        + dk * dv  # S * alpha (diagonal decay of the state)
        + dk * dv
        + dk * dv  # k^T v outer product and its accumulation into S
        + 2 * dk * dv
    )  # q S readout
    flops = (
        2 * d * key_dim * 2
        + 2 * d * value_dim * 2  # q, k, v, g projections
        + 2 * d * gate_rank
        + 2 * gate_rank * key_dim
        + key_dim  # low-rank gate (with the bias add)
        + key_dim
        + key_dim  # logsigmoid, / gate_normalizer
        + heads * scan_per_head
        + 4 * value_dim  # per-head RMSNorm on o
        + value_dim
        + value_dim  # silu(g), gate multiply
        + 2 * value_dim * d
    )  # o_proj
    return per_token(params, flops, heads * dk * dv)  # state S: dk x dv per head (= key_dim * value_dim / heads)


def mamba_hand(d: int, state: int = 16, kernel: int = 4) -> Hand:
    """Mamba-1 (Gu & Dao 2023) as HF MambaMixer, defaults E = 2d, R = ceil(d / 16); params as LIV-NOTES §5.1."""
    e, n, r, k = 2 * d, state, math.ceil(d / 16), kernel
    params = (
        2 * d * e  # in_proj d -> 2E (x, z), no bias
        + e * k
        + e  # depthwise conv1d with bias
        + e * (r + 2 * n)  # x_proj E -> R + 2N, no bias
        + r * e
        + e  # dt_proj R -> E with bias
        + e * n  # A_log
        + e  # D (skip)
        + e * d
    )  # out_proj
    # Selective scan per (channel, state): livc's documented constant is 9 FLOPs (LIV-NOTES §5.1 "~9EN");
    # HF's slow path does 8 (exp(dt A): 2, dt B: 1, * u: 1, state update: 2, C readout: 2). Following livc.
    scan = 9 * e * n + 2 * e  # + skip D * u + y (2 per channel)
    flops = (
        2 * d * 2 * e  # in_proj
        + 2 * k * e
        + e  # conv1d (with bias)
        + e  # silu
        + 2 * e * (r + 2 * n)  # x_proj
        + 2 * r * e
        + e  # dt_proj with bias
        + e  # softplus
        + scan
        + e
        + e  # silu(z), gate multiply
        + 2 * e * d
    )  # out_proj
    # ssm state E x N + (k - 1) conv taps (livc's module allocates exactly that; HF MambaCache keeps k taps)
    return per_token(params, flops, e * n + (k - 1) * e)


def hyena_hand(
    d: int, order: int, filter_order: int, emb_dim: int = 3, short_kernel: int = 3, inner_layers: int = 2
) -> Hand:
    """Order-N Hyena as safari `HyenaOperator` + `HyenaFilter` (biases on), each long conv owning its filter MLP."""
    f, w, convs = filter_order, (order + 1) * d, order - 1  # filter width, projected width, long convolutions
    filter_params = (
        emb_dim * f
        + f  # Linear(emb_dim, f) of the filter MLP
        + f  # Sin frequency (one `act` shared by all sine layers)
        + inner_layers * (f * f + f)  # inner Linear(f, f) layers
        + f * d  # Linear(f, d, bias=False)
        + d
    )  # HyenaFilter.bias: the per-channel skip D, `y + u * D` in fftconv_ref (its only vector)
    params = (
        d * w
        + w  # in_proj d -> (N + 1) d with bias
        + w * short_kernel
        + w  # depthwise short conv with bias
        + convs * filter_params
        + d * d
        + d
    )  # out_proj with bias
    # implicit filter, generated at each of the L positions: every MLP layer is matmul + bias + freq * x + sin;
    # the exponential decay window is a constant buffer, applied with one multiply per channel
    filter_gen = 2 * emb_dim * f + f + f + f + inner_layers * (2 * f * f + f + f + f) + 2 * f * d + d
    token = (
        2 * d * w
        + w  # in_proj
        + 2 * short_kernel * w
        + w  # short conv
        + (order - 1) * d  # gates v * x_i before each long conv
        + convs * 2 * d  # skip: u * D + y
        + d  # final gate x0 * z
        + 2 * d * d
        + d
    )  # out_proj
    return Hand(
        params,
        lambda L: L * token + convs * (fft_conv(L, d) + L * filter_gen),
        # decode: a direct causal convolution over the t + 1 cached inputs (taps precomputed, no filter MLP)
        lambda t: token + convs * 2 * (t + 1) * d,
        lambda L: (short_kernel - 1) * w + convs * L * d,  # short conv taps + the long convs' input history
        lambda L: (short_kernel - 1) * w + convs * L * d,  # allocated as needed: [B, C, k - 1], [B, C, max_len]
    )


def gated_conv_hand(
    d: int,
    inner_kernel: int | None,
    short_kernel: int | None = None,
    groups: int | None = None,
    short_bias: bool = False,
) -> Hand:
    """The gated short-conv family y = out_proj(q * conv(k * v)): GatedShortConv (LFM2), Hyena-X/Y/SE/MR.

    `short_kernel`: featurizer conv over the 3d projection (None: no featurizer conv);
    `inner_kernel`: the inner causal conv (None: Hyena-X, no inner conv); `groups`: filter groups sharing taps.
    """
    params = 3 * d * d  # in_proj d -> 3d, no bias
    flops = 2 * d * 3 * d  # in_proj
    state = 0
    if short_kernel is not None:
        params += 3 * d * short_kernel + (3 * d if short_bias else 0)  # depthwise conv over 3d channels
        flops += 2 * short_kernel * 3 * d + (3 * d if short_bias else 0)
        state = (short_kernel - 1) * 3 * d  # k - 1 past inputs per channel
    flops += d + d  # two gate products: k * v then q * (...)  (Hyena-X: q * k * v)
    if inner_kernel is not None:
        params += (groups if groups is not None else d) * inner_kernel  # taps: one filter per channel or group
        flops += 2 * inner_kernel * d  # every channel still runs its own length-`inner_kernel` FIR
        state += (inner_kernel - 1) * d
    params += d * d  # out_proj
    flops += 2 * d * d
    return per_token(params, flops, state)


def hyena_li_hand(d: int, state: int, short_kernel: int = 3) -> Hand:
    """Hyena-LI (StripedHyena 2 / Evo 2, vortex `HyenaCascade` without FIR): modal long filter, real state."""
    params = (
        3 * d * d  # in_proj
        + 3 * d * short_kernel  # featurizer FIR, no bias
        + d * state
        + d * state  # poles and residues
        + d  # D, the skip (vortex `self.D`; no other per-channel vector)
        + d * d
    )  # out_proj
    token = 2 * d * 3 * d + 2 * short_kernel * 3 * d + d + d + 2 * d * d  # in_proj, FIR, two gates, out_proj
    modal = 4 * d * state  # per (channel, mode): filter tap R p^t in prefill, or x = p x + u; y += R x in decode
    skip = 2 * d  # u * D + y
    return Hand(
        params,
        lambda L: L * (token + modal + skip) + fft_conv(L, d),
        lambda t: token + modal + skip,
        lambda L: (short_kernel - 1) * 3 * d + d * state,
        lambda L: (short_kernel - 1) * 3 * d + d * state,
    )


def swiglu_hand(d: int, hidden: int) -> Hand:
    """SwiGLU / GLU: w2(act(w1 x) * w3 x), no biases (the activation is 1 FLOP per element either way)."""
    return per_token(3 * d * hidden, 2 * d * hidden * 2 + hidden + hidden + 2 * hidden * d)


def moe_hand(d: int, experts: int, top_k: int, hidden: int, shared: int) -> Hand:
    """Token-choice top-k MoE of SwiGLU experts (+ always-on shared experts) with a linear router."""
    params = (experts + shared) * 3 * d * hidden + d * experts  # experts (w1, w3, w2) + router
    expert = 2 * d * hidden * 2 + hidden + hidden + 2 * hidden * d  # one SwiGLU expert, as swiglu_hand
    flops = (
        2 * d * experts  # router logits
        + experts  # router nonlinearity, 1 per logit (livc's convention)
        + (top_k + shared) * expert  # the active experts
        + top_k * d
        + (top_k - 1) * d
        + shared * d
    )  # gate-weight the routed outputs, sum all outputs
    return per_token(params, flops)


# --------------------------------------------------------------------------------------------
# cases: (id, layer expression, d, hand computation)

CASES: list[tuple[str, str, int, Hand]] = [
    ("GQA", "GQA(d, heads = 6, kv_heads = 2)", 48, attention_hand(48, 6, 2, 8)),
    ("GQA-qk_norm", "GQA(d, heads = 6, kv_heads = 2, qk_norm = true)", 48, attention_hand(48, 6, 2, 8, qk_norm=True)),
    ("GQA-window", "GQA(d, heads = 6, kv_heads = 2, window = 5)", 48, attention_hand(48, 6, 2, 8, window=5)),
    (
        "GQA-bias-norope",
        "GQA(d, heads = 6, kv_heads = 3, rope = false, bias = true)",
        48,
        attention_hand(48, 6, 3, 8, rope=False, bias=True),
    ),
    ("MHA", "MHA(d, heads = 4)", 48, attention_hand(48, 4, 4, 12)),
    ("MQA", "MQA(d, heads = 4, head_dim = 10)", 48, attention_hand(48, 4, 1, 10)),
    (
        "SWA",
        "SWA(d, heads = 6, window = 7, kv_heads = 3, qk_norm = true)",
        48,
        attention_hand(48, 6, 3, 8, qk_norm=True, window=7),
    ),
    ("LinearAttention", "LinearAttention(d, heads = 3)", 45, linear_attention_hand(45, 3, normalize=True)),
    (
        "LinearAttention-unnormalized",
        "LinearAttention(d, heads = 3, normalize = false)",
        45,
        linear_attention_hand(45, 3, normalize=False),
    ),
    ("GLA", "GLA(d)", 48, gla_hand(48, 4, 24, 48, 16)),
    ("GLA-odd", "GLA(d, heads = 3, key_dim = 21, value_dim = 45, gate_rank = 7)", 45, gla_hand(45, 3, 21, 45, 7)),
    ("Mamba", "Mamba(d)", 45, mamba_hand(45)),
    ("Hyena-order2", "Hyena(d, filter_order = 8)", 45, hyena_hand(45, 2, 8)),
    ("Hyena-order3", "Hyena(d, order = 3, filter_order = 6, emb_dim = 5)", 45, hyena_hand(45, 3, 6, emb_dim=5)),
    ("HyenaX", "HyenaX(d)", 45, gated_conv_hand(45, None, short_kernel=4)),
    ("HyenaY", "HyenaY(d, kernel = 5)", 45, gated_conv_hand(45, 5)),
    ("HyenaSE", "HyenaSE(d)", 48, gated_conv_hand(48, 7, short_kernel=3, groups=3)),
    ("HyenaMR", "HyenaMR(d)", 48, gated_conv_hand(48, 128, short_kernel=3, groups=3)),
    ("HyenaLI", "HyenaLI(d, state = 5)", 45, hyena_li_hand(45, 5)),
    ("GatedShortConv", "GatedShortConv(d)", 45, gated_conv_hand(45, 3)),
    ("SwiGLU", "SwiGLU(d, 77)", 45, swiglu_hand(45, 77)),
    ("GLU", "GLU(d, 77)", 45, swiglu_hand(45, 77)),
    ("MoE", "MoE(d, experts = 5, top_k = 2, hidden = 21, shared = 1)", 45, moe_hand(45, 5, 2, 21, 1)),
    ("RMSNorm", "RMSNorm(d)", 45, per_token(45, 4 * 45)),  # weight only: 4 FLOPs/element
    ("LayerNorm", "LayerNorm(d)", 45, per_token(2 * 45, 7 * 45)),  # weight + bias: 5 + 1 + 1 per element
    ("LayerNorm-nobias", "LayerNorm(d, bias = false)", 45, per_token(45, 6 * 45)),
]
IDS = [c[0] for c in CASES]


def _layer(case: tuple[str, str, int, Hand]) -> tuple[Row, Hand]:
    _, layer, d, hand = case
    return row(report(layer, d), "0"), _wrapped(hand, d)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_params(case: tuple[str, str, int, Hand]) -> None:
    got, want = _layer(case)
    livc, hand = got.total.params, want.params
    assert livc == hand


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_prefill_flops(case: tuple[str, str, int, Hand]) -> None:
    got, want = _layer(case)
    livc = [got.total.prefill.evaluate(L=n) for n in LENGTHS]
    hand = [want.prefill(n) for n in LENGTHS]
    assert livc == pytest.approx(hand, rel=1e-12), f"at L = {LENGTHS}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_decode_flops(case: tuple[str, str, int, Hand]) -> None:
    got, want = _layer(case)
    livc = [got.total.decode.evaluate(t=t, t1=t + 1) for t in POSITIONS]
    hand = [want.decode(t) for t in POSITIONS]
    assert livc == pytest.approx(hand, rel=1e-12), f"at t = {POSITIONS}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cache_min(case: tuple[str, str, int, Hand]) -> None:
    got, want = _layer(case)
    livc = [got.total.cache_min.evaluate(L=n) for n in LENGTHS]
    hand = [want.cache_min(n) for n in LENGTHS]
    assert livc == hand, f"at L = {LENGTHS}"


# The allocated cache is that of the generated module (see the module docstring), not HF's k-tap conv buffers.
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cache_alloc(case: tuple[str, str, int, Hand]) -> None:
    got, want = _layer(case)
    livc = [got.total.cache_alloc.evaluate(L=n) for n in LENGTHS]
    hand = [want.cache_alloc(n) for n in LENGTHS]
    assert livc == hand, f"at L = {LENGTHS}"


def test_wrapper_is_a_separate_part() -> None:
    """The pre-norm RMSNorm and the residual add are parts of the row next to the operator itself."""
    rep = report("GatedShortConv(d)", 45)
    parts = dict(row(rep, "0").parts)
    assert parts["0.norm"].params == 45 and parts["0.norm"].prefill.evaluate(L=10) == 10 * 4 * 45
    assert parts["0.residual"].params == 0 and parts["0.residual"].decode.evaluate(t=0, t1=1) == 45
    op = gated_conv_hand(45, 3)
    assert sum(c.params for name, c in parts.items() if name.startswith("0.GatedShortConv")) == op.params


LONG_CONV_MODEL = """from std.norms import RMSNorm
from std.embedding import Embedding, LMHead

liv LongConvOnly(d: int, bias: bool = false) {
    featurizer {
        v = linear(x, d)
    }
    token_mix toeplitz {
        y = long_conv(v, modal_filter(state = 4), bias = bias)
    }
    channel_mix dense {
        out = linear(y, d)
        return out
    }
}

model M(vocab: int = 97, d: int = 45) {
    embedding: Embedding(vocab, d)
    norm: RMSNorm(d)
    layers: [LongConvOnly(d), LongConvOnly(d, bias = true)]
    final_norm: RMSNorm(d)
    head: LMHead(vocab, d, tied = false)
}
"""


@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
def test_long_conv_skip_and_bias(bias: bool) -> None:
    """The `long_conv` primitive owns a per-channel skip D (always applied: y + u * D, see the generated
    module's helper `long_conv`) and, with `bias = true`, an additive bias as well (y + u * D + b)."""
    result = compile_source(LONG_CONV_MODEL, "<long_conv>")
    assert result.ok, render_all_text(list(result.diagnostics))
    got = row(analyze(result.models[0]), "1" if bias else "0")
    d, s = 45, 4
    params = (
        d * d  # v = linear(x, d)
        + d * s
        + d * s  # poles, residues
        + d  # skip D
        + (d if bias else 0)  # bias
        + d * d
    )  # out
    token = (
        2 * d * d
        + 2 * d * d  # the two linears
        + 4 * d * s  # modal recurrence: x = p x + u, y += r x
        + 2 * d  # skip: u * D + y
        + (d if bias else 0)
    )  # bias add
    want = _wrapped(per_token(params, token, d * s), d)
    assert got.total.params == want.params
    livc, hand = got.total.decode.evaluate(t=7, t1=8), want.decode(7)
    assert livc == hand


# --------------------------------------------------------------------------------------------
# embedding, head and final norm (model-level rows)


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_embedding_and_head(tied: bool) -> None:
    d = 45
    rep = report("SwiGLU(d, 77)", d, tied)
    emb, head, final = row(rep, "embedding"), row(rep, "head"), row(rep, "final_norm")
    # Embedding: a [vocab, d] table, a lookup costs no FLOPs and keeps no state
    assert emb.total.params == VOCAB * d
    assert emb.total.prefill.evaluate(L=37) == 0 and emb.total.decode.evaluate(t=40, t1=41) == 0
    # LMHead: d -> vocab logits, 2 d V FLOPs per token; livc counts logits at every prompt position
    assert head.total.params == (0 if tied else VOCAB * d)
    assert head.shared_params == (VOCAB * d if tied else 0)  # tied: the embedding table, counted once
    for n in LENGTHS:
        assert head.total.prefill.evaluate(L=n) == n * 2 * d * VOCAB
    assert head.total.decode.evaluate(t=40, t1=41) == 2 * d * VOCAB
    assert head.total.cache_min.evaluate(L=37) == 0
    # final RMSNorm: d weights, 4 FLOPs per element
    assert final.total.params == d and final.total.decode.evaluate(t=0, t1=1) == 4 * d
    # the model total is the sum of the rows
    layer = swiglu_hand(d, 77).params + d
    assert rep.params == VOCAB * d + layer + d + (0 if tied else VOCAB * d)
    assert rep.embedding_params == VOCAB * d
