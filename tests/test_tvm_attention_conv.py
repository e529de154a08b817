"""TVM attention / conv / token_dense: hand kernels against the PyTorch helpers, whole tiny models against torch.

Kernel tests run the torch helper functions themselves (templates/helpers/*.py) as the reference; model tests
build one .liv through both backends from the same (amplified) weights and compare prefill and decode logits,
and prefill(T) + decode against prefill(T + 1). Weights are scaled up (x3, like test_backend_torch.amplify):
with the 0.02 init the attention scores are so small that mask and cache mistakes would hide.
"""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import tvm
from tvm import relax, tirx
from tvm_util import ir_model, state_of, torch_module

from livc.backends.tvm.compile import BuildOptions, build
from livc.backends.tvm.errors import TvmError
from livc.backends.tvm.kernels import attention as ka
from livc.backends.tvm.kernels import conv as kc
from livc.backends.tvm.runtime import Session

TOL = 1e-5
TARGET = tvm.target.Target({"kind": "llvm"})


def _helpers(*names: str) -> dict[str, object]:
    ns: dict[str, object] = {"torch": torch, "F": F, "math": math}
    for name in names:
        text = resources.files("livc.backends.pytorch").joinpath("templates", "helpers", f"{name}.py").read_text()
        exec(compile(text, f"helpers/{name}.py", "exec"), ns)  # noqa: S102 - the reference implementation
    return ns


REF = _helpers("attention", "conv", "token_dense")
RNG = np.random.default_rng(0)


def _rand(*shape: int, scale: float = 1.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype("float32")


def _nd(a: np.ndarray) -> tvm.runtime.Tensor:
    return tvm.runtime.tensor(np.ascontiguousarray(a))


def _compile(func: tirx.PrimFunc):  # noqa: ANN202 - a packed function
    mod = tvm.IRModule({"main": func.with_attr("global_symbol", "main")})
    return tvm.compile(mod, target=TARGET)["main"]


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.copy())


# ---- attention kernels -------------------------------------------------------------------------------------

# (heads, kv_heads, dk, causal, window, softcap)
ATTN_CASES = [
    (4, 2, 8, True, None, None),  # GQA
    (4, 1, 6, True, 5, None),  # MQA, odd head_dim, ring window
    (2, 2, 16, False, None, None),  # bidirectional MHA
    (4, 2, 8, True, None, 0.5),  # softcap
    (2, 1, 8, False, 3, None),  # bidirectional + window (torch: j > i - window, no upper bound)
    (4, 4, 8, True, 40, None),  # window larger than max_len: no ring
]


@pytest.mark.parametrize(("heads", "kv", "dk", "causal", "window", "cap"), ATTN_CASES)
def test_attention_kernels_match_the_torch_helper(
    heads: int, kv: int, dk: int, causal: bool, window: int | None, cap: float | None
) -> None:
    """Prefill output and cache, then decode steps (past the ring wrap) equal helpers/attention.attention."""
    max_len, length = 32, 21
    slots = max_len if window is None else min(window, max_len)
    spec = ka.AttnSpec(heads, kv, dk, dk, slots, causal, window, cap)
    q, k, v = _rand(1, length, heads, dk, scale=2.0), _rand(1, length, kv, dk, scale=2.0), _rand(1, length, kv, dk)
    ck, cv = torch.zeros(1, kv, slots, dk), torch.zeros(1, kv, slots, dk)
    ref = REF["attention"](_t(q), _t(k), _t(v), ck, cv, None, causal, window, True, None, cap).numpy()
    y = _nd(np.zeros((1, length, heads, dk), "float32"))
    _compile(ka.attention_prefill(spec))(_nd(q), _nd(k.transpose(0, 2, 3, 1)), _nd(v), y)
    assert np.abs(y.numpy() - ref).max() <= TOL
    tk, tv = _nd(np.zeros((1, kv, slots, dk), "float32")), _nd(np.zeros((1, kv, slots, dk), "float32"))
    _compile(ka.kv_store_prefill(spec))(tk, tv, _nd(k), _nd(v))
    assert np.array_equal(tk.numpy(), ck.numpy()) and np.array_equal(tv.numpy(), cv.numpy())
    store, decode = _compile(ka.kv_store_decode(spec)), _compile(ka.attention_decode(spec))
    for pos in range(length, max_len):
        q1, k1, v1 = _rand(1, 1, heads, dk, scale=2.0), _rand(1, 1, kv, dk, scale=2.0), _rand(1, 1, kv, dk)
        ref = REF["attention"](_t(q1), _t(k1), _t(v1), ck, cv, torch.tensor(pos), causal, window, True, None, cap)
        store(tk, tv, _nd(k1), _nd(v1), pos)
        y1 = _nd(np.zeros((1, 1, heads, dk), "float32"))
        decode(_nd(q1), tk, tv, pos, y1)
        assert np.abs(y1.numpy() - ref.numpy()).max() <= TOL, pos
        assert np.array_equal(tk.numpy(), ck.numpy())


def test_attention_prefill_short_prompt_into_a_ring() -> None:
    """A prompt shorter than the window fills slots 0..T-1; a longer one keeps its last `window` positions."""
    for length in (3, 11):
        spec = ka.AttnSpec(2, 1, 4, 4, 5, True, 5)
        k, v = _rand(1, length, 1, 4), _rand(1, length, 1, 4)
        ck = torch.zeros(1, 1, 5, 4)
        REF["store_prompt"](ck, _t(k).transpose(1, 2), 5)
        tk, tv = _nd(np.zeros((1, 1, 5, 4), "float32")), _nd(np.zeros((1, 1, 5, 4), "float32"))
        _compile(ka.kv_store_prefill(spec))(tk, tv, _nd(k), _nd(v))
        assert np.array_equal(tk.numpy(), ck.numpy())


@pytest.mark.parametrize("dtype", ["bool", "float32"])
def test_attention_key_mask(dtype: str) -> None:
    """key_mask (Mixture-of-Recursions): masked keys are skipped, a query always sees itself."""
    heads, kv, dk, max_len, length = 4, 2, 8, 16, 9
    spec = ka.AttnSpec(heads, kv, dk, dk, max_len, key_mask=dtype)
    q, k, v = _rand(1, length, heads, dk, scale=2.0), _rand(1, length, kv, dk, scale=2.0), _rand(1, length, kv, dk)
    chosen = RNG.random((1, max_len)) > 0.5
    mask = chosen.astype(dtype)
    ref = REF["attention"](
        _t(q), _t(k), _t(v), None, None, None, True, None, True, torch.from_numpy(chosen[:, :length])
    )
    y = _nd(np.zeros((1, length, heads, dk), "float32"))
    _compile(ka.attention_prefill(spec))(_nd(q), _nd(k.transpose(0, 2, 3, 1)), _nd(v), _nd(mask[:, :length]), y)
    assert np.abs(y.numpy() - ref.numpy()).max() <= TOL
    ck, cv = torch.zeros(1, kv, max_len, dk), torch.zeros(1, kv, max_len, dk)
    ck[:, :, :length], cv[:, :, :length] = _t(k).transpose(1, 2), _t(v).transpose(1, 2)
    q1 = _rand(1, 1, heads, dk, scale=2.0)
    pos = length - 1  # decode reads the cache as written (here: by hand)
    ref = REF["attention"](_t(q1), _t(k[:, -1:]), _t(v[:, -1:]), ck, cv, torch.tensor(pos), True, None, False,
                           torch.from_numpy(chosen), None)  # fmt: skip
    y1 = _nd(np.zeros((1, 1, heads, dk), "float32"))
    _compile(ka.attention_decode(spec))(_nd(q1), _nd(ck.numpy()), _nd(cv.numpy()), pos, _nd(mask), y1)
    assert np.abs(y1.numpy() - ref.numpy()).max() <= TOL


# ---- conv kernels ------------------------------------------------------------------------------------------


def _conv_module(spec: kc.ConvSpec) -> relax.VirtualMachine:
    t = tirx.Var("T", "int64")
    c, g, k = spec.channels, spec.rows, spec.kernel
    x, x1 = relax.Var("x", relax.TensorType((1, t, c), "float32")), relax.Var("x1", relax.TensorType((1, 1, c)))
    w, b = relax.Var("w", relax.TensorType((g, k), "float32")), relax.Var("b", relax.TensorType((c,), "float32"))
    state = relax.Var("s", relax.TensorType((1, c, k - 1), "float32"))
    bias = [b] if spec.bias else []
    bb = relax.BlockBuilder()
    with bb.function("prefill", [x, w, b]):
        y = bb.emit_te(kc.prefill(spec), x, w, *bias)
        bb.emit_func_output(relax.Tuple([y, bb.emit_te(kc.prefill_state(spec), x)]))
    with bb.function("decode", [x1, state, w, b]):
        y = bb.emit_te(kc.decode(spec), x1, state, w, *bias)
        bb.emit_func_output(relax.Tuple([y, bb.emit_te(kc.decode_state(spec), x1, state)]))
    return relax.VirtualMachine(tvm.compile(bb.get(), target=TARGET), tvm.cpu())


@pytest.mark.parametrize(("channels", "rows", "k", "bias", "length"), [(8, 8, 3, False, 7), (8, 2, 4, True, 2)])
def test_conv_kernels_match_the_torch_helper(channels: int, rows: int, k: int, bias: bool, length: int) -> None:
    """Prefill (groups, bias, a prompt shorter than k-1) and decode steps with their state = helpers/conv."""
    vm = _conv_module(kc.ConvSpec(channels, rows, k, bias))
    x, w, b = _rand(1, length, channels), _rand(rows, k), _rand(channels)
    state = torch.zeros(1, channels, k - 1)
    ref = REF["causal_conv"](_t(x), _t(w), _t(b) if bias else None, state, None).numpy()
    y, got = vm["prefill"](_nd(x), _nd(w), _nd(b))
    assert np.abs(y.numpy() - ref).max() <= TOL and np.array_equal(got.numpy(), state.numpy())
    for step in range(4):
        x1 = _rand(1, 1, channels)
        ref = REF["causal_conv"](_t(x1), _t(w), _t(b) if bias else None, state, torch.tensor(length + step)).numpy()
        y, got = vm["decode"](_nd(x1), got, _nd(w), _nd(b))
        assert np.abs(y.numpy() - ref).max() <= TOL and np.array_equal(got.numpy(), state.numpy())
        assert np.abs(ref).max() > 0.1  # the step really convolves something


# ---- whole models against torch ----------------------------------------------------------------------------

MODEL = """from std.attention import GQA, MHA, MQA, SWA
from std.conv import GatedShortConv
from std.hyena import HyenaSE, HyenaX
from std.embedding import Embedding, LMHead
from std.norms import RMSNorm
from std.mlp import SwiGLU

liv Dense(d: int, n: int = 40) {
    featurizer {
        v = linear(x, d)
    }
    token_mix dense {
        y = token_dense(v, n)
    }
    channel_mix dense {
        return linear(y, d)
    }
}

liv Capped(d: int) {
    featurizer {
        q = split_heads(linear(x, d), 4)
        k = repeat_heads(split_heads(linear(x, d // 2), 2), 2)
        v = repeat_heads(split_heads(linear(x, d // 2), 2), 2)
    }
    token_mix low_rank {
        y = attention(q, k, v, softcap = 0.5)
    }
    channel_mix dense {
        return linear(merge_heads(y), d)
    }
}

liv Bidir(d: int) {
    featurizer {
        q = split_heads(linear(x, d), 4)
        k = split_heads(linear(x, d), 4)
        v = split_heads(linear(x, d), 4)
    }
    token_mix low_rank {
        y = attention(q, k, v, mask = bidirectional)
    }
    channel_mix dense {
        return linear(merge_heads(y), d)
    }
}

model M(vocab: int = 48, d: int = 32) {
    embedding: Embedding(vocab, d)
    norm: RMSNorm(d)
    layers: LAYERS
    final_norm: RMSNorm(d)
    head: LMHead(vocab, d, tied = false)
    SHARE
}
"""
MAX_LEN = 24


def _source(layers: str, share: str = "") -> str:
    return MODEL.replace("LAYERS", layers).replace("SHARE", share)


def _pair(source: str, max_len: int = MAX_LEN) -> tuple[torch.nn.Module, Session]:
    module = torch_module(source)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(3.0)
    built = build(ir_model(source), BuildOptions(weights="f32", max_len=max_len))
    return module, Session(built, state_of(module))


def _diffs(source: str, length: int, steps: int, max_len: int = MAX_LEN) -> tuple[float, float, float]:
    """(prefill, worst decode step, prefill(T) + decode vs prefill(T + 1)) max abs logit differences, divided by
    max(1, largest |logit|): the amplified weights give logits up to ~10, where f32 rounding alone is ~1e-5."""
    module, session = _pair(source, max_len)
    ids = np.random.default_rng(1).integers(0, 48, size=length + steps)
    tokens = torch.as_tensor(ids, dtype=torch.long)[None]
    cache = module.init_cache(1, max_len)
    with torch.no_grad():
        ref = [module.prefill(tokens[:, :length], cache, last_only=True)[:, -1].numpy()]
        ref += [module.decode_step(tokens[:, length + s : length + s + 1], cache)[:, -1].numpy() for s in range(steps)]
    got = [session.prefill(ids[:length])] + [session.decode(int(ids[length + s])) for s in range(steps)]
    scale = max(1.0, max(float(np.abs(r).max()) for r in ref))
    diffs = [float(np.abs(a - b).max()) / scale for a, b in zip(got, ref, strict=True)]
    again = float(np.abs(session.prefill(ids[: length + 1]) - got[1]).max()) / scale
    return diffs[0], max(diffs[1:]), again


MODELS = {
    "gqa": "[GQA(d, heads = 4, kv_heads = 2)]",
    "mha_qk_norm": "[MHA(d, heads = 4, qk_norm = true)]",
    "mqa": "[MQA(d, heads = 4)]",
    "swa_ring": "2 * [SWA(d, heads = 4, window = 4, kv_heads = 2)]",  # decode wraps the 4-slot ring
    "swa_wide": "[SWA(d, heads = 2, window = 40)]",  # window > max_len: a plain cache, banded mask
    "softcap": "[Capped(d)]",
    "gated_short_conv": "[GatedShortConv(d) + SwiGLU(d, 48)]",
    "hyena_se_groups": "[HyenaSE(d, inner = 5, groups = 4)]",
    "hyena_x_bias": "[HyenaX(d, bias = true)]",
    "token_dense": "[Dense(d)]",
    # several kernel variants in one module (each copy gets its own symbol)
    "mixed": "[GQA(d, heads = 4, kv_heads = 2), SWA(d, heads = 4, window = 3, kv_heads = 1), "
    "Dense(d), Dense(d, n = 30)]",
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_matches_torch(name: str) -> None:
    prefill, decode, again = _diffs(_source(MODELS[name]), length=7, steps=6)
    assert prefill <= TOL and decode <= TOL and again <= TOL, (prefill, decode, again)


def test_shared_kv_reads_the_owner_cache() -> None:
    """`share features k, v`: layer 2 attends over layer 0's cache and has no cache entry of its own."""
    source = _source("3 * [MHA(d, heads = 2)]", "share features k, v from layers[0][0] to layers[2][0]")
    prefill, decode, again = _diffs(source, length=7, steps=5)
    assert prefill <= TOL and decode <= TOL and again <= TOL, (prefill, decode, again)


def test_bidirectional_prefill_matches_torch() -> None:
    """Bidirectional attention: prefill only (no decode_step, like torch)."""
    source = _source("[Bidir(d)]")
    module, session = _pair(source)
    ids = np.arange(9) % 48
    with torch.no_grad():
        ref = module(torch.as_tensor(ids)[None]).logits[:, -1].numpy()
    assert np.abs(session.prefill(ids) - ref).max() <= TOL


def test_token_dense_max_len_beyond_its_size_is_refused() -> None:
    with pytest.raises(TvmError, match="token_dense"):
        build(ir_model(_source("[Dense(d, n = 16)]")), BuildOptions(weights="f32", max_len=MAX_LEN))


def test_swa_prompt_shorter_than_the_window_then_wraps() -> None:
    """A 2-token prompt into a 4-slot ring, then decode steps across the wrap."""
    prefill, decode, again = _diffs(_source("[SWA(d, heads = 4, window = 4, kv_heads = 2)]"), length=2, steps=7)
    assert prefill <= TOL and decode <= TOL and again <= TOL, (prefill, decode, again)


def test_large_caches_are_updated_in_place() -> None:
    """KV and token_dense history: decode mutates the very buffers passed in; the conv state is rebuilt."""
    _, session = _pair(_source("[GQA(d, heads = 4, kv_heads = 2) + GatedShortConv(d) + Dense(d)]"))
    session.prefill(np.arange(5))
    before = list(session.cache)
    snapshot = [c.numpy() for c in before]
    session.decode(3)
    keys = [e.key for e in session.plan.cache]
    large = [i for i, key in enumerate(keys) if key.endswith((".k", ".v", ".y"))]
    assert len(large) == 3, keys
    for i in large:
        assert np.array_equal(before[i].numpy(), session.cache[i].numpy()), keys[i]
        assert not np.array_equal(before[i].numpy(), snapshot[i]), keys[i]
    conv = keys.index(next(k for k in keys if k.endswith(".conv")))
    assert np.array_equal(before[conv].numpy(), snapshot[conv])


EDGES = {
    # kernel 1 (an empty conv state), a 1-slot ring, a 1-token prompt
    "tiny": ("[GatedShortConv(d, kernel = 1) + SWA(d, heads = 4, window = 1) + HyenaSE(d, groups = 2)]", 1, 4),
    # MQA and token_dense filling the cache to its last position (n = max_len = 24)
    "full_cache": ("[GQA(d, heads = 4, kv_heads = 1) + Dense(d, n = 24)]", MAX_LEN - 2, 1),
}


@pytest.mark.parametrize("name", sorted(EDGES))
def test_edge_shapes_match_torch(name: str) -> None:
    layers, length, steps = EDGES[name]
    prefill, decode, again = _diffs(_source(layers), length, steps)
    assert prefill <= TOL and decode <= TOL and again <= TOL, (prefill, decode, again)


def test_fast_exp_is_accurate() -> None:
    """The vectorisable exp of the attention kernels: relative error below 1e-6 over the f32 range it serves."""
    from tvm import te

    x = te.placeholder((4096,), "float32", name="x")
    y = te.compute(x.shape, lambda i: ka.fast_exp(x[i]), name="y")
    func = _compile(te.create_prim_func([x, y]))
    values = np.linspace(-87.0, 88.0, 4096, dtype=np.float32)
    out = _nd(np.zeros(4096, "float32"))
    func(_nd(values), out)
    exact = np.exp(values.astype(np.float64))
    assert np.max(np.abs(out.numpy() - exact) / exact) < 1e-6
