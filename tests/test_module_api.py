"""The generated module's inference API: Output, init_cache defaults, max_len errors, the .liv `dtype:`,
prefill(last_only), generate, and sliding-window ring buffers (docs/backends.md, section 2).

Models are tiny (d = 32, vocab 53, fp32 unless a test says otherwise) and built in-process with the helpers of
test_backend_torch. Weights are amplified (x3) where a test checks attention masks or cache slots: the 0.02
init keeps attention scores near zero, which hides a wrong mask. Tolerances (CPU, fp32): incremental decoding vs
the parallel forward <= 1e-5 [measured <= 3.3e-6 with amplified weights (logits up to magnitude 4), 1.2e-7
without]; prefill(last_only) vs forward's last position <= 1e-5 (not bitwise: a one-row matmul rounds differently).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import torch
from test_backend_torch import (
    HEADER,
    OPERATORS,
    Built,
    allocated_cache_bytes,
    amplify,
    build_source,
    token_ids,
)

from livc.backends.pytorch.load import build
from livc.compiler.analysis.costs import analyze
from livc.compiler.analysis.evaluate import Context, report_numbers
from livc.compiler.pipeline import compile_source
from livc.dsl.diagnostics import CompileError

TOL = 1e-5
VOCAB = 53


pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py


def model_source(layers: str, extra: str = "") -> str:
    return (
        HEADER
        + f"""
model T(vocab: int = {VOCAB}, d: int = 32) {{
    embedding: Embedding(vocab, d)
    norm: RMSNorm(d)
    layers: {layers}
    final_norm: RMSNorm(d)
    head: LMHead(vocab, d, tied = false)
{extra}}}
"""
    )


@cache
def built(layers: str, extra: str = "") -> Built:
    return build_source(model_source(layers, extra), f"api_{abs(hash((layers, extra)))}.liv")


def swa(window: int) -> str:
    return f"SWA(d, heads = 4, kv_heads = 2, window = {window})"


MOR = """    recursion: mor(
        recursions = 2,
        sharing = cycle,
        router = expert_choice(capacities = [1.0, 0.5], alpha = 0.5),
        kv = recursion_wise,
    )
"""


@torch.no_grad()
def decode_diff(model: torch.nn.Module, ids: torch.Tensor, prompt: int, max_len: int) -> float:
    """Max |logits| difference of prefill(prompt) + decode_step to the end vs the parallel forward."""
    full = model(ids).logits
    cache_ = model.init_cache(ids.shape[0], max_len)
    diff = (model.prefill(ids[:, :prompt], cache_) - full[:, :prompt]).abs().max().item()
    for t in range(prompt, ids.shape[1]):
        diff = max(diff, (model.decode_step(ids[:, t : t + 1], cache_)[:, 0] - full[:, t]).abs().max().item())
    return diff


def static_bytes(b: Built, max_len: int, metric: str) -> int:
    numbers = report_numbers(analyze(b.ir), Context(batch=2, seq=max_len))
    return numbers.cache_min_bytes if metric == "cache_min" else numbers.cache_alloc_bytes


# ---- forward: one return convention -------------------------------------------------------------------------


@pytest.mark.parametrize(("layers", "extra"), [("[MHA(d, heads = 4)]", ""), (f"[{OPERATORS['moe']}]", "")])
def test_forward_returns_output_for_every_model(layers: str, extra: str) -> None:
    b = built(layers, extra)
    out = b.new_model()(token_ids(VOCAB, 9))
    assert type(out).__name__ == "Output" and out._fields == ("logits", "aux_loss")
    assert out.logits.shape == (2, 9, VOCAB)
    assert out.aux_loss.shape == () and out.aux_loss.dtype == torch.float32
    assert (out.aux_loss > 0) == ("MoE" in layers)  # the Switch load-balancing loss is positive


def test_mixture_of_recursions_returns_output_with_its_aux_loss() -> None:
    model = built("2 * [MHA(d, heads = 4) + SwiGLU(d, 48)]", MOR).new_model().train()
    out = model(token_ids(VOCAB, 9))
    assert out.logits.shape == (2, 9, VOCAB) and out.aux_loss.shape == () and out.aux_loss > 0


# ---- init_cache, dtype ----------------------------------------------------------------------------------------


def test_the_liv_dtype_is_the_parameter_and_cache_dtype() -> None:
    b = built("[MHA(d, heads = 4)]", "    dtype: bf16\n")
    model = b.new_model()
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    cache_ = model.init_cache(2, 16)
    assert {t.dtype for key, t in cache_.items() if key != "pos"} == {torch.bfloat16}
    assert allocated_cache_bytes(cache_) == static_bytes(b, 16, "cache_alloc")  # the cost model's default dtype
    assert {p.dtype for p in type(model)(dtype=torch.float32).parameters()} == {torch.float32}
    assert {t.dtype for t in model.float().init_cache(2, 16).values()} == {torch.float32, torch.long}
    assert model.init_cache(2, 16, dtype=torch.float16)["layers.0.0.y.k"].dtype == torch.float16


def test_int8_parameters_are_rejected_by_check() -> None:
    # `dtype:` is the parameters' dtype (f32, bf16, f16); check rejects int8, so build never sees it (E0304)
    result = compile_source(model_source("[MHA(d, heads = 4)]", "    dtype: int8\n"), "int8.liv")
    assert [d.code for d in result.diagnostics] == ["E0304"]


def test_init_cache_follows_the_parameters_device() -> None:
    cls = type(built("[MHA(d, heads = 4)]").new_model())
    with torch.device("meta"):
        model = cls()
    assert {t.device.type for t in model.init_cache(1, 8).values()} == {"meta"}


@pytest.mark.parametrize(("batch", "max_len"), [(0, 8), (2, 0), (2, -1), (2, 8.0), (True, 8)])
def test_init_cache_rejects_bad_sizes(batch: object, max_len: object) -> None:
    with pytest.raises(ValueError, match="init_cache: (batch|max_len) must be a positive int"):
        built("[MHA(d, heads = 4)]").new_model().init_cache(batch, max_len)


# ---- max_len errors -------------------------------------------------------------------------------------------


@torch.no_grad()
def test_prefill_longer_than_max_len_raises_naming_the_limit() -> None:
    model = built("[MHA(d, heads = 4)]").new_model()
    cache_ = model.init_cache(2, 8)
    with pytest.raises(ValueError, match=r"prefill of 9 tokens exceeds the cache's max_len = 8"):
        model.prefill(token_ids(VOCAB, 9), cache_)


@torch.no_grad()
def test_decoding_past_max_len_raises_naming_the_limit() -> None:
    model = built("[MHA(d, heads = 4)]").new_model()
    ids = token_ids(VOCAB, 9)
    cache_ = model.init_cache(2, 8)
    model.prefill(ids[:, :7], cache_)
    model.decode_step(ids[:, 7:8], cache_)
    with pytest.raises(ValueError, match=r"decode_step at position 8 is past the cache's max_len = 8"):
        model.decode_step(ids[:, 8:9], cache_)
    assert int(cache_["pos"]) == 8  # nothing was written


# ---- prefill(last_only) ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["gqa", "moe", "mamba", "swa"])
@torch.no_grad()
def test_prefill_last_only_returns_the_last_position(op: str) -> None:
    model = built(f"2 * [{OPERATORS[op]} + SwiGLU(d, 48)]").new_model()
    ids = token_ids(VOCAB, 11)
    full = model(ids).logits
    cache_, last = model.init_cache(2, 16), model.init_cache(2, 16)
    every = model.prefill(ids, cache_)
    out = model.prefill(ids, last, last_only=True)
    assert out.shape == (2, 1, VOCAB)
    assert (out - full[:, -1:]).abs().max().item() <= TOL and (out - every[:, -1:]).abs().max().item() <= TOL
    assert all(torch.equal(cache_[k], last[k]) for k in cache_)


def test_last_only_slices_before_the_head() -> None:
    """The final norm and the LM head see one position (the point of last_only), not all of them."""
    code = built("[MHA(d, heads = 4)]").code
    run = code.split("def _run(", 1)[1].split("\n    def ", 1)[0]
    assert run.index("h = h[:, -1:]") < run.index("self.final_norm(h") < run.index("self.head(h")


# ---- generate -------------------------------------------------------------------------------------------------


@cache
def generator_model() -> torch.nn.Module:
    return amplify(built(f"2 * [{OPERATORS['gqa']} + SwiGLU(d, 48)]").new_model(), 5.0)


@torch.no_grad()
def greedy_by_forward(model: torch.nn.Module, ids: torch.Tensor, n: int) -> torch.Tensor:
    for _ in range(n):
        ids = torch.cat([ids, model(ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids


def test_greedy_generate_equals_an_argmax_loop_over_forward() -> None:
    model, prompt = generator_model(), token_ids(VOCAB, 5)
    out = model.generate(prompt, 12, temperature=0)
    assert out.shape == (2, 17) and torch.equal(out[:, :5], prompt)
    assert torch.equal(out, greedy_by_forward(model, prompt, 12))
    assert torch.equal(model.generate(prompt, 12, temperature=0, max_len=16), out)  # P + n - 1 positions suffice


def test_top_k_1_and_a_tiny_nucleus_are_greedy() -> None:
    model, prompt = generator_model(), token_ids(VOCAB, 5)
    greedy = model.generate(prompt, 10, temperature=0)
    assert torch.equal(model.generate(prompt, 10, temperature=1.0, top_k=1), greedy)
    assert torch.equal(model.generate(prompt, 10, temperature=0.7, top_p=1e-6), greedy)


def test_a_tiny_temperature_is_greedy_not_an_overflow() -> None:
    """logits / 1e-40 overflowed to inf, softmax gave nan and torch.multinomial failed."""
    model, prompt = generator_model(), token_ids(VOCAB, 5)
    assert torch.equal(model.generate(prompt, 10, temperature=1e-40), model.generate(prompt, 10, temperature=0))


def test_seeded_sampling_is_reproducible() -> None:
    model, prompt = generator_model(), token_ids(VOCAB, 5)

    def sample(seed: int, **kw: object) -> torch.Tensor:
        return model.generate(prompt, 16, temperature=1.5, generator=torch.Generator().manual_seed(seed), **kw)

    assert torch.equal(sample(3), sample(3))
    assert not torch.equal(sample(3), sample(4))
    assert torch.equal(sample(3, top_k=5, top_p=0.9), sample(3, top_k=5, top_p=0.9))
    assert int(sample(5, top_k=3).max()) < VOCAB


def test_generation_stops_when_every_row_has_produced_eos() -> None:
    model, prompt = generator_model(), token_ids(VOCAB, 5, batch=1)
    greedy = model.generate(prompt, 10, temperature=0)
    eos = int(greedy[0, 8])  # the 4th generated token
    first = next(i for i in range(5, 15) if int(greedy[0, i]) == eos)
    out = model.generate(prompt, 10, temperature=0, eos=eos)
    assert torch.equal(out, greedy[:, : first + 1])
    both = model.generate(torch.cat([prompt, prompt]), 10, temperature=0, eos=[eos, VOCAB + 7])
    assert torch.equal(both[0], both[1]) and both.shape[1] == first + 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_new_tokens": -1}, "max_new_tokens"),
        ({"temperature": -0.5}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_len": 8}, r"need max_len >= 14, got 8"),
    ],
)
def test_generate_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"max_new_tokens": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        generator_model().generate(token_ids(VOCAB, 5), **args)


# ---- sliding-window ring buffers --------------------------------------------------------------------------------


@pytest.mark.parametrize(("max_len", "slots"), [(8, 5), (4, 4), (37, 5)])
def test_sliding_window_cache_is_a_ring_of_window_positions(max_len: int, slots: int) -> None:
    """min(window, max_len) slots per layer: the static cache_min, which is now also cache_alloc."""
    b = built(f"2 * [{swa(5)} + SwiGLU(d, 48)]")
    cache_ = b.new_model().init_cache(2, max_len)
    assert {t.shape[2] for key, t in cache_.items() if key != "pos"} == {slots}
    allocated = allocated_cache_bytes(cache_)
    assert allocated == static_bytes(b, max_len, "cache_min") == static_bytes(b, max_len, "cache_alloc")


def test_sliding_window_decodes_far_past_max_len() -> None:
    """All attention windowed, no other position-indexed state: an 8-position cache decodes 80 tokens."""
    model = amplify(built(f"2 * [{swa(5)} + SwiGLU(d, 48)]").new_model())
    cache_ = model.init_cache(2, 8)
    assert model.capacity(cache_) is None
    assert decode_diff(model, token_ids(VOCAB, 80), 3, 8) <= TOL
    assert decode_diff(model, token_ids(VOCAB, 40), 23, 8) <= TOL  # a prompt longer than the window and max_len


def test_a_ring_shorter_than_its_window_bounds_the_cache() -> None:
    """max_len 4 < window 5: the ring cannot hold a whole window, so max_len is the limit again."""
    model = built(f"[{swa(5)}]").new_model()
    cache_ = model.init_cache(2, 4)
    assert model.capacity(cache_) == 4
    with pytest.raises(ValueError, match="max_len = 4"):
        model.prefill(token_ids(VOCAB, 5), cache_)


def test_mixed_windowed_and_full_attention_is_bounded_by_max_len() -> None:
    model = amplify(built(f"[{swa(3)}, MHA(d, heads = 4), {swa(6)}]").new_model())
    assert model.capacity(model.init_cache(2, 12)) == 12
    assert decode_diff(model, token_ids(VOCAB, 12), 4, 12) <= TOL


def test_shared_kv_reads_a_wider_ring_with_its_own_window() -> None:
    """`share features k, v` from a window-6 layer into a window-3 layer: the reader masks the owner's ring."""
    share = "    share features k, v from layers[0][0] to layers[2][0]\n"
    b = built(f"[{swa(6)}, {swa(4)}, {swa(3)}]", share)
    assert "kv_owner=" in b.code
    model = amplify(b.new_model())
    assert decode_diff(model, token_ids(VOCAB, 30), 9, 7) <= TOL


def test_recursion_wise_kv_with_a_ring_buffer_decodes_like_forward() -> None:
    """MoR's key-validity rows are indexed by position: the ring looks them up at the positions it holds."""
    model = amplify(built(f"2 * [{swa(3)} + SwiGLU(d, 48)]", MOR).new_model())
    assert decode_diff(model, token_ids(VOCAB, 14), 5, 14) <= TOL


def test_ring_buffer_decode_compiles_with_fullgraph() -> None:
    model = amplify(built(f"2 * [{swa(5)} + SwiGLU(d, 48)]").new_model())
    ids = token_ids(VOCAB, 20)
    eager, compiled = model.init_cache(2, 8), model.init_cache(2, 8)
    torch._dynamo.reset()
    step = torch.compile(model.decode_step, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        model.prefill(ids[:, :4], eager)
        model.prefill(ids[:, :4], compiled)
        for t in range(4, 20):  # past max_len: the ring wraps inside the compiled graph
            want, got = model.decode_step(ids[:, t : t + 1], eager), step(ids[:, t : t + 1], compiled)
            assert (got - want).abs().max().item() <= TOL
    assert all(torch.equal(eager[k], compiled[k]) for k in eager)


# ---- errors of livc.compile --------------------------------------------------------------------------------------


def test_compile_errors_carry_the_rendered_diagnostics(tmp_path: Path) -> None:
    import livc

    path = tmp_path / "bad.liv"
    path.write_text("model M(d: int = 8) {\n    embedding: Embedding(10, d)\n}\n", encoding="utf-8")
    for compile_ in (livc.compile, build):
        with pytest.raises(CompileError) as err:
            compile_(path)
        text = str(err.value)
        assert "error[E0201]: cannot find 'Embedding'" in text and f"--> {path}:2:16" in text
        assert "^^^^^^^^^" in text and "aborting due to 2 previous errors" in text
        assert [d.code for d in err.value.diagnostics] == ["E0201", "E0309"]


# ---- the Hugging Face loading example of docs/backends.md --------------------------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs" / "backends.md"


def docs_example() -> str:
    """The python block of docs/backends.md section 9 (the one that names this test)."""
    section = DOCS.read_text(encoding="utf-8").split("## 9. Loading Hugging Face checkpoints", 1)[1]
    assert "test_the_hf_loading_example_runs" in section
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_hf_loading_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("safetensors")
    exec(compile(docs_example(), str(DOCS), "exec"), {"__name__": "docs_example"})  # noqa: S102
    tokens = [int(n) for n in re.findall(r"\d+", capsys.readouterr().out)]
    assert tokens[:5] == [1, 2, 3, 4, 5] and len(tokens) == 13 and max(tokens) < 97
