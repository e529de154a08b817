"""Training and evaluation of generated modules (search.train, search.evaluate, search.latency, search.corpus)."""

from __future__ import annotations

import math

import pytest
import torch

from livc.search.corpus import CorpusSpec, corpus_loss
from livc.search.errors import SearchError
from livc.search.evaluate import CandidateFailed, evaluate, guarded
from livc.search.latency import measure, measure_all
from livc.search.protocol import tiny

HYBRID = """
from std.norms import RMSNorm
from std.embedding import Embedding, LMHead
from std.attention import GQA
from std.conv import GatedShortConv
from std.mlp import SwiGLU

model Hybrid(vocab: int = 16, d: int = 32) {
    embedding: Embedding(vocab, d)
    norm: RMSNorm(d)
    layers: [GatedShortConv(d, kernel = 3) + SwiGLU(d, 2 * d), GQA(d, heads = 2, kv_heads = 2) + SwiGLU(d, 2 * d)]
    final_norm: RMSNorm(d)
    head: LMHead(vocab, d, tied = true)
}
"""
RECALL = ("in_context_recall",)


@pytest.fixture(autouse=True)
def one_thread():  # noqa: ANN201 - tiny models train several times faster on one thread of a shared CPU
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tiny_hybrid_learns_recall_well_above_chance() -> None:
    ev = evaluate(HYBRID, tiny(tasks=RECALL, steps=800), seed=0)
    assert ev.ok, ev.failure
    # 8 possible values: chance is 1/8; an induction-capable model gets close to 1
    assert ev.metrics["in_context_recall"] > 0.6
    assert ev.quality == ev.metrics["in_context_recall"]
    run = ev.curve["runs"][0]
    assert run["curve"][-1][1] < run["curve"][0][1]  # the loss went down


def test_same_seed_same_result_other_seed_differs() -> None:
    protocol = tiny(tasks=RECALL, steps=20)
    a, b, c = (evaluate(HYBRID, protocol, seed=s) for s in (1, 1, 2))
    assert a.curve["runs"][0]["curve"] == b.curve["runs"][0]["curve"] and a.metrics == b.metrics
    assert a.curve["runs"][0]["curve"] != c.curve["runs"][0]["curve"]


def test_compression_uses_the_autoencoder_readout_and_width_override() -> None:
    ev = evaluate(HYBRID, tiny(tasks=("compression",), steps=30, width=16), seed=0)
    assert ev.ok, ev.failure
    assert 0.0 <= ev.metrics["compression"] <= 1.0 and set(ev.metrics) == {"compression", "quality"}


def test_huge_learning_rate_is_a_divergence_failure() -> None:
    ev = evaluate(HYBRID, tiny(tasks=RECALL, steps=100, lr=1.0), seed=0)
    assert ev.failure_kind == "diverged", ev.failure
    assert ev.quality is None and "quality" not in ev.metrics
    assert "in_context_recall" in ev.failure


def test_time_limit_is_a_failure_not_an_exception() -> None:
    ev = evaluate(HYBRID, tiny(tasks=RECALL, steps=1_000_000), seed=0, time_limit_s=1.0)
    assert ev.failure_kind == "timeout", ev.failure


def test_compile_errors_are_failures() -> None:
    no_vocab = HYBRID.replace("vocab: int = 16, ", "").replace("(vocab, d", "(16, d")
    ev = evaluate(no_vocab, tiny(tasks=RECALL, steps=5), seed=0)
    assert ev.failure_kind == "compile" and "E0203" in ev.failure
    assert evaluate("model M(", tiny(tasks=RECALL, steps=5), seed=0).failure_kind == "compile"


@pytest.mark.parametrize(
    ("error", "kind"),
    [(MemoryError(), "oom"), (RuntimeError("CUDA out of memory."), "oom"), (IndexError("bad index"), "crash")],
)
def test_guarded_classifies_crashes(error: Exception, kind: str) -> None:
    def boom() -> None:
        raise error

    with pytest.raises(CandidateFailed, match=f"^{kind}: "):
        guarded(torch.device("cpu"), "task", boom)


def test_latency_is_measured_and_tvm_hook_is_a_coded_error() -> None:
    lat = measure_all(HYBRID, "cpu", 32, steps=4, repeats=2)
    assert lat.prefill_s > 0 and lat.decode_s > 0 and lat.backend == "pytorch"
    assert measure(HYBRID, "cpu", 16, vocab=64, width=16, steps=2, repeats=1) > 0
    with pytest.raises(SearchError) as err:
        measure(HYBRID, backend="tvm")
    assert err.value.code == "E0803"


def test_corpus_loss_on_generated_text(tmp_path) -> None:  # noqa: ANN001 - pytest fixture
    path = tmp_path / "corpus.txt"
    path.write_text("".join(f"the {i % 7} quick brown fox {i % 5} jumps.\n" for i in range(600)))
    ev = corpus_loss(HYBRID, CorpusSpec(path=str(path), seq=32, batch=8, steps=60, lr=3e-3), seed=0)
    assert ev.ok, ev.failure
    assert math.isfinite(ev.metrics["bpb"]) and ev.metrics["bpb"] < 8.0  # better than uniform bytes
    with pytest.raises(SearchError) as err:
        corpus_loss(HYBRID, CorpusSpec(path=str(tmp_path / "missing.txt")), seed=0)
    assert err.value.code == "E0801"


def test_a_decoded_search_candidate_takes_the_task_vocabulary() -> None:
    import numpy as np

    from livc.search.genome import decode
    from livc.search.space import SearchSpace
    from livc.search.variation import random_genome

    space = SearchSpace(width=16, slots=2, per_layer=1)
    text = decode(random_genome(space, np.random.default_rng(1)), space)
    ev = evaluate(text, tiny(tasks=("compression",), steps=3), seed=0)  # vocab 8 from the task, not 64
    assert ev.ok, ev.failure
