"""The IR passes: build, expand (sharing, MoR), canonicalize and lower, on small models."""

from __future__ import annotations

from livc.compiler.analysis.costs import analyze
from livc.compiler.ir.nodes import Model, Role
from livc.compiler.passes import canonicalize, lower
from livc.compiler.passes.build import mor_steps
from livc.compiler.pipeline import compile_source

HEADER = """from std.attention import GQA
from std.conv import GatedShortConv
from std.mlp import SwiGLU
from std.norms import RMSNorm
from std.embedding import Embedding, LMHead
"""


def compile_model(body: str, stage: str = "lower") -> Model:
    text = f"""{HEADER}
model M(d: int = 32) {{
{body}
    embedding: Embedding(50, d)
    norm: RMSNorm(d)
    final_norm: RMSNorm(d)
    head: LMHead(50, d)
}}
"""
    result = compile_source(text, "m.liv", stop_after=stage)
    assert result.ok, result.diagnostics
    return result.models[0]


ATTN = "GQA(d, heads = 4, kv_heads = 2) + SwiGLU(d, 64)"


def _param_ids(model: Model, layer: int, sub: int = 0) -> list[str]:
    return [pid for op in model.layers[layer].sublayers[sub].block.ops for _, pid in op.params]


def test_build_gives_every_sublayer_its_own_parameters() -> None:
    m = compile_model(f"    layers: 2 * [{ATTN}]\n", "build")
    assert all(pid.startswith("layers.1.0.") for pid in _param_ids(m, 1))
    assert len({p.id for p in m.params}) == len(m.params)


def test_share_weights_ties_every_parameter() -> None:
    m = compile_model(f"    layers: 3 * [{ATTN}]\n    share weights from layers[0] to layers[2]\n", "expand")
    assert _param_ids(m, 2) == _param_ids(m, 0) and _param_ids(m, 2, 1) == _param_ids(m, 0, 1)
    unshared = compile_model(f"    layers: 3 * [{ATTN}]\n", "expand")
    per_layer = sum(p.numel for p in unshared.params if p.id.startswith("layers.2."))
    assert sum(p.numel for p in unshared.params) - sum(p.numel for p in m.params) == per_layer


def test_share_featurizer_ties_only_featurizer_parameters() -> None:
    body = (
        "    layers: 2 * [GatedShortConv(d) + SwiGLU(d, 64)]\n    share featurizer from layers[0][0] to layers[1][0]\n"
    )
    m = compile_model(body, "expand")
    block = m.layers[1].sublayers[0].block
    featurizer = [pid for s in block.sections if s.role is Role.FEATURIZER for op in s.ops for _, pid in op.params]
    others = [pid for s in block.sections if s.role is not Role.FEATURIZER for op in s.ops for _, pid in op.params]
    assert featurizer and all(pid.startswith("layers.0.0.") for pid in featurizer)
    assert others and all(pid.startswith("layers.1.0.") for pid in others)


def test_share_features_imports_kv_and_moves_the_cache() -> None:
    body = f"    layers: 2 * [{ATTN}]\n    share features k, v from layers[0][0] to layers[1][0]\n"
    m = compile_model(body, "expand")
    block = m.layers[1].sublayers[0].block
    shared = [op for op in block.ops if op.prim == "shared_feature"]
    assert [op.attr("source") for op in shared] == ["layers[0][0].k", "layers[0][0].v"]
    assert not any(pid.endswith(("k_proj.weight", "v_proj.weight")) for pid in _param_ids(m, 1))
    attention = next(op for op in block.ops if op.prim == "attention")
    assert attention.attr("cache_owner") == "layers[0][0]"
    plain = compile_model(f"    layers: 2 * [{ATTN}]\n")
    assert analyze(m).total.cache_min.evaluate(L=100) * 2 == analyze(plain).total.cache_min.evaluate(L=100)


def test_features_must_flow_forward() -> None:
    text = f"""{HEADER}
model M(d: int = 32) {{
    layers: 2 * [{ATTN}]
    share features k, v from layers[1][0] to layers[0][0]
    embedding: Embedding(50, d)
    head: LMHead(50, d)
}}
"""
    result = compile_source(text, "m.liv")
    assert [d.code for d in result.diagnostics if d.code.startswith("E")] == ["E0314"]  # HEADER's imports: W0002


def test_mor_steps_for_every_sharing_scheme() -> None:
    assert mor_steps("cycle", 2, 4) == ((0, 1), (2, 3))
    assert mor_steps("sequence", 2, 4) == ((0, 2), (1, 3))
    assert mor_steps("middle_cycle", 3, 8) == ((1, 2), (3, 4), (5, 6))
    assert mor_steps("middle_sequence", 3, 8) == ((1, 4), (2, 5), (3, 6))


def test_mor_shares_weights_and_adds_routers() -> None:
    body = (
        f"    layers: 8 * [{ATTN}]\n    recursion: mor(recursions = 3, sharing = middle_cycle, "
        "router = expert_choice(), kv = recursion_wise)\n"
    )
    m = compile_model(body, "expand")
    assert m.recursion is not None and m.recursion.steps == ((1, 2), (3, 4), (5, 6))
    assert _param_ids(m, 3) == _param_ids(m, 1) and _param_ids(m, 6) == _param_ids(m, 2)
    assert m.recursion.router_params == tuple(f"recursion.router.{r}.weight" for r in range(3))
    assert m.recursion.capacities == (1.0, 2 / 3, 1 / 3)


def test_canonicalize_removes_identity_repeats_and_is_idempotent() -> None:
    m = compile_model("    layers: [GQA(d, heads = 4) + SwiGLU(d, 64)]\n", "canonicalize")
    assert not any(op.prim == "repeat_heads" for op in m.layers[0].sublayers[0].block.ops)
    assert canonicalize.run(m) == m


def test_lower_flattens_sections_keeps_structure_and_is_idempotent() -> None:
    m = compile_model(f"    layers: [{ATTN}]\n", "lower")
    block = m.layers[0].sublayers[0].block
    assert [s.role for s in block.sections] == [Role.BODY]
    attention = next(op for op in block.ops if op.prim == "attention")
    assert (attention.attr("structure"), attention.attr("nonlinearity")) == ("low_rank", "softmax")
    assert lower.run(m) == m


def test_costs_are_the_same_after_expand_canonicalize_and_lower() -> None:
    body = f"    layers: 3 * [{ATTN}]\n    share features k, v from layers[0][0] to layers[2][0]\n"
    reports = [analyze(compile_model(body, stage)).total for stage in ("expand", "canonicalize", "lower")]
    assert reports[0] == reports[1] == reports[2]
