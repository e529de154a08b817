"""The search genome (search/{space,genome,decode,encode,repair,variation,operators}.py).

Properties over drawn spaces (width, slots, layers of 1-2 slots, class subsets of the default pool, slot
patterns, sharing on/off) and drawn raw vectors biased towards sharing (few group labels, active strategies):
repair is canonical and idempotent; every repaired genome decodes to a program that `livc check
--deny-warnings` accepts, with its static costs, and that `livc fmt` leaves as it is; encode(decode(g)) == g;
two canonical genomes that differ (one gene changed, then repaired) decode to different IR, and equal keys
give equal text; every variation operator maps valid to valid. Plus: the seeds that fit encode exactly
(examples/star_shared, examples/transformer_pp) and those that do not are refused with E0801; the pymoo
operators run an NSGA-II ask/tell loop and pickle with the algorithm; each pool class with sharing runs in
PyTorch with the static parameter and cache counts, and decodes step by step like its parallel forward.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livc.compiler.check import check_source
from livc.compiler.pipeline import analyze_checked, compile_source
from livc.dsl.formatter import format_text
from livc.dsl.render import render_all_text
from livc.search.decode import decode
from livc.search.encode import encode
from livc.search.errors import SearchError
from livc.search.genome import Genome, SlotGene, bounds, from_vector, n_var, slot_width, to_vector
from livc.search.operators import GenomeCrossover, GenomeMutation, GenomeRepair, GenomeSampling
from livc.search.repair import key, repair
from livc.search.space import SearchSpace, Sharing, default_pool
from livc.search.variation import crossover, mutate, random_genome

ROOT = Path(__file__).resolve().parents[1]
POOL_NAMES = tuple(c.name for c in default_pool(32))
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def spaces(draw: st.DrawFn) -> SearchSpace:
    width = draw(st.sampled_from((16, 24, 32, 40)))
    per_layer = draw(st.sampled_from((1, 2)))
    slots = per_layer * draw(st.integers(1, 4))
    names = draw(st.lists(st.sampled_from(POOL_NAMES), min_size=1, max_size=4, unique=True))
    pattern = draw(st.sampled_from(((), ("*",), (names[0], "*"), tuple(names))))
    sharing = Sharing(draw(st.sampled_from((True, True, False))), draw(st.sampled_from((True, True, False))))
    pool = {c.name: c for c in default_pool(width)}
    classes = tuple(pool[n] for n in names)
    return SearchSpace(width=width, slots=slots, per_layer=per_layer, classes=classes, pattern=pattern, sharing=sharing)


@st.composite
def raw_vectors(draw: st.DrawFn, space: SearchSpace) -> np.ndarray:
    """A vector in the bounds, mostly with few group labels and active strategies (so groups form)."""
    xl, xu = bounds(space)
    x = np.array([draw(st.integers(int(lo), int(hi))) for lo, hi in zip(xl, xu)])
    if draw(st.integers(0, 3)):
        w = slot_width(space)
        for s in range(space.slots):
            x[s * w + 1] = min(xu[s * w + 1], draw(st.integers(0, 1)))
            x[s * w + 3] = min(xu[s * w + 3], draw(st.integers(0, 1)))
            x[s * w + 2], x[s * w + 4] = xu[s * w + 2], min(xu[s * w + 4], 1)
    return x


@st.composite
def space_and_genome(draw: st.DrawFn) -> tuple[SearchSpace, Genome]:
    space = draw(spaces())
    return space, repair(from_vector(draw(raw_vectors(space)), space), space)


def _ir(text: str):  # noqa: ANN202
    result = compile_source(text, stop_after="canonicalize")
    assert result.ok, render_all_text(result.diagnostics)
    return result.models[0]


def _assert_checks(text: str) -> None:
    analyzed = analyze_checked(check_source(text))
    assert analyzed.ok and not analyzed.diagnostics, text + "\n" + render_all_text(analyzed.diagnostics)
    assert format_text(text) == text
    report = analyzed.reports[0]
    assert report.params > 0 and report.active_params > 0


# ---- canonical form ---------------------------------------------------------------------------


@FAST
@given(space_and_genome())
def test_repair_is_canonical_and_idempotent(case: tuple[SearchSpace, Genome]) -> None:
    space, g = case
    assert repair(g, space) == g
    x = to_vector(g, space)
    xl, xu = bounds(space)
    assert len(x) == n_var(space) and all(lo <= v <= hi for v, lo, hi in zip(x, xl, xu))
    assert from_vector(x, space) == g
    for s, gene in enumerate(g.slots):
        assert gene.cls in space.allowed(s)
        if not gene.fz_strategy:
            assert gene.fz_group == s
        if not gene.fg_strategy:
            assert gene.fg_group == s


@given(st.data())
@settings(max_examples=40, deadline=None)
def test_repair_clamps_any_integers(data: st.DataObject) -> None:
    space = data.draw(spaces())
    ints = st.integers(-5, 40)
    slots = tuple(
        SlotGene(*(data.draw(ints) for _ in range(5)), tuple(data.draw(st.lists(ints, max_size=4))))
        for _ in range(space.slots)
    )
    g = repair(Genome(slots), space)
    assert repair(g, space) == g
    assert from_vector(to_vector(g, space), space) == g


def _gqa_space(**kw: object) -> SearchSpace:
    pool = {c.name: c for c in default_pool(32)}
    return SearchSpace(width=32, slots=4, classes=(pool["SA-1"], pool["GConv-1"]), **kw)


def test_repair_rules() -> None:
    space = _gqa_space()
    sa, conv = 0, 1
    g = Genome(
        (
            SlotGene(sa, 3, 1, 2, 1, (1,)),  # featurizer label 3 with a conv: different class, dropped
            SlotGene(conv, 3, 1, 1, 1, (0,)),  # conv has no feature groups: strategy off
            SlotGene(sa, 0, 0, 2, 1, (2,)),  # feature group {0, 2, 3}: source 0, kv_heads copied from 0
            SlotGene(sa, 2, 5, 2, 1, (0,)),  # illegal featurizer strategy 5 -> none
        )
    )
    r = repair(g, space)
    assert [s.fz_strategy for s in r.slots] == [0, 0, 0, 0]
    assert [(s.fg_group, s.fg_strategy) for s in r.slots] == [(0, 1), (1, 0), (0, 1), (0, 1)]
    assert [s.hypers for s in r.slots] == [(1,), (0,), (1,), (1,)]
    assert [s.fz_group for s in r.slots] == [0, 1, 2, 3]


def test_features_only_flow_to_later_layers() -> None:
    space = _gqa_space(per_layer=2)
    g = Genome(tuple(SlotGene(0, s, 0, 0, 1, (0,)) for s in range(4)))
    r = repair(g, space)
    assert [(s.fg_group, s.fg_strategy) for s in r.slots] == [(0, 1), (1, 0), (0, 1), (0, 1)]
    assert "share features k, v from layers[0][0] to layers[1][0], layers[1][1]" in decode(r, space)


# ---- decode / encode --------------------------------------------------------------------------


@FAST
@given(space_and_genome())
def test_decode_checks_with_costs_and_encode_inverts(case: tuple[SearchSpace, Genome]) -> None:
    space, g = case
    text = decode(g, space)
    _assert_checks(text)
    assert encode(text, space) == g


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space_and_genome(), st.data())
def test_distinct_canonical_genomes_decode_to_distinct_ir(
    case: tuple[SearchSpace, Genome], data: st.DataObject
) -> None:
    """Phenotype equality = genotype equality, on the hard pairs: neighbours one gene apart."""
    space, g = case
    x = np.array(to_vector(g, space))
    xl, xu = bounds(space)
    movable = [i for i in range(len(x)) if xu[i] > xl[i]]
    if not movable:
        return
    i = data.draw(st.sampled_from(movable))
    x[i] = data.draw(st.integers(int(xl[i]), int(xu[i])).filter(lambda v: v != x[i]))
    h = repair(from_vector(x, space), space)
    a, b = decode(g, space), decode(h, space)
    if key(g) == key(h):
        assert g == h and a == b
    else:
        assert _ir(a) != _ir(b), f"{key(g)} and {key(h)} decode to the same IR"


@pytest.mark.parametrize("width", [2, 24, 40, 128, 768])
def test_every_pool_class_at_common_widths(width: int) -> None:
    for op in default_pool(width):
        space = SearchSpace(width=width, slots=2, classes=(op,))
        for index in range(max(len(h.values) for h in op.hypers)):
            hypers = tuple(min(index, len(h.values) - 1) for h in op.hypers)
            _assert_checks(decode(Genome((SlotGene(0, 0, 1, 0, 1, hypers),) * 2), space))


def test_star_shared_and_transformer_pp_encode_exactly() -> None:
    star = SearchSpace(width=768, slots=24, per_layer=2, vocab=32000, pattern=("*", "GMemless"))
    g = encode((ROOT / "examples/star_shared.liv").read_text(), star)
    fz = [s for s, gene in enumerate(g.slots) if gene.fz_strategy]
    fg = [s for s, gene in enumerate(g.slots) if gene.fg_strategy]
    assert fz == [0, 4, 6, 10, 12, 16, 19, 23] and fg == [2, 8, 14, 20]
    assert [g.slots[s].fg_group for s in fg] == [2, 2, 14, 14]
    assert encode(decode(g, star), star) == g
    tpp = SearchSpace(width=1024, slots=36, per_layer=2, vocab=65536)
    g = encode((ROOT / "examples/transformer_pp.liv").read_text(), tpp)
    assert {tpp.classes[s.cls].name for s in g.slots} == {"SA-1", "GMemless"}


@pytest.mark.parametrize(
    ("example", "space", "reason"),
    [
        ("lfm2_350m", SearchSpace(width=1024, slots=32, per_layer=2), "SwiGLU(hidden = 4608"),
        ("mamba_hybrid", SearchSpace(width=1024, slots=48, per_layer=2), "rope = False"),
        ("hyena_edge", SearchSpace(width=768, slots=4), "width is 1024"),
        ("transformer_pp", SearchSpace(width=1024, slots=18), "2 sublayer(s)"),
        ("mor_360m", SearchSpace(width=1024, slots=18), "Mixture-of-Recursions"),
    ],
)
def test_seeds_outside_the_space_are_refused(example: str, space: SearchSpace, reason: str) -> None:
    with pytest.raises(SearchError) as err:
        encode((ROOT / f"examples/{example}.liv").read_text(), space)
    assert err.value.code == "E0801" and reason in err.value.message


def test_encode_refuses_broken_text_and_non_canonical_sharing() -> None:
    with pytest.raises(SearchError, match="does not check"):
        encode("model M( {", _gqa_space())
    space = _gqa_space()
    g = repair(Genome(tuple(SlotGene(0, 0, 1, s, 0, (0,)) for s in range(4))), space)
    text = decode(g, space).replace(
        "from layers[0][0] to layers[1][0], layers[2][0], layers[3][0]",
        "from layers[1][0] to layers[0][0], layers[2][0], layers[3][0]",
    )
    with pytest.raises(SearchError, match="not canonical"):
        encode(text, space)


# ---- variation and pymoo ----------------------------------------------------------------------


@FAST
@given(space_and_genome(), space_and_genome(), st.integers(0, 2**32 - 1))
def test_variation_maps_valid_to_valid(a: tuple[SearchSpace, Genome], b: tuple, seed: int) -> None:
    space, g = a
    rng = np.random.default_rng(seed)
    other = random_genome(space, rng)
    children = [mutate(g, space, rng, rate=0.5, hyper_rate=0.5), *crossover(g, other, space, rng, points=3)]
    children += list(crossover(g, other, space, rng, whole_slots=False))
    for child in children:
        assert repair(child, space) == child
    _assert_checks(decode(children[int(rng.integers(len(children)))], space))


def test_space_validation() -> None:
    for bad in (
        {"slots": 3, "per_layer": 2},
        {"pattern": ("Nope",)},
        {"layout": "post_norm"},
        {"width": 0},
        {"sharing": {"weights": True}},
        {"width": 33},
    ):
        with pytest.raises(ValueError):
            SearchSpace(**bad)
    space = SearchSpace(width=32, pattern=[["SA-1", "SWA"], "GMemless"], sharing={"features": False})
    assert space.pattern == (("SA-1", "SWA"), ("GMemless",)) and space.sharing == Sharing(True, False)
    assert [space.classes[i].name for i in space.allowed(1)] == ["GMemless"]


def _problem(space: SearchSpace):  # noqa: ANN202
    from pymoo.core.problem import Problem

    xl, xu = bounds(space)
    return Problem(n_var=n_var(space), n_obj=2, xl=xl, xu=xu, vtype=int)


def _nsga(space: SearchSpace, seeds: tuple[Genome, ...]):  # noqa: ANN202
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.termination import NoTermination

    algorithm = NSGA2(
        pop_size=6,
        sampling=GenomeSampling(space, seeds),
        crossover=GenomeCrossover(space),
        mutation=GenomeMutation(space),
        repair=GenomeRepair(space),
        eliminate_duplicates=True,
    )
    algorithm.setup(_problem(space), termination=NoTermination(), seed=5)
    return algorithm


def _generation(algorithm, space: SearchSpace) -> np.ndarray:  # noqa: ANN001
    from pymoo.problems.static import StaticProblem

    pop = algorithm.ask()
    X = pop.get("X")  # noqa: N806
    F = np.array([[float(x.sum()), -float(x[0])] for x in X])  # noqa: N806
    algorithm.evaluator.eval(StaticProblem(_problem(space), F=F), pop)
    algorithm.tell(infills=pop)
    return X


def test_pymoo_ask_tell_with_seeds_and_pickled_resume() -> None:
    space = SearchSpace(width=32, slots=4, per_layer=2, pattern=("*", "GMemless"))
    seed = repair(Genome(tuple(SlotGene(0, s, 0, s, 0, (0,)) for s in range(4))), space)
    a = _nsga(space, (seed, seed))
    first = _generation(a, space)
    assert tuple(first[0]) == to_vector(seed, space)
    saved = pickle.dumps(a)
    for X in (_generation(a, space), _generation(a, space)):  # noqa: N806
        assert len({tuple(x) for x in X}) == len(X)
        for x in X:
            assert to_vector(repair(from_vector(x, space), space), space) == tuple(x)
    b = pickle.loads(saved)
    assert (_generation(b, space) == _generation(pickle.loads(saved), space)).all()
    assert (_generation(b, space) != first).any()


# ---- PyTorch --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", POOL_NAMES)
def test_pool_classes_run_in_pytorch_with_sharing(name: str, tmp_path: Path) -> None:
    """Each class, 3 slots all in one featurizer group (and feature group where legal): the generated
    module has the static parameter and cache counts, and prefill + decode steps = the parallel forward."""
    import torch

    import livc
    from livc.compiler.analysis.costs import analyze
    from livc.compiler.analysis.evaluate import Context, report_numbers

    op = next(c for c in default_pool(16) if c.name == name)
    space = SearchSpace(width=16, slots=3, vocab=32, classes=(op,))
    g = repair(Genome(tuple(SlotGene(0, 0, 1, 0, 1, (1,) * len(op.hypers)) for _ in range(3))), space)
    text = decode(g, space)
    assert ("share featurizer" in text) == op.featurizer
    assert ("share features" in text) == bool(op.fg_strategies)
    (tmp_path / "c.liv").write_text(text)
    built = livc.compile(tmp_path / "c.liv")
    model = built.model_class().eval()
    report = analyze(built.ir)
    assert sum(p.numel() for p in model.parameters()) == report.params
    cache = model.init_cache(1, 12)
    allocated = sum(t.numel() * t.element_size() for k, t in cache.items() if k != "pos")
    assert allocated == report_numbers(report, Context(batch=1, seq=12)).cache_alloc_bytes
    ids = torch.randint(0, 32, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(ids).logits
        diff = (model.prefill(ids[:, :7], cache) - full[:, :7]).abs().max().item()
        for t in range(7, 12):
            diff = max(diff, (model.decode_step(ids[:, t : t + 1], cache)[:, 0] - full[:, t]).abs().max().item())
    assert torch.isfinite(full).all() and diff < 1e-4, (name, diff)
