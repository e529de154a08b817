"""Properties of the compiler over random valid models (`tests/strategies.py`, valid by construction).

1. every drawn model compiles without diagnostics at every stage, the IR verifier accepts every stage
   (`verify=True`, and `verify(model, stage)` with the stage's postconditions), and its (generous) budgets
   pass;
2. the IR printer and parser round-trip at every stage: `parse_ir(print_model(m)) == m`;
3. `canonicalize` and `lower` are idempotent;
4. the cost report is the same after expand, canonicalize and lower (build is before sharing);
5. costs are monotone: caches, prefill FLOPs and activations in L, decode FLOPs in t; and the allocated
   cache is never smaller than the minimal one;
6. sharing and Mixture-of-Recursions never add parameters (routers aside) and sharing never adds cache;
   `share features` changes the KV cache by exactly what it moves: a target stops storing the shared groups,
   and the source stores them for as many tokens as its longest-reaching reader needs;
7. the static parameter count equals an independent recount over the parameter ids the ops use;
8. budgets reject exactly what exceeds them, in a `budget { }` block and from the command line.

Runs are derandomized, so a failure reproduces on every machine.
"""

from __future__ import annotations

import dataclasses
import math

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from strategies import (
    Attention,
    DrawnModel,
    MoRSpec,
    OpSpec,
    ShareSpec,
    SublayerSpec,
    drawn_models,
    kv_sharing_models,
)

from livc.compiler.analysis.budgets import check_budget, measure, parse_cli_budget
from livc.compiler.analysis.costs import Cost, CostReport, analyze
from livc.compiler.analysis.evaluate import Context
from livc.compiler.check import check_source
from livc.compiler.ir.nodes import Block, DType, Model
from livc.compiler.ir.sym import Poly
from livc.compiler.ir.text import parse_ir, print_model
from livc.compiler.ir.verify import verify
from livc.compiler.passes import canonicalize, lower
from livc.compiler.pipeline import STAGE_NAMES, analyze_checked, compile_source
from livc.dsl.diagnostics import DiagnosticSink

SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
IR_STAGES = STAGE_NAMES[1:]  # after build: sharing applied


# ---- compiling ---------------------------------------------------------------------------------------------


def stages(text: str) -> dict[str, Model]:
    """The model after every stage: `compile_source(text, stop_after=stage)` for each stage."""
    out = {}
    for stage in STAGE_NAMES:
        result = compile_source(text, "<drawn>", stop_after=stage)
        assert result.ok and len(result.models) == 1, (stage, result.diagnostics)
        out[stage] = result.models[0]
    return out


def final(text: str) -> Model:
    result = compile_source(text, "<drawn>")
    assert result.ok and len(result.models) == 1, result.diagnostics
    return result.models[0]


# ---- 1. clean compilation ----------------------------------------------------------------------------------


@settings(max_examples=60, **SETTINGS)
@given(drawn_models())
def test_models_compile_cleanly_and_verify_at_every_stage(model: DrawnModel) -> None:
    for stage in STAGE_NAMES:
        result = compile_source(model.source, "<drawn>", stop_after=stage, verify=True)
        assert result.diagnostics == () and len(result.models) == 1, stage
        assert verify(result.models[0], stage) == [], stage
    assert analyze_checked(check_source(model.source, "<drawn>"), verify=True).diagnostics == ()


# ---- 2. IR text round trip ---------------------------------------------------------------------------------


@settings(max_examples=40, **SETTINGS)
@given(drawn_models())
def test_ir_print_parse_round_trips_at_every_stage(model: DrawnModel) -> None:
    for stage, ir in stages(model.source).items():
        text = print_model(ir)
        parsed = parse_ir(text)
        assert parsed == ir, stage
        assert print_model(parsed) == text, stage


# ---- 3. idempotent passes ----------------------------------------------------------------------------------


@settings(max_examples=60, **SETTINGS)
@given(drawn_models())
def test_canonicalize_and_lower_are_idempotent(model: DrawnModel) -> None:
    ir = stages(model.source)
    sink = DiagnosticSink()
    assert canonicalize.run(ir["canonicalize"], sink) == ir["canonicalize"]
    assert canonicalize.run(ir["expand"], sink) == ir["canonicalize"]
    assert lower.run(ir["lower"], sink) == ir["lower"]
    assert sink.items == []


# ---- 4. costs are stage-invariant --------------------------------------------------------------------------


# Found by a longer random run: capacity-scaled costs summed per section (canonicalize) and per block (lower).
THREE_RECURSIONS = DrawnModel(
    name="M",
    vocab=1,
    d=8,
    dtype="f32",
    norm=None,
    final_norm=None,
    kinds=((SublayerSpec(op=OpSpec(name="SwiGLU", module="mlp", args=(("hidden", "5"),))),),),
    segments=((3, (0,)),),
    recursion=MoRSpec(recursions=3, sharing="cycle", router="token_choice", capacities=None, kv="recursion_wise"),
)


@settings(max_examples=60, **SETTINGS)
@given(drawn_models())
@example(THREE_RECURSIONS)
def test_costs_are_the_same_after_expand_canonicalize_and_lower(model: DrawnModel) -> None:
    ir = stages(model.source)
    reports = [analyze(ir[stage]) for stage in IR_STAGES]
    for stage, report in zip(IR_STAGES[1:], reports[1:], strict=True):
        assert _differences(reports[0].total, report.total) == [], f"expand vs {stage}"
        assert report.embedding_params == reports[0].embedding_params, stage


def _differences(a: Cost, b: Cost) -> list[str]:
    """The fields in which two costs differ, with their exact coefficients."""
    fields = [f.name for f in dataclasses.fields(Cost)]
    return [
        f"{name}: {_terms(getattr(a, name))} != {_terms(getattr(b, name))}"
        for name in fields
        if getattr(a, name) != getattr(b, name)
    ]


def _terms(value: object) -> object:
    return {" ".join(map(str, m)) or "1": c for m, c in value.terms.items()} if isinstance(value, Poly) else value


# ---- 5. monotone costs -------------------------------------------------------------------------------------

LENGTHS = tuple(2**k for k in range(17))


def _series(report: CostReport, metric: str) -> list[float]:
    poly = getattr(report.total, metric)
    return [float(poly.evaluate(**Context(seq=n).env())) for n in LENGTHS]


def _non_decreasing(values: list[float]) -> bool:
    return all(b >= a - 1e-9 * abs(a) for a, b in zip(values, values[1:], strict=False))


@settings(max_examples=60, **SETTINGS)
@given(drawn_models())
def test_costs_are_monotone_in_sequence_length(model: DrawnModel) -> None:
    report = analyze(final(model.source))
    for metric in ("cache_min", "cache_alloc", "prefill", "activations", "decode"):  # decode: in t = L - 1
        values = _series(report, metric)
        assert values[0] >= 0 and _non_decreasing(values), (metric, dict(zip(LENGTHS, values, strict=True)))
    pairs = zip(_series(report, "cache_min"), _series(report, "cache_alloc"), strict=True)
    assert all(needed <= allocated for needed, allocated in pairs)


# ---- 6. sharing and MoR never add parameters ---------------------------------------------------------------


def _cache_at(report: CostReport, seq: int) -> float:
    return float(report.total.cache_min.evaluate(**Context(seq=seq).env()))


@settings(max_examples=50, **SETTINGS)
@given(drawn_models(sharing=True))
def test_sharing_never_adds_parameters_or_cache(model: DrawnModel) -> None:
    shared, unshared = analyze(final(model.source)), analyze(final(model.without_shares().source))
    assert shared.params <= unshared.params
    assert shared.non_embedding_params <= unshared.non_embedding_params
    for seq in (1, 4096):
        assert _cache_at(shared, seq) <= _cache_at(unshared, seq)


@settings(max_examples=50, **SETTINGS)
@given(drawn_models(mor=True))
def test_recursion_never_adds_parameters_beyond_its_routers(model: DrawnModel) -> None:
    recursive, flat = final(model.source), final(model.without_recursion().source)
    assert recursive.recursion is not None
    routers = sum(recursive.param(pid).numel for pid in recursive.recursion.router_params)
    assert analyze(recursive).params <= analyze(flat).params + routers


def _stored(attention: Attention, seq: int, window: int | None) -> int:
    """Elements one feature group (k or v) of `attention` keeps for `seq` tokens under a `window`."""
    return attention.kv_heads * attention.head_dim * (seq if window is None else min(seq, window))


def _reach(windows: list[int | None]) -> int | None:
    return None if None in windows else max(w for w in windows if w is not None)


def kv_cache_change(model: DrawnModel, seq: int) -> int:
    """The cache (elements) that the model's `share features` declarations add (negative: save) at `seq`."""
    layers = model.layers
    change, readers = 0, {}
    for share in (s for s in model.shares if s.kind == "features"):
        source = layers[share.source[0]][share.source[1] or 0].op.attention
        assert source is not None
        for ref in share.targets:
            target = layers[ref[0]][ref[1] or 0].op.attention
            assert target is not None
            change -= len(share.groups) * _stored(target, seq, target.window)
            for group in share.groups:
                readers.setdefault((share.source, group), (source, [source.window]))[1].append(target.window)
    for source, windows in readers.values():
        change += _stored(source, seq, _reach(windows)) - _stored(source, seq, source.window)
    return change


def _assert_kv_change(model: DrawnModel) -> None:
    shared, unshared = analyze(final(model.source)), analyze(final(model.without_shares().source))
    for seq in (1, 5, 100, 4096):
        expected = _cache_at(unshared, seq) + kv_cache_change(model, seq)
        assert _cache_at(shared, seq) == expected, f"cache at seq {seq}, for\n{model.source}"


@settings(max_examples=30, **SETTINGS)
@given(kv_sharing_models(same_window=True))
def test_feature_sharing_frees_exactly_the_shared_groups(model: DrawnModel) -> None:
    """All attention layers have one window: a target stops caching exactly the K/V it imports."""
    _assert_kv_change(model)


def _attention_layer(window: int | None) -> tuple[SublayerSpec]:
    args = (("heads", "1"), ("head_dim", "1"), ("rope", "false")) + ((("window", str(window)),) if window else ())
    op = OpSpec(
        name="GQA", module="attention", args=args, attention=Attention(heads=1, kv_heads=1, head_dim=1, window=window)
    )
    return (SublayerSpec(op=op),)


# The smallest model with a windowed source and an unwindowed reader (what shrinking finds).
WINDOWED_SOURCE = DrawnModel(
    name="M",
    vocab=1,
    d=8,
    dtype="f32",
    kinds=(_attention_layer(1), _attention_layer(None)),
    segments=((1, (0, 1)),),
    shares=(ShareSpec(kind="features", source=(0, 0), targets=((1, 0),), groups=("k", "v")),),
)


@settings(max_examples=30, **SETTINGS)
@given(kv_sharing_models())
@example(WINDOWED_SOURCE)
def test_feature_sharing_keeps_the_kv_every_reader_needs(model: DrawnModel) -> None:
    """Windows differ: a reader that looks further back than its source keeps is rejected (E0314);
    otherwise the shared cache is exactly the sources' own caches."""
    if _reader_outreaches_source(model):
        result = compile_source(model.source, "m.liv")
        assert [d.code for d in result.diagnostics] == ["E0314"], model.source
        return
    _assert_kv_change(model)


def _reach_of(window: int | None) -> float:
    return float("inf") if window is None else float(window)


def _reader_outreaches_source(model: DrawnModel) -> bool:
    layers = model.layers
    for share in (s for s in model.shares if s.kind == "features"):
        source = layers[share.source[0]][share.source[1] or 0].op.attention
        for ref in share.targets:
            target = layers[ref[0]][ref[1] or 0].op.attention
            if source is not None and target is not None and _reach_of(target.window) > _reach_of(source.window):
                return True
    return False


# ---- 7. independent parameter recount ----------------------------------------------------------------------


def _blocks(model: Model) -> list[Block]:
    subs = [b for layer in model.layers for s in layer.sublayers for b in (s.norm, s.block) if b is not None]
    return [model.embedding, *subs, *([model.final_norm] if model.final_norm else []), model.head]


def recount(model: Model) -> int:
    """Unique parameter ids used by ops (plus MoR routers), each counted once with its shape's size."""
    used = {pid for block in _blocks(model) for op in block.ops for _, pid in op.params}
    used |= set(model.recursion.router_params) if model.recursion else set()
    shapes = {p.id: p.shape for p in model.params}
    return sum(math.prod(shapes[pid]) for pid in used)


@settings(max_examples=60, **SETTINGS)
@given(drawn_models())
def test_static_params_equal_an_independent_recount(model: DrawnModel) -> None:
    for stage, ir in stages(model.source).items():
        assert analyze(ir).params == recount(ir), stage


# ---- 8. budgets ----------------------------------------------------------------------------------------------

METRICS = ("params", "non_embedding_params", "active_params", "cache", "flops_per_token")
_SEQS = (1, 7, 4096, 32768)


def _literal(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _below(value: float) -> float | None:
    """A limit just under `value` (None if only negative limits are)."""
    if value <= 0:
        return None
    return value - 1 if float(value).is_integer() else value * (1 - 1e-9)


def _args(metric: str, batch: int, seq: int, dtype: str) -> str:
    if metric == "cache":
        return f"(batch = {batch}, seq = {seq}, dtype = {dtype})"
    return f"(seq = {seq})" if metric == "flops_per_token" else ""


def _measured(report: CostReport, metric: str, batch: int, seq: int, dtype: str) -> float:
    ctx = Context(batch=batch, seq=seq, dtype=DType(dtype)) if metric == "cache" else Context(seq=seq)
    return measure(metric, report.total, ctx, report.dtype_bytes, report.embedding_params, report.inactive_params)


def _budget_lines(report: CostReport, batch: int, seq: int, dtype: str) -> dict[str, bool]:
    """Budget items -> whether each must fail: `<= v` passes, `<= v - 1` and `< v` fail."""
    lines = {}
    for metric in METRICS:
        value, head = _measured(report, metric, batch, seq, dtype), metric + _args(metric, batch, seq, dtype)
        lines[f"{head} <= {_literal(value)}"] = False
        lines[f"{head} < {_literal(value)}"] = True
        below = _below(value)
        if below is not None:
            lines[f"{head} <= {_literal(below)}"] = True
    return lines


def _cli_budgets(report: CostReport, batch: int, seq: int, dtype: str) -> dict[str, bool]:
    out = {}
    for metric in METRICS:
        value = _measured(report, metric, batch, seq, dtype)
        head = metric + (f"@{seq}" if metric in ("cache", "flops_per_token") else "")
        out[f"{head}<={_literal(value)}"] = False
        out[f"{head}<{_literal(value)}"] = True
        below = _below(value)
        if below is not None:
            out[f"{head}<={_literal(below)}"] = True
    return out


@settings(max_examples=40, **SETTINGS)
@given(drawn_models(), st.integers(1, 4), st.sampled_from(_SEQS), st.sampled_from(("f32", "bf16", "f16")))
def test_budgets_reject_exactly_what_exceeds_them(model: DrawnModel, batch: int, seq: int, dtype: str) -> None:
    ir = final(model.source)
    report = analyze(ir)
    lines = _budget_lines(report, batch, seq, dtype)
    analyzed = analyze_checked(check_source(model.with_budgets(list(lines)).source, "<drawn>"))
    failed = {d.primary.span.text for d in analyzed.diagnostics if d.code == "E0402"}
    # the lines bound each metric several times (W0004) and may measure beyond `context` (W0003)
    assert {d.code for d in analyzed.diagnostics} <= {"E0402", "W0003", "W0004"}
    assert failed == {line for line, fails in lines.items() if fails}
    for text, fails in _cli_budgets(report, batch, seq, dtype).items():
        diagnostic = check_budget(ir, report, parse_cli_budget(text, dtype=dtype, batch=batch))
        assert (diagnostic is not None and diagnostic.code == "E0402") == fails, text
