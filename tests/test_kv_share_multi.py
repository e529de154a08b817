"""`share features` into blocks with several attentions: each shared attention reads exactly its owner's entry.

Regression for a silent miscompile: the PyTorch backend kept one KV owner per block (the owner's first
attention), so in `DiffGQA` (y = attn(q1, k1, v) - attn(q2, k2, v)) sharing k1, k2, v made the target's
second attention decode over the owner's *first* cache (decode_step 2e-4 off the parallel forward). Since
then `expand` records per attention the owner's entry (`cache_owner` + `cache_entry`, `expand.cache_key`)
and rejects (E0314) a shared K/V pair that no attention of the source caches together.

Checks: prefill 7 tokens + 5 decode steps == forward over 12 at 1e-5 (weights amplified, as in
test_backend_torch, so cache mistakes are not hidden by near-uniform attention), the cache the module
allocates == the cost model's `cache_alloc`, which entries exist, and the compile-time rejections.
"""

from __future__ import annotations

import pytest
import torch
from test_backend_torch import (
    LOGIT_TOL,
    allocated_cache_bytes,
    amplify,
    build_source,
    run_incremental,
    static_cache_bytes,
    token_ids,
)

from livc.compiler.passes.expand import cache_key
from livc.compiler.pipeline import compile_source

VOCAB, PREFILL, TOTAL, MAX_LEN, BATCH = 32, 7, 12, 16, 1

DIFF = """from std.embedding import Embedding, LMHead
from std.norms import RMSNorm
from std.search_pool import DiffGQA

model Bug(vocab: int = 32) {
    let d = 16
    embedding: Embedding(vocab, d)
    norm: RMSNorm(d)
    layers: [DiffGQA(d, heads = 4), DiffGQA(d, heads = 4)]
    final_norm: RMSNorm(d)
    head: LMHead(vocab, d, tied = true)
    SHARE
}
"""

# Two attentions over separate K/V pairs (Pairs) and one with the same featurizer that crosses them (Crossed).
TWO = """from std.embedding import Embedding, LMHead
from std.norms import RMSNorm

liv Pairs(d: int) {
    featurizer {
        q1 = split_heads(linear(x, d), 2)
        q2 = split_heads(linear(x, d), 2)
        k1 = split_heads(linear(x, d), 2)
        v1 = split_heads(linear(x, d), 2)
        k2 = split_heads(linear(x, d), 2)
        v2 = split_heads(linear(x, d), 2)
    }
    token_mix low_rank {
        y1 = attention(q1, k1, v1, mask = causal)
        y2 = attention(q2, k2, v2, mask = causal)
    }
    channel_mix dense {
        return linear(merge_heads(y1 + y2), d)
    }
}

liv Crossed(d: int) {
    featurizer {
        q1 = split_heads(linear(x, d), 2)
        q2 = split_heads(linear(x, d), 2)
        k1 = split_heads(linear(x, d), 2)
        v1 = split_heads(linear(x, d), 2)
        k2 = split_heads(linear(x, d), 2)
        v2 = split_heads(linear(x, d), 2)
    }
    token_mix low_rank {
        y1 = attention(q1, k1, v2, mask = causal)
        y2 = attention(q2, k2, v1, mask = causal)
    }
    channel_mix dense {
        return linear(merge_heads(y1 + y2), d)
    }
}

model Two(vocab: int = 32, d: int = 16) {
    embedding: Embedding(vocab, d)
    norm: RMSNorm(d)
    layers: LAYERS
    final_norm: RMSNorm(d)
    head: LMHead(vocab, d, tied = false)
    SHARE
}
"""

CHAIN = """from std.attention import MHA
from std.embedding import Embedding, LMHead
from std.norms import RMSNorm

model Chain(vocab: int = 32, d: int = 16) {
    embedding: Embedding(vocab, d)
    norm: RMSNorm(d)
    layers: 3 * [MHA(d, heads = 2)]
    head: LMHead(vocab, d)
    SHARE
}
"""


pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py


def _check_decode(text: str, name: str) -> dict[str, torch.Tensor]:
    """decode == forward and static cache bytes == allocated; returns the stepped cache."""
    built = build_source(text, name)
    run = run_incremental(amplify(built.new_model()), token_ids(VOCAB, TOTAL, BATCH), PREFILL, MAX_LEN)
    assert run.logits_diff <= LOGIT_TOL
    assert allocated_cache_bytes(run.stepped) == static_cache_bytes(built.ir, BATCH, MAX_LEN)
    return run.stepped


def _rejection(text: str, name: str) -> str:
    result = compile_source(text, name, stop_after="canonicalize")
    assert not result.ok
    assert [d.code for d in result.diagnostics] == ["E0314"], result.diagnostics
    return result.diagnostics[0].primary.message


def test_diff_gqa_sharing_reads_one_entry_per_attention() -> None:
    """The reported repro: both of the target's attentions read their own owner's entry, never y1's twice."""
    text = DIFF.replace("SHARE", "share features k1, k2, v from layers[0][0] to layers[1][0]")
    ir = compile_source(text, "diff.liv", stop_after="canonicalize").models[0]
    target = ir.layers[1].sublayers[0].block
    keys = {op.outputs[0].name: cache_key(op) for op in target.ops if op.prim == "attention"}
    assert keys == {"y1": "layers.0.0.y1", "y2": "layers.0.0.y2"}
    cache = _check_decode(text, "diff.liv")
    assert sorted(k for k in cache if k != "pos") == [f"layers.0.0.y{i}.{kv}" for i in (1, 2) for kv in "kv"]


def test_one_attention_shared_the_other_keeps_its_cache() -> None:
    """`share features k1, v1`: y1 reads the owner's y1 entry, y2 of the same block writes its own entry."""
    text = TWO.replace("LAYERS", "2 * [Pairs(d)]").replace(
        "SHARE", "share features k1, v1 from layers[0][0] to layers[1][0]"
    )
    cache = _check_decode(text, "pairs.liv")
    assert "layers.1.0.y2.k" in cache and "layers.1.0.y1.k" not in cache


def test_sharing_the_second_pair_only() -> None:
    """`share features k2, v2`: the shared attention is not the owner's first one."""
    text = TWO.replace("LAYERS", "2 * [Pairs(d)]").replace(
        "SHARE", "share features k2, v2 from layers[0][0] to layers[1][0]"
    )
    cache = _check_decode(text, "pairs2.liv")
    assert "layers.1.0.y1.k" in cache and "layers.1.0.y2.k" not in cache


@pytest.mark.parametrize("groups", ["k1", "k1, v", "k2, v"])
def test_diff_gqa_sharing_part_of_an_attention_is_rejected(groups: str) -> None:
    """Sharing only k of an attention (or v, which feeds both attentions, with one key) leaves an attention with
    one cached input from another layer: E0314 instead of a wrong decode."""
    text = DIFF.replace("SHARE", f"share features {groups} from layers[0][0] to layers[1][0]")
    assert "share both" in _rejection(text, f"diff_{groups}.liv")


def test_pairing_that_no_source_attention_caches_is_rejected() -> None:
    """Crossed pairs (k1, v2): the source caches (k1, v1) and (k2, v2), so no entry holds the pair."""
    share = "share features k1, k2, v1, v2 from layers[0][0] to layers[1][0]"
    text = TWO.replace("LAYERS", "[Pairs(d), Crossed(d)]").replace("SHARE", share)
    assert "keys 'k1' and values 'v2' from layers[0][0]" in _rejection(text, "crossed.liv")


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_chained_sharing_reads_the_first_owner(order: tuple[int, int]) -> None:
    """0 -> 1 -> 2 (declared in either order): layer 2 reads layer 0's entry, as layer 1 has none of its own."""
    shares = [
        "share features k, v from layers[0][0] to layers[1][0]",
        "share features k, v from layers[1][0] to layers[2][0]",
    ]
    text = CHAIN.replace("SHARE", "\n    ".join(shares[i] for i in order))
    ir = compile_source(text, "chain.liv", stop_after="canonicalize").models[0]
    for layer in (1, 2):
        attention = next(op for op in ir.layers[layer].sublayers[0].block.ops if op.prim == "attention")
        assert cache_key(attention) == "layers.0.0.y"
    cache = _check_decode(text, "chain.liv")
    assert sorted(k for k in cache if k != "pos") == ["layers.0.0.y.k", "layers.0.0.y.v"]
