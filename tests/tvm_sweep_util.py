"""Helpers of the TVM validation sweep (tests/test_tvm_sweep.py, tests/test_tvm_quality.py).

- `std_classes()`: every `liv` and `op` of stdlib/*.liv, read from the files by the front end (parse_source over
  loader.std_modules), so a new stdlib class is swept without editing a list; `class_model(cls)` puts one in a
  tiny model (d 32, vocab 48): a `liv` as both layers, a norm-like `op` as the norm and final norm, an
  embedding / head `op` in its slot (the first slot the compiler accepts, in SLOTS order). Required parameters
  are filled from REQUIRED by name: a new required name fails loudly until it is added there.
- `example_overrides(path)`: the `-D` overrides that shrink an example (width, vocab, heads, FFN, layer and stripe
  counts) from REDUCE, for the parameters the example's model declares.
- `measure(source, ...)`: TVM (in a weight format) vs the torch f32 module on the same weights (tvm_util's
  perturbed init, optionally amplified): last prefill logits, decode steps, prefill(T) + decode vs prefill(T + 1),
  each as max abs difference divided by max(1, largest |torch logit|).
- `plan_cache_bytes` / `static_cache_alloc`: the build plan's cache bytes vs the cost analysis' `cache_alloc`.

Non-goals: asserting anything (the tests do), models larger than a few thousand parameters per layer.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from functools import cache
from math import prod
from pathlib import Path

import numpy as np
import torch
from hypothesis import strategies as st
from program_strategies import _ACTIVATIONS as ACTIVATIONS
from program_strategies import (
    _MOVES,
    TOKEN_DENSE_LEN,
    OpDef,
    Program,
    _Body,
    _branch,
    _heads,
    _stdlib_call,
    _structure,
    identifiers,
)
from strategies import operators
from tvm_util import ir_model, state_of, torch_module

from livc.backends.tvm.compile import BuildOptions, Built, build
from livc.backends.tvm.plan import Plan, as_stored
from livc.backends.tvm.runtime import Session
from livc.compiler.analysis.costs import analyze
from livc.compiler.analysis.evaluate import Context, report_numbers
from livc.compiler.ir.nodes import DType, Model
from livc.compiler.pipeline import compile_source
from livc.compiler.resolution.loader import std_modules, std_text
from livc.dsl import ast as A
from livc.dsl.diagnostics import DiagnosticSink
from livc.dsl.parser import parse_source
from livc.dsl.source import SourceFile

D, VOCAB = 32, 48
# values of required class parameters, by name ("d" / "vocab" are the model's own parameters; a window of 3 is
# shorter than the prompt, so the ring wraps in prefill and in decode)
REQUIRED: dict[str, str] = dict(d="d", vocab="vocab", heads="4", hidden="32", window="3", experts="4", top_k="2")
# example model parameter -> reduced value, passed where an example declares it (lfm2_ffn_width rounds ff_dim up
# to 256; n_layers 5 = MoR middle_cycle's first + 3 recursions of 1 + last)
REDUCE: dict[str, int] = dict(vocab=48, d=32, heads=4, kv_heads=2, ffn=48, ff_dim=96, n_layers=5, stripes=1, state=4)
REDUCE["groups"] = 4  # HyenaSE / HyenaMR filter groups (must divide d)
FILLER = "op Filler(d: int) {\n    return linear(silu(linear(x, 2 * d)), d)\n}\n"


@dataclass(frozen=True)
class StdClass:
    """One stdlib definition: `kind` is "liv" or "op"; `required` its parameters without a default."""

    module: str
    name: str
    kind: str
    params: tuple[str, ...]
    required: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.module}.{self.name}"


@cache
def std_classes() -> tuple[StdClass, ...]:
    """Every `liv` / `op` of the standard library, in module then file order."""
    out = []
    for module in sorted(std_modules()):
        parsed = parse_source(SourceFile(f"<std>/{module}.liv", std_text(module) or ""), DiagnosticSink())
        assert parsed is not None, f"std.{module} does not parse"
        for item in parsed.items:
            if isinstance(item, A.Def) and item.kind in (A.DefKind.LIV, A.DefKind.OP):
                params = tuple(p.name.name for p in item.params)
                required = tuple(p.name.name for p in item.params if p.default is None)
                out.append(StdClass(module, item.name.name, item.kind.value, params, required))
    return tuple(out)


def call(cls: StdClass, extra: dict[str, str] | None = None) -> str:
    """`Name(p = value, ...)`: required parameters from REQUIRED (KeyError names a new one), then `extra`."""
    missing = [p for p in cls.required if p not in REQUIRED and p not in (extra or {})]
    if missing:
        raise KeyError(f"{cls.id}: required parameter {missing[0]!r} has no value in tvm_sweep_util.REQUIRED")
    args = {p: REQUIRED[p] for p in cls.required if p not in (extra or {})} | (extra or {})
    return f"{cls.name}(" + ", ".join(f"{k} = {v}" for k, v in args.items()) + ")"


def _model(cls: StdClass, slot: str, text: str) -> str:
    fields = {
        "embedding": "Embedding(vocab, d)",
        "norm": "RMSNorm(d)",
        "layers": "[Filler(d), Filler(d)]",
        "final_norm": "RMSNorm(d)",
        "head": "LMHead(vocab, d, tied = false)",
    }
    if slot == "norm":
        fields |= {"norm": text, "final_norm": text}
    elif slot == "layers":
        fields["layers"] = f"[{text}, {text}]"
    else:
        fields[slot] = text
    names = {"norms": ["RMSNorm"], "embedding": ["Embedding", "LMHead"]}
    names[cls.module] = sorted(set(names.get(cls.module, [])) | {cls.name})
    imports = [f"from std.{m} import {', '.join(n)}" for m, n in names.items()]
    body = "\n".join(f"    {k}: {v}" for k, v in fields.items())
    return "\n".join(imports) + f"\n\n{FILLER}\nmodel Tiny(vocab: int = {VOCAB}, d: int = {D}) {{\n{body}\n}}\n"


SLOTS = ("norm", "embedding", "head", "layers")


def class_model(cls: StdClass, extra: dict[str, str] | None = None) -> str:
    """A tiny model with `cls` in it: a liv as both layers, an op in the first slot of SLOTS that compiles."""
    text = call(cls, extra)
    slots = ("layers",) if cls.kind == "liv" else SLOTS
    problems = []
    for slot in slots:
        source = _model(cls, slot, text)
        result = compile_source(source, "<sweep>", stop_after="lower")
        if result.ok:
            return source
        problems.append(f"{slot}: {[str(d) for d in result.diagnostics][:1]}")
    raise AssertionError(f"{cls.id}: no model slot accepts {text}: {problems}")


# ---- examples


def model_params(path: Path) -> tuple[str, ...]:
    """The parameters of the (single) model defined in an example file."""
    parsed = parse_source(SourceFile(str(path), path.read_text(encoding="utf-8")), DiagnosticSink())
    assert parsed is not None, f"{path} does not parse"
    models = [i for i in parsed.items if isinstance(i, A.Def) and i.kind is A.DefKind.MODEL]
    assert len(models) == 1, f"{path}: expected one model, found {len(models)}"
    return tuple(p.name.name for p in models[0].params)


def example_overrides(path: Path) -> dict[str, int]:
    return {name: value for name, value in REDUCE.items() if name in model_params(path)}


# ---- measuring


@dataclass(frozen=True)
class Measured:
    prefill: float  # max |TVM - torch (same stored weights)| of the last prefill logits / scale
    decode: float  # worst decode step, same scale
    consistency: float  # TVM prefill(T) + decode vs TVM prefill(T + 1), same scale
    scale: float  # max(1, largest |torch logit|)
    built: Built
    to_f32: float  # worst of prefill / decode vs torch on the f32 (not dequantised) weights, same scale

    @property
    def worst(self) -> float:
        return max(self.prefill, self.decode, self.consistency)


def reference(source: str, seed: int = 0, amplify: float = 1.0, **overrides: object) -> torch.nn.Module:
    """The torch f32 module (tvm_util's perturbed init), every parameter multiplied by `amplify`."""
    module = torch_module(source, seed, **overrides)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(amplify)
    return module


def torch_logits(module: torch.nn.Module, ids: np.ndarray, T: int, steps: int, max_len: int) -> list[np.ndarray]:
    cache_ = module.init_cache(1, max_len)
    tokens = torch.as_tensor(ids, dtype=torch.long)[None]
    with torch.no_grad():
        out = [module.prefill(tokens[:, :T], cache_, last_only=True)[:, -1].numpy()]
        out += [module.decode_step(tokens[:, T + s : T + s + 1], cache_)[:, -1].numpy() for s in range(steps)]
    return out


def dequantized(module: torch.nn.Module, plan: Plan) -> torch.nn.Module:
    """A copy of `module` whose matrix weights are what the kernels compute from storage (weights.unpack)."""
    copy = deepcopy(module)
    state = copy.state_dict()
    stored = as_stored(plan, {pid: state[pid].numpy() for pid in plan.matrices})
    with torch.no_grad():
        for pid in plan.matrices:
            state[pid].copy_(torch.from_numpy(stored[pid]))
    return copy


def _diffs(got: list[np.ndarray], ref: list[np.ndarray]) -> tuple[float, float, float]:
    scale = max(1.0, max(float(np.abs(r).max()) for r in ref))
    diffs = [float(np.abs(a - b).max()) / scale for a, b in zip(got, ref, strict=True)]
    return diffs[0], max(diffs[1:], default=0.0), scale


def measure(
    source: str,
    T: int = 7,
    steps: int = 4,
    weights: str = "f32",
    max_len: int = 16,
    seed: int = 0,
    amplify: float = 1.0,
    **overrides: object,
) -> Measured:
    """TVM at `weights` vs the torch f32 module with the same weights as stored (dequantised: `dequantized`;
    for f32 the weights themselves); `Measured.to_f32` is the difference from torch on the unquantised ones."""
    model = ir_model(source, **overrides)
    module = reference(source, seed, amplify, **overrides)
    built = build(model, BuildOptions(weights=weights, max_len=max_len))
    session = Session(built, state_of(module))
    ids = np.random.default_rng(seed).integers(0, model.vocab, size=T + steps)
    f32 = torch_logits(module, ids, T, steps, max_len)
    ref = f32 if weights == "f32" else torch_logits(dequantized(module, built.plan), ids, T, steps, max_len)
    got = [session.prefill(ids[:T])] + [session.decode(int(ids[T + s])) for s in range(steps)]
    prefill, decode, scale = _diffs(got, ref)
    again = float(np.abs(session.prefill(ids[: T + 1]) - got[1]).max()) / scale if steps else 0.0
    return Measured(prefill, decode, again, scale, built, max(_diffs(got, f32)[:2]))


# ---- cache bytes


def plan_cache_bytes(plan: Plan) -> int:
    return sum(prod(e.shape) * np.dtype(e.dtype).itemsize for e in plan.cache)


def static_cache_alloc(model: Model, max_len: int) -> int:
    """The cost analysis' cache_alloc at batch 1, seq max_len, f32 (what `livc cost --json` reports)."""
    return report_numbers(analyze(model), Context(batch=1, seq=max_len, dtype=DType.F32)).cache_alloc_bytes


# ---- generated programs that exercise one primitive family each (program_strategies' moves, the kind fixed)


def _mixer(kind: str) -> Callable[[_Body], None]:
    """program_strategies._mixer with the mixer kind fixed (drawn the same way otherwise)."""

    def move(b: _Body) -> None:
        src, _ = b.flat()
        if kind == "selective_scan":
            state = b.draw(st.integers(1, 4))
            dt = b.bind(f"softplus(linear({src}, {b.width_expr(b.d)}))", (b.d,), fresh=True)
            bb, cc = (b.bind(f"linear({src}, {state})", (state,), fresh=True) for _ in range(2))
            u = b.bind(f"linear({src}, {b.width})", (b.d,), fresh=True)
            b.bind(f"selective_scan({u}, {dt}, {bb}, {cc}, state = {state})", (b.d,))
            return
        heads = b.draw(st.sampled_from((1, 2, 4)))
        dk, dv = b.draw(st.sampled_from((2, 4, 8))), b.draw(st.sampled_from((2, 4, 8)))
        kv = b.draw(st.sampled_from([k for k in (1, 2, 4) if heads % k == 0])) if kind == "attention" else heads
        q, k, v = _heads(b, src, heads, dk, "q"), _heads(b, src, kv, dk, "k"), _heads(b, src, kv, dv, "v")
        if kv < heads:
            k = b.bind(f"repeat_heads({k}, {heads // kv})", (heads, dk), fresh=True)
            v = b.bind(f"repeat_heads({v}, {heads // kv})", (heads, dv), fresh=True)
        if kind == "attention":
            extra = b.draw(st.sampled_from(("", ", window = 3", ", window = 1"))) + b.draw(
                st.sampled_from(("", ", softcap = 30.0"))
            )
            b.bind(f"attention({q}, {k}, {v}{extra})", (heads, dv))
        elif kind == "linear_attention":
            fmap = b.draw(st.sampled_from(("elu_plus_one, normalize = true", "relu_map, normalize = false")))
            b.bind(f"linear_attention({q}, {k}, {v}, feature_map = {fmap})", (heads, dv))
        else:
            gate = f"split_heads(logsigmoid(linear({src}, {b.width_expr(heads * dk)})), {heads})"
            b.bind(f"gated_scan({q}, {k}, {v}, {b.bind(gate, (heads, dk), fresh=True)})", (heads, dv))

    return move


def _flat(template: Callable[[_Body, int], str]) -> Callable[[_Body], None]:
    """A move binding `template(body, channels)` applied to a flat value, same width."""

    def move(b: _Body) -> None:
        src, c = b.flat()
        b.bind(template(b, c).replace("SRC", src), (c,))

    return move


def _b(b: _Body) -> str:
    return "true" if b.draw(st.booleans()) else "false"


def _short_conv(b: _Body, c: int) -> str:
    return f"short_conv(SRC, kernel = {b.draw(st.integers(1, 4))})"


def _causal_conv(b: _Body, c: int) -> str:
    groups = b.draw(st.one_of(st.none(), st.sampled_from([g for g in range(1, c + 1) if c % g == 0])))
    return (
        f"causal_conv(SRC, kernel = {b.draw(st.integers(1, 4))}"
        + ("" if groups is None else f", groups = {groups}")
        + ")"
    )


def _implicit(b: _Body, c: int) -> str:
    order = b.draw(st.integers(2, 8))
    return f"long_conv(SRC, implicit_filter(order = {order}, emb_dim = 3, inner_layers = 1), bias = {_b(b)})"


def _modal(b: _Body, c: int) -> str:
    return f"long_conv(SRC, modal_filter(state = {b.draw(st.integers(1, 4))}), bias = {_b(b)})"


def _token_dense(b: _Body, c: int) -> str:
    return f"token_dense(SRC, max_len = {TOKEN_DENSE_LEN})"


def _moe(b: _Body, c: int) -> str:
    experts = b.draw(st.integers(1, 4))
    top_k, hidden, shared = b.draw(st.integers(1, experts)), b.draw(st.integers(1, 12)), b.draw(st.integers(0, 1))
    return f"moe(SRC, experts = {experts}, top_k = {top_k}, hidden = {hidden}, shared = {shared})"


def _activations(b: _Body) -> None:
    """Every activation once, each on a drawn bound value (a random DAG of them)."""
    for act in b.draw(st.permutations(ACTIVATIONS)):
        src, shape = b.pick()
        b.bind(f"{act}({src})", shape)


def _structural(b: _Body) -> None:
    """split / split_heads / repeat_heads / merge_heads, an `if`, grouped_linear, scale and layernorm."""
    _structure(b)
    _branch(b)
    src, c = b.flat()
    groups = b.draw(st.sampled_from([g for g in (1, 2, 4) if c % g == 0]))
    b.bind(f"grouped_linear({src}, {b.width_expr(c)}, groups = {groups}, bias = {_b(b)})", (c,))
    b.bind(f"scale({b.last}, init = {b.draw(st.sampled_from(('0.5', '2.0')))})", (c,))
    b.bind(f"layernorm({b.last}, bias = {_b(b)})", (c,))


FOCUS: dict[str, Callable[[_Body], None]] = {
    "attention": _mixer("attention"),
    "linear_attention": _mixer("linear_attention"),
    "gated_scan": _mixer("gated_scan"),
    "selective_scan": _mixer("selective_scan"),
    "short_conv": _flat(_short_conv),
    "causal_conv": _flat(_causal_conv),
    "long_conv_implicit": _flat(_implicit),
    "long_conv_modal": _flat(_modal),
    "token_dense": _flat(_token_dense),
    "moe": _flat(_moe),
    "activations": _activations,
    "structure": _structural,
}


# FOCUS families in groups: one generated program exercises a group (fewer builds than one family each)
FOCUS_GROUPS: tuple[tuple[str, ...], ...] = (
    ("attention", "short_conv", "activations"),
    ("linear_attention", "causal_conv", "structure"),
    ("gated_scan", "long_conv_implicit", "moe"),
    ("selective_scan", "long_conv_modal", "token_dense"),
)


def _keep(b: _Body, i: int) -> str:
    """Project the last value to the width under a name later moves never read or rebind (not in `bound`),
    so every focus move stays live (the compiler drops dead ops)."""
    last = f"merge_heads({b.last})" if len(b.bound[b.last]) == 2 else b.last
    b.lines.append(f"keep{i} = linear({last}, w)")
    return f"keep{i}"


@st.composite
def focused_programs(draw: st.DrawFn, focus: tuple[str, ...]) -> Program:
    """A 2-layer program whose op body runs the `focus` moves in a drawn order, then 0..1 of program_strategies'
    moves; maybe a stdlib LIV beside it (strategies.operators), a drawn norm, final norm and (tied or not) head."""
    names = identifiers(False)
    d = draw(st.sampled_from((8, 16, 32)))
    body = _Body(draw, names, "w", d, frozenset({"w", "e", "m"}))
    body.bound["x"] = (d,)
    kept = []
    for name in draw(st.permutations(focus)):
        FOCUS[name](body)
        kept.append(_keep(body, len(kept)))
    for _ in range(draw(st.integers(0, 1))):
        draw(st.sampled_from(_MOVES))(body)
    kept.append(_keep(body, len(kept)))
    result = f"linear({' + '.join(kept)}, m // e)"
    op = OpDef("Focus", "w", "e", (("m", "w * e"),), tuple(body.lines), result)
    stdlib = tuple(draw(st.lists(operators(d), max_size=1)))
    second = ("Focus({d})", *(_stdlib_call(s) for s in stdlib))
    return Program(
        name="Gen",
        vocab_name="vocab",
        d_name="d",
        vocab=draw(st.integers(8, 48)),
        d=d,
        ops=(op,),
        layers=(("Focus({d})",), second),
        stdlib=stdlib,
        norm=draw(st.sampled_from(("RMSNorm({d})", "LayerNorm({d})", None))),
        final_norm=draw(st.sampled_from(("RMSNorm({d})", None))),
        head=f"LMHead({{vocab}}, {{d}}, tied = {draw(st.sampled_from(('true', 'false')))})",
    )
