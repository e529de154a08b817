"""Reference checks of the cost model against published numbers and the hand formulas of LIV-NOTES.

- LFM2-350M / LFM2-1.2B: parameter counts of the model cards, the per-layer formulas of §3.3, the KV
  cache of 6,144 elements per token and the minimal conv state of §3.4, and the exact decode FLOPs
  per token under livc's conventions (the §3.4 approximations made exact);
- Mixture-of-Recursions (examples/mor_360m.liv, mor_kvshare.liv): unique parameters, KV elements per
  token under recursion-wise caching and recursive KV sharing, attention pairs scaled by capacity^2
  (recursion-wise) or capacity (KV sharing), the expert-choice routers;
- STAR sharing (examples/star_shared.liv): parameters after featurizer and feature-group sharing;
- the CLI: `livc cost --format json` and `livc check --budget`.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from livc.cli import main
from livc.compiler.analysis.costs import CostReport, Row
from livc.compiler.ir.sym import Poly
from livc.compiler.pipeline import analyze_path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@functools.cache
def report(name: str) -> CostReport:
    analyzed = analyze_path(EXAMPLES / f"{name}.liv")
    assert analyzed.ok, analyzed.diagnostics
    (rep,) = analyzed.reports
    return rep


def layer_rows(rep: CostReport) -> list[Row]:
    return [r for r in rep.rows if r.key.isdigit()]


def linear_in_l(poly: Poly) -> tuple[float, float]:
    """(coefficient of L, constant) of a polynomial that must be affine in L."""
    f0, f1, f2 = (poly.evaluate(L=n) for n in (0, 1, 2))
    assert f2 - f1 == pytest.approx(f1 - f0), f"{poly} is not affine in L"
    return f1 - f0, f0


# --------------------------------------------------------------------------------------------
# LFM2 (LIV-NOTES §3)

LFM2 = {
    # name: (D, H, KV, hd, F, published params); vocab 65536, 16 layers, conv kernel 3, tied head
    "lfm2_350m": (1024, 16, 8, 64, 4608, 354_483_968),
    "lfm2_1_2b": (2048, 32, 8, 64, 8192, 1_170_340_608),
}
V, N_LAYERS, K = 65536, 16, 3
ATTN_IDX = (2, 5, 8, 10, 12, 14)  # HF `full_attn_idxs`
N_ATTN, N_CONV = len(ATTN_IDX), N_LAYERS - len(ATTN_IDX)


def lfm2_layer_params(d: int, h: int, kv: int, hd: int) -> tuple[int, int]:
    """(conv operator, attention operator) parameters, LIV-NOTES §3.3."""
    conv = 3 * d * d + K * d + d * d  # in_proj d -> 3d, depthwise conv taps, out_proj
    attn = d * h * hd + 2 * d * kv * hd + h * hd * d + 2 * hd  # q, k + v, out, QK-norm weights
    return conv, attn


@pytest.mark.parametrize("name", LFM2)
def test_lfm2_params_match_the_model_card(name: str) -> None:
    d, h, kv, hd, f, published = LFM2[name]
    conv, attn = lfm2_layer_params(d, h, kv, hd)
    ffn = 3 * d * f
    by_formula = V * d + N_CONV * conv + N_ATTN * attn + N_LAYERS * (ffn + 2 * d) + d
    assert by_formula == published
    rep = report(name)
    assert rep.params == published
    assert rep.embedding_params == V * d
    assert rep.non_embedding_params == published - V * d


def test_lfm2_350m_layer_values_of_the_notes() -> None:
    conv, attn = lfm2_layer_params(1024, 16, 8, 64)
    assert (conv, attn, 3 * 1024 * 4608, V * 1024) == (4_197_376, 3_145_856, 14_155_776, 67_108_864)


@pytest.mark.parametrize("name", LFM2)
def test_lfm2_rows_follow_the_per_layer_formulas(name: str) -> None:
    d, h, kv, hd, f, _ = LFM2[name]
    conv, attn = lfm2_layer_params(d, h, kv, hd)
    rows = layer_rows(report(name))
    assert len(rows) == N_LAYERS
    for row in rows:
        is_attn = int(row.key) in ATTN_IDX
        assert row.label == ("GQA + SwiGLU" if is_attn else "GatedShortConv + SwiGLU")
        assert row.total.params == (attn if is_attn else conv) + 3 * d * f + 2 * d  # operator + FFN + 2 norms
        parts = dict(row.parts)
        assert parts["0.norm"].params == parts["1.norm"].params == d
        op = sum(c.params for n, c in parts.items() if n.startswith("0.") and n != "0.norm")
        assert op == (attn if is_attn else conv)
        assert sum(c.params for n, c in parts.items() if n.startswith("1.SwiGLU")) == 3 * d * f
    final = next(r for r in report(name).rows if r.key == "final_norm")
    head = next(r for r in report(name).rows if r.key == "head")
    assert final.total.params == d
    assert head.total.params == 0 and head.shared_params == V * d  # tied: counted once, in the embedding


@pytest.mark.parametrize(("name", "conv_state"), [("lfm2_350m", 20_480), ("lfm2_1_2b", 40_960)])
def test_lfm2_cache(name: str, conv_state: int) -> None:
    d, _, kv, hd, _, _ = LFM2[name]
    per_token, const = linear_in_l(report(name).total.cache_min)
    assert per_token == N_ATTN * 2 * kv * hd == 6144  # K and V of 8 heads of 64, in 6 attention layers
    assert const == N_CONV * (K - 1) * d == conv_state  # minimal conv state: k - 1 past inputs per channel


def lfm2_decode_token_flops(d: int, h: int, kv: int, hd: int, f: int) -> int:
    """Decode FLOPs of one token, excluding attention over the history (LIV-NOTES §3.4, exact)."""
    conv = 6 * d * d + d + 2 * K * d + d + 2 * d * d  # in_proj, B*x, conv, C*, out_proj: 8D^2 + 8D for k = 3
    assert conv == 8 * d * d + 8 * d
    attn = (
        2 * d * h * hd
        + 2 * 2 * d * kv * hd
        + 2 * h * hd * d  # 2 (2D H hd + 2D KV hd)
        + 4 * (h + kv) * hd  # QK-norm (RMSNorm, 4 FLOPs/element) on q and k
        + 3 * (h + kv) * hd
    )  # RoPE on q and k
    ffn = 6 * d * f + f + f  # 6 D F + silu + gate multiply
    wrap = 2 * (4 * d + d)  # two pre-norm RMSNorms and two residual adds per layer
    head = 4 * d + 2 * d * V  # final norm, tied LM head
    return N_CONV * conv + N_ATTN * attn + N_LAYERS * (ffn + wrap) + head


@pytest.mark.parametrize("name", LFM2)
def test_lfm2_decode_and_prefill_flops(name: str) -> None:
    d, h, kv, hd, f, _ = LFM2[name]
    token = lfm2_decode_token_flops(d, h, kv, hd, f)
    per_key = N_ATTN * 4 * h * hd  # QK^T and AV over each cached key: 4 H hd per attention layer
    rep = report(name)
    for t in (0, 4095):
        assert rep.total.decode.evaluate(t=t, t1=t + 1) == token + per_key * (t + 1)
    for n in (1, 4096):
        assert rep.total.prefill.evaluate(L=n) == n * token + per_key * n * (n + 1) // 2
    if name == "lfm2_350m":
        assert token == 709_299_200


# --------------------------------------------------------------------------------------------
# Mixture-of-Recursions (LIV-NOTES §4): SmolLM-360M backbone, 3 recursions, middle-cycle sharing

MOR_D, MOR_H, MOR_KV, MOR_HD, MOR_F, MOR_V, MOR_LAYERS = 960, 15, 5, 64, 2560, 49152, 32
CAPACITIES = (1.0, 0.667, 0.333)
BASE_DEPTH = (MOR_LAYERS - 2) // 3  # layers 0 and 31 unique; the middle 30 share a block of 10
KV_PER_LAYER = 2 * MOR_KV * MOR_HD  # 640 elements per token


def test_mor_unique_params() -> None:
    layer = (
        MOR_D * MOR_H * MOR_HD * 2
        + 2 * MOR_D * MOR_KV * MOR_HD  # q, out; k, v
        + 3 * MOR_D * MOR_F
        + 2 * MOR_D
    )  # SwiGLU, 2 RMSNorms
    assert layer == 9_832_320
    routers = 3 * MOR_D  # one linear router d -> 1 per recursion step
    unique = MOR_V * MOR_D + (2 + BASE_DEPTH) * layer + MOR_D + routers
    for name in ("mor_360m", "mor_kvshare"):
        assert report(name).params == unique == 165_177_600


def test_mor_recursion_wise_kv_cache() -> None:
    # 2 unique layers at full length + each shared layer at recursion r caches capacity_r of the tokens
    want = (2 + sum(c * BASE_DEPTH for c in CAPACITIES)) * KV_PER_LAYER
    per_token, const = linear_in_l(report("mor_360m").total.cache_min)
    assert per_token == pytest.approx(want) and want == pytest.approx(14_080)
    assert const == 0
    # the module still allocates a full-length K/V cache for every layer, plus (router row) one key-validity
    # flag per position and recursion step
    rep = report("mor_360m")
    layers_alloc = sum(linear_in_l(r.total.cache_alloc)[0] for r in layer_rows(rep))
    assert layers_alloc == MOR_LAYERS * KV_PER_LAYER
    router = next(r for r in rep.rows if r.key == "router")
    assert linear_in_l(router.total.cache_alloc) == (3, 0)
    assert linear_in_l(rep.total.cache_alloc) == (MOR_LAYERS * KV_PER_LAYER + 3, 0)


def test_mor_kv_share_cache() -> None:
    # K/V of the first recursion are reused by the later ones: unique layers + one copy of the block
    per_token, _ = linear_in_l(report("mor_kvshare").total.cache_min)
    assert per_token == (2 + BASE_DEPTH) * KV_PER_LAYER == 7680


def _pairs_coefficient(rep: CostReport) -> float:
    """Coefficient of L^2 in the prefill FLOPs (attention pairs only)."""
    p = rep.total.prefill
    return (p.evaluate(L=2) - 2 * p.evaluate(L=1)) / 2


@pytest.mark.parametrize(("name", "power"), [("mor_360m", 2), ("mor_kvshare", 1)])
def test_mor_attention_pairs_scale_with_capacity(name: str, power: int) -> None:
    per_layer = 4 * MOR_H * MOR_HD / 2  # QK^T + AV per pair, L^2 / 2 causal pairs
    # recursion-wise: the capacity_r L routed tokens attend among themselves -> capacity^2;
    # KV sharing: the routed queries attend to all L shared keys -> capacity
    want = per_layer * (2 + BASE_DEPTH * sum(c**power for c in CAPACITIES))
    assert _pairs_coefficient(report(name)) == pytest.approx(want, rel=1e-9)


def test_mor_expert_choice_router() -> None:
    router = next(r for r in report("mor_360m").rows if r.key == "router")
    assert router.total.params == 3 * MOR_D
    # a step's router scores the tokens entering it: all tokens, then those kept by steps 0 and 1
    entering = 1.0 + CAPACITIES[0] + CAPACITIES[1]
    assert router.total.prefill.evaluate(L=1) == pytest.approx(2 * MOR_D * entering)


# --------------------------------------------------------------------------------------------
# STAR-style sharing


def test_star_shared_params() -> None:
    d, h, kv, hd, f, vocab = 768, 12, 4, 64, 2048, 32000
    gqa = d * h * hd + 2 * d * kv * hd + h * hd * d  # 1,572,864
    conv = 3 * d * d + 3 * d + d * d  # 2,361,600
    swiglu = 3 * d * f  # 4,718,592
    unshared = vocab * d + 4 * gqa + 8 * conv + 12 * (swiglu + 2 * d) + d
    assert unshared == 106_402_560
    kv_proj = 2 * d * kv * hd  # k_proj + v_proj of one attention layer, dropped at layers 4 and 10
    conv_in = d * 3 * d  # a gated conv's in_proj, shared by layers 2, 3 (from 0) and 6, 8 (from 5)
    w1_w3 = 2 * d * f  # SwiGLU featurizer of layer 11, shared from layer 9
    shared = unshared - 2 * kv_proj - 4 * conv_in - w1_w3
    assert shared == 95_392_512
    rep = report("star_shared")
    assert rep.params == shared
    assert sum(r.shared_params for r in layer_rows(rep)) == 4 * conv_in + w1_w3
    # two KV caches (layers 1 and 7) + eight conv states
    assert linear_in_l(rep.total.cache_min) == (2 * 2 * kv * hd, 8 * 2 * d)


# --------------------------------------------------------------------------------------------
# CLI


def test_cli_cost_json(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["cost", str(EXAMPLES / "lfm2_350m.liv"), "--format", "json"])
    out = capsys.readouterr().out
    assert status == 0
    data = json.loads(out)
    ((rep,),) = [f["models"] for f in data["files"]]
    assert rep["params"] == rep["total"]["params"] == 354_483_968
    assert rep["non_embedding_params"] == 354_483_968 - V * 1024


def test_cli_check_budget_exceeded(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check", str(EXAMPLES / "lfm2_350m.liv"), "--budget", "params<=300M"])
    captured = capsys.readouterr()
    assert status == 1
    assert "E0402" in captured.err + captured.out
    assert "354,483,968" in captured.err
