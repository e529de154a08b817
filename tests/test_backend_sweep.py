"""Regression programs from a sweep of the PyTorch backend (issue 7 §1: what `check` accepts builds to a right module).

Each program passed `check` and `build` before its fix and then produced a module that failed to run, allocated
a cache larger than the cost model's, or decoded logits that differ from `forward`. Every test builds a tiny
model in-process and checks it against the IR: parameters, allocated cache bytes, prefill + decode = forward.
"""

from __future__ import annotations

import hashlib
import sys

import pytest
import torch
from torch import nn

from livc.backends.pytorch.generate import generate
from livc.backends.pytorch.load import load_code
from livc.backends.pytorch.view import model_class_name
from livc.compiler.analysis.costs import analyze
from livc.compiler.analysis.evaluate import Context, report_numbers
from livc.compiler.ir.nodes import DType, Model
from livc.compiler.pipeline import compile_source

MODEL = """from std.norms import RMSNorm
from std.embedding import Embedding, LMHead

liv A(d: int) {{
    featurizer {{
{featurizer}
    }}
    token_mix low_rank {{
{token_mix}
    }}
    channel_mix dense {{
{channel_mix}
    }}
}}

model M(vocab: int = 29, d: int = 16) {{
    embedding: Embedding(vocab, d)
    norm: RMSNorm(d)
    layers: [A(d), A(d)]
    final_norm: RMSNorm(d)
    head: LMHead(vocab, d, tied = true)
{extra}}}
"""
BATCH, PROMPT, LENGTH = 2, 3, 7


pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py


def source(featurizer: str, token_mix: str, channel_mix: str, extra: str = "") -> str:
    def indent(text: str) -> str:
        return "\n".join("        " + line for line in text.strip().splitlines())

    return MODEL.format(
        featurizer=indent(featurizer), token_mix=indent(token_mix), channel_mix=indent(channel_mix), extra=extra
    )


def build(text: str) -> tuple[Model, nn.Module]:
    """The IR and a fresh eval-mode instance of the module generated from `text` (checked like `livc check`)."""
    result = compile_source(text, "sweep.liv", stop_after="canonicalize")
    assert result.ok, [d.message for d in result.diagnostics]
    ir = result.models[0]
    code = generate(ir, "sweep.liv", text)
    name = "livc_sweep_" + hashlib.sha256(code.encode()).hexdigest()[:12]
    module = load_code(code, name)
    sys.modules.pop(name, None)
    torch.manual_seed(0)
    model = getattr(module, model_class_name(ir))().eval()
    assert sum(p.numel() for p in model.parameters()) == analyze(ir).params
    return ir, model


def cache_bytes(ir: Model, model: nn.Module) -> tuple[int, int]:
    """(allocated by init_cache, the cost model's cache_alloc) for BATCH sequences of LENGTH positions."""
    allocated = sum(t.numel() * t.element_size() for k, t in model.init_cache(BATCH, LENGTH).items() if k != "pos")
    static = report_numbers(analyze(ir), Context(batch=BATCH, seq=LENGTH, dtype=DType.F32)).cache_alloc_bytes
    return allocated, static


@torch.no_grad()
def assert_decodes_like_forward(ir: Model, model: nn.Module) -> None:
    ids = torch.randint(0, ir.vocab, (BATCH, LENGTH), generator=torch.Generator().manual_seed(1))
    full = model(ids).logits
    cache = model.init_cache(BATCH, LENGTH)
    steps = [model.prefill(ids[:, :PROMPT], cache)]
    steps += [model.decode_step(ids[:, t : t + 1], cache) for t in range(PROMPT, LENGTH)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)


# ---- repeat_heads feeding attention ----------------------------------------------------------------------------

OUT = "return linear(merge_heads(y), d)"


def test_a_repeated_value_used_as_query_keeps_its_heads() -> None:
    """`attention(r, r, r)` with `r = repeat_heads(kh, 2)`: the K/V shortcut (attention does grouped heads, so the
    repeat is not materialised) also replaced the query, which then had 1 head instead of 2: forward failed with
    a shape error in the out-projection."""
    ir, model = build(
        source("kh = split_heads(linear(x, d // 2), 1)\nr = repeat_heads(kh, 2)", "y = attention(r, r, r)", OUT)
    )
    assert_decodes_like_forward(ir, model)


@pytest.mark.parametrize(
    ("featurizer", "channel_mix"),
    [
        # the repeated K is also read by another op, so it is computed; the cache kept the repeated heads (2x)
        ("q = split_heads(linear(x, d), 4)\nr = repeat_heads(split_heads(linear(x, d // 2), 2), 2)", "y + r"),
        # a chain of repeats: only the outer one was skipped, the cache held the inner one (2 heads instead of 1)
        ("q = split_heads(linear(x, d), 4)\nr = repeat_heads(repeat_heads(split_heads(linear(x, 4), 1), 2), 2)", "y"),
    ],
    ids=["also-read", "chain"],
)
def test_attention_caches_kv_before_every_repeat(featurizer: str, channel_mix: str) -> None:
    """The cost model counts K/V before `repeat_heads` (kv_heads heads); the module must allocate exactly that."""
    text = source(featurizer, "y = attention(q, r, r)", f"return linear(merge_heads({channel_mix}), d)")
    ir, model = build(text)
    allocated, static = cache_bytes(ir, model)
    assert allocated == static
    assert_decodes_like_forward(ir, model)


def test_shared_kv_through_a_chain_of_repeats() -> None:
    """The exported feature group is the un-repeated value, as the owner's cache holds it."""
    featurizer = (
        "q = split_heads(linear(x, d), 4)\nr = repeat_heads(repeat_heads(split_heads(linear(x, 4), 1), 2), 2)\n"
        "v = repeat_heads(split_heads(linear(x, 4), 1), 4)"
    )
    extra = "    share features r, v from layers[0][0] to layers[1][0]\n"
    ir, model = build(source(featurizer, "y = attention(q, r, v)", OUT, extra))
    allocated, static = cache_bytes(ir, model)
    assert allocated == static
    assert_decodes_like_forward(ir, model)


# ---- bidirectional attention -----------------------------------------------------------------------------------

BIDIRECTIONAL = (
    "q = split_heads(linear(x, d), 4)\nk = split_heads(linear(x, d), 4)\nv = split_heads(linear(x, d), 4)",
    "y = attention(q, k, v, mask = bidirectional)",
    OUT,
)


@torch.no_grad()
def test_bidirectional_attention_refuses_to_decode() -> None:
    """A bidirectional layer's outputs depend on later tokens: decode_step returned logits that differ from
    forward's (by 3e-2). Forward and prefill still work; decode_step raises, naming the layer."""
    ir, model = build(source(*BIDIRECTIONAL))
    ids = torch.randint(0, ir.vocab, (BATCH, LENGTH), generator=torch.Generator().manual_seed(1))
    cache = model.init_cache(BATCH, LENGTH)
    torch.testing.assert_close(model.prefill(ids, cache), model(ids).logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(NotImplementedError, match="layers.0.0 has bidirectional attention"):
        model.decode_step(ids[:, :1], model.init_cache(BATCH, LENGTH))
    assert model.generate(ids[:, :PROMPT], max_new_tokens=1, temperature=0).shape == (BATCH, PROMPT + 1)


# ---- a cache dtype other than the parameters' -------------------------------------------------------------------

STATEFUL = """from std.norms import RMSNorm
from std.embedding import Embedding, LMHead
from std.attention import GQA, SWA
from std.conv import GatedShortConv
from std.hyena import Hyena

liv Dense(d: int) {
    featurizer {
        a = linear(x, d)
    }
    token_mix dense {
        y = token_dense(a, 8)
    }
    channel_mix dense {
        return linear(y, d)
    }
}

model M(vocab: int = 29, d: int = 16) {
    embedding: Embedding(vocab, d)
    norm: RMSNorm(d)
    layers: [GQA(d, heads = 4, kv_heads = 2), SWA(d, heads = 2, window = 2), GatedShortConv(d),
             Hyena(d, filter_order = 4), Dense(d)]
    final_norm: RMSNorm(d)
    head: LMHead(vocab, d, tied = true)
}
"""


@pytest.mark.parametrize(("cache_dtype", "tol"), [(torch.float64, 1e-5), (torch.bfloat16, 2e-2)])
@torch.no_grad()
def test_init_cache_of_another_dtype_decodes(cache_dtype: torch.dtype, tol: float) -> None:
    """`init_cache(..., dtype=)` is documented, but any dtype other than the parameters' failed in the first cache
    write (`index_copy_(): self and source expected to have the same dtype`) or in the next matmul. States are now
    converted where they are written and read; decode returns the parameters' dtype."""
    ir, model = build(STATEFUL)
    ids = torch.randint(0, ir.vocab, (BATCH, LENGTH), generator=torch.Generator().manual_seed(1))
    full = model(ids).logits
    cache = model.init_cache(BATCH, 8, dtype=cache_dtype)
    assert all(t.dtype == cache_dtype for key, t in cache.items() if key != "pos")
    steps = [model.prefill(ids[:, :PROMPT], cache)]
    steps += [model.decode_step(ids[:, t : t + 1], cache) for t in range(PROMPT, LENGTH)]
    assert all(s.dtype == torch.float32 for s in steps)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=tol)


# ---- generate's arguments ---------------------------------------------------------------------------------------


@torch.no_grad()
def test_generate_takes_eos_as_a_tensor() -> None:
    """`eos=torch.tensor(2)` (a 0-d tensor, as tokenizers and argmax give) failed with "iteration over a 0-d
    tensor"; an id, a list, a tuple and a tensor of ids now mean the same."""
    ir, model = build(STATEFUL)
    ids = torch.randint(0, ir.vocab, (BATCH, PROMPT), generator=torch.Generator().manual_seed(1))
    greedy = model.generate(ids, max_new_tokens=4, temperature=0)
    eos = int(greedy[0, PROMPT + 1])
    want = model.generate(ids, max_new_tokens=4, temperature=0, eos=eos)
    for same in (torch.tensor(eos), torch.tensor([eos]), [eos], (eos,)):
        assert torch.equal(model.generate(ids, max_new_tokens=4, temperature=0, eos=same), want)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eos": []}, "eos"),  # IndexError
        ({"eos": 2.0}, "eos"),  # TypeError: 'float' object is not iterable
        ({"eos": True}, "eos"),  # RuntimeError from torch.isin
        ({"temperature": None}, "temperature"),  # TypeError: '>=' not supported
    ],
)
def test_generate_rejects_a_bad_eos_or_temperature_clearly(kwargs: dict[str, object], message: str) -> None:
    ir, model = build(STATEFUL)
    with pytest.raises(ValueError, match=f"generate: {message}"):
        model.generate(torch.zeros((1, 2), dtype=torch.long), max_new_tokens=2, **kwargs)


# ---- batch of the tokens against the cache's -------------------------------------------------------------------

GQA_MODEL = """from std.norms import RMSNorm
from std.embedding import Embedding, LMHead
from std.attention import GQA

model M(vocab: int = 29, d: int = 16) {
    embedding: Embedding(vocab, d)
    norm: RMSNorm(d)
    layers: [GQA(d, heads = 2, kv_heads = 1)]
    final_norm: RMSNorm(d)
    head: LMHead(vocab, d, tied = true)
}
"""


@torch.no_grad()
def test_tokens_and_cache_must_have_the_same_batch() -> None:
    """A batch-1 prompt into a batch-2 cache silently broadcast; a larger batch gave a raw torch error."""
    _, model = build(GQA_MODEL)
    for prompt_batch, cache_batch in ((1, 2), (3, 2)):
        cache = model.init_cache(cache_batch, 8)
        expected = rf"{prompt_batch} sequence\(s\) but the cache was allocated for batch {cache_batch}"
        with pytest.raises(ValueError, match=expected):
            model.prefill(torch.zeros(prompt_batch, 3, dtype=torch.long), cache)
    cache = model.init_cache(2, 8)
    model.prefill(torch.zeros(2, 3, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="decode_step: 1 sequence"):
        model.decode_step(torch.zeros(1, 1, dtype=torch.long), cache)
