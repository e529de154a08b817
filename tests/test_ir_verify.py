"""The IR verifier (`livc.compiler.ir.verify`): accepts every example at every stage, and catches
hand-made corruptions of a valid model, each with a located message.

Corruptions are made with `dataclasses.replace` on LFM2-350M after `canonicalize` (sections still
visible: layer 0 is GatedShortConv + SwiGLU, layer 2 is GQA + SwiGLU), on StarShared after `build`
(sharing declarations not yet applied) and on MoR-360M after `expand` (recursion with routers).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

from livc.compiler.ir.nodes import Block, Model, Op, Param, Role, TensorType, Value
from livc.compiler.ir.verify import verify
from livc.compiler.pipeline import IR_STAGES, STAGE_NAMES, compile_path
from livc.dsl.diagnostics import DiagnosticSink

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.liv"))


@cache
def staged(path: Path) -> dict[str, tuple[Model, ...]]:
    """Every model of an example after each IR stage (one front-end run per file)."""
    compiled = compile_path(path, stop_after="build")
    assert compiled.ok and compiled.models, compiled.diagnostics
    models = {"build": compiled.models}
    for name, stage in IR_STAGES:
        previous = models[STAGE_NAMES[STAGE_NAMES.index(name) - 1]]
        models[name] = tuple(stage(m, DiagnosticSink()) for m in previous)
    return models


def example(name: str, stage: str) -> Model:
    return staged(ROOT / "examples" / f"{name}.liv")[stage][0]


@pytest.mark.parametrize("stage", STAGE_NAMES)
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_verify_at_every_stage(path: Path, stage: str) -> None:
    for model in staged(path)[stage]:
        assert verify(model, stage=stage) == []
        assert verify(model) == []


def test_pipeline_verify_flag_runs_clean() -> None:
    assert compile_path(ROOT / "examples" / "star_shared.liv", stop_after="lower", verify=True).ok


# ---- helpers for corruptions -------------------------------------------------------------------

LFM2 = ("lfm2_350m", "canonicalize")
CONV, ATTN = (0, 0), (2, 0)  # layers[0][0] GatedShortConv, layers[2][0] GQA


def edit_block(model: Model, at: tuple[int, int], fn: Callable[[Block], Block]) -> Model:
    i, j = at
    sub = model.layers[i].sublayers[j]
    subs = list(model.layers[i].sublayers)
    subs[j] = dataclasses.replace(sub, block=fn(sub.block))
    layers = list(model.layers)
    layers[i] = dataclasses.replace(model.layers[i], sublayers=tuple(subs))
    return dataclasses.replace(model, layers=tuple(layers))


def edit_op(model: Model, at: tuple[int, int], prim: str, fn: Callable[[Op], Op]) -> Model:
    """Apply `fn` to the first op with primitive `prim` in the block at `at`."""

    def on_block(block: Block) -> Block:
        index = next(k for k, op in enumerate(block.ops) if op.prim == prim)
        return set_op(block, index, fn(block.ops[index]))

    return edit_block(model, at, on_block)


def set_op(block: Block, index: int, op: Op) -> Block:
    sections, seen = [], 0
    for s in block.sections:
        ops = tuple(op if seen + k == index else o for k, o in enumerate(s.ops))
        sections.append(dataclasses.replace(s, ops=ops))
        seen += len(s.ops)
    return dataclasses.replace(block, sections=tuple(sections))


def op_index(model: Model, at: tuple[int, int], prim: str) -> int:
    return next(k for k, op in enumerate(model.layers[at[0]].sublayers[at[1]].block.ops) if op.prim == prim)


def problems(model: Model, stage: str | None = None) -> str:
    found = verify(model, stage=stage)
    assert found, "the verifier accepted a corrupted model"
    return "\n".join(found)


# ---- the five required corruptions -----------------------------------------------------------


def test_missing_param_is_reported() -> None:
    model = example(*LFM2)
    pid = "layers.2.0.q_proj.weight"
    broken = dataclasses.replace(model, params=tuple(p for p in model.params if p.id != pid))
    assert f"layers[2][0] GQA: op 0 (linear): parameter @{pid} (weight) is not in the parameter table" in problems(
        broken
    )


def test_undefined_value_is_reported() -> None:
    model = example(*LFM2)
    broken = edit_op(model, ATTN, "merge_heads", lambda op: dataclasses.replace(op, inputs=("nope",)))
    k = op_index(model, ATTN, "merge_heads")
    assert f"layers[2][0] GQA: op {k} (merge_heads): uses undefined value %nope" in problems(broken)


def test_use_before_definition_is_reported() -> None:
    model = example(*LFM2)
    broken = edit_op(model, ATTN, "linear", lambda op: dataclasses.replace(op, inputs=("y",)))
    assert "layers[2][0] GQA: op 0 (linear): uses undefined value %y" in problems(broken)


def test_wrong_output_type_is_reported() -> None:
    model = example(*LFM2)
    bad = (Value(name="y", type=TensorType(shape=(16, 63))),)
    broken = edit_op(model, ATTN, "attention", lambda op: dataclasses.replace(op, outputs=bad))
    k = op_index(model, ATTN, "attention")
    assert f"layers[2][0] GQA: op {k} (attention): output %y is [16, 63] but the shape rule gives [16, 64]" in problems(
        broken
    )


def test_duplicate_value_is_reported() -> None:
    model = example(*LFM2)
    dup = (Value(name="q_proj", type=TensorType(shape=(512,))),)
    broken = edit_block(model, ATTN, lambda b: set_op(b, 1, dataclasses.replace(b.ops[1], outputs=dup)))
    assert "layers[2][0] GQA: op 1 (linear): defines %q_proj twice" in problems(broken)


def test_token_mixer_in_featurizer_is_reported() -> None:
    model = example(*LFM2)

    def to_featurizer(block: Block) -> Block:
        sections = tuple(
            dataclasses.replace(s, role=Role.FEATURIZER) if s.role is Role.TOKEN_MIX else s for s in block.sections
        )
        return dataclasses.replace(block, sections=sections)

    k = op_index(model, ATTN, "attention")
    assert f"layers[2][0] GQA: op {k} (attention): attention mixes tokens but sits in a featurizer section" in problems(
        edit_block(model, ATTN, to_featurizer)
    )


# ---- more corruptions --------------------------------------------------------------------------


def test_unused_and_duplicate_params_are_reported() -> None:
    model = example(*LFM2)
    extra = (Param(id="orphan", shape=(3,)), model.params[0])
    found = problems(dataclasses.replace(model, params=model.params + extra))
    assert "params: @orphan is not used by any op" in found
    assert f"params: @{model.params[0].id} is declared 2 times" in found


def test_wrong_param_shape_is_reported() -> None:
    model = example(*LFM2)
    params = tuple(
        dataclasses.replace(p, shape=(3072, 1000)) if p.id == "layers.0.0.in_proj.weight" else p for p in model.params
    )
    assert (
        "layers[0][0] GatedShortConv: op 0 (linear): parameter @layers.0.0.in_proj.weight (weight) is "
        "[3072, 1000] but the shape rule gives [3072, 1024]"
    ) in problems(dataclasses.replace(model, params=params))


def test_param_roles_are_checked() -> None:
    model = example(*LFM2)
    broken = edit_op(model, CONV, "causal_conv", lambda op: dataclasses.replace(op, params=()))
    assert "(causal_conv): has no parameter for role 'weight'" in problems(broken)


def test_unknown_primitive_is_reported() -> None:
    broken = edit_op(example(*LFM2), CONV, "causal_conv", lambda op: dataclasses.replace(op, prim="frobnicate"))
    assert "op 3 (frobnicate): unknown primitive 'frobnicate'" in problems(broken)


def test_shape_rule_rejection_is_reported() -> None:
    broken = edit_op(example(*LFM2), CONV, "split", lambda op: dataclasses.replace(op, attrs=(("parts", 5),)))
    assert "(split): the shape rule rejects its inputs: cannot split 3072 channels into 5 equal groups" in problems(
        broken
    )


def test_missing_attr_is_reported() -> None:
    broken = edit_op(example(*LFM2), CONV, "linear", lambda op: dataclasses.replace(op, attrs=()))
    assert "(linear): the shape rule cannot run on these attrs: KeyError" in problems(broken)


def test_scalar_operands_of_operators_are_attrs() -> None:
    model = example(*LFM2)
    scaled = edit_op(
        model, CONV, "mul", lambda op: dataclasses.replace(op, inputs=op.inputs[:1], attrs=(("right", 2.0),))
    )
    assert verify(scaled) == []
    broken = edit_op(model, CONV, "mul", lambda op: dataclasses.replace(op, attrs=(("right", 2.0),)))
    assert "(mul): takes 1 tensor inputs (left), got 2" in problems(broken)


def test_long_conv_keeps_its_type() -> None:
    model = example("striped_hyena2", "lower")
    at = next(
        (i, j)
        for i, layer in enumerate(model.layers)
        for j, s in enumerate(layer.sublayers)
        if any(op.prim == "long_conv" for op in s.block.ops)
    )

    def bad(op: Op) -> Op:
        return dataclasses.replace(op, outputs=(dataclasses.replace(op.outputs[0], type=TensorType(shape=(1,))),))

    assert "but long_conv keeps its input type" in problems(edit_op(model, at, "long_conv", bad))


def test_shared_feature_takes_no_inputs() -> None:
    model = example("star_shared", "expand")
    at = next(
        (i, j)
        for i, layer in enumerate(model.layers)
        for j, s in enumerate(layer.sublayers)
        if any(op.prim == "shared_feature" for op in s.block.ops)
    )
    broken = edit_op(model, at, "shared_feature", lambda op: dataclasses.replace(op, inputs=("x",)))
    assert "(shared_feature): shared_feature takes no inputs" in problems(broken)


def test_shared_feature_sources_are_checked() -> None:
    model = example("star_shared", "expand")
    at = next(
        (i, j)
        for i, layer in enumerate(model.layers)
        for j, s in enumerate(layer.sublayers)
        if any(op.prim == "shared_feature" for op in s.block.ops)
    )
    source = next(
        op.attr("source") for op in model.layers[at[0]].sublayers[at[1]].block.ops if op.prim == "shared_feature"
    )
    assert isinstance(source, str)
    ghost = source.rsplit(".", 1)[0] + ".ghost"
    moved = edit_op(model, at, "shared_feature", lambda op: dataclasses.replace(op, attrs=(("source", ghost),)))
    assert f"(shared_feature): source {ghost}: that block has no feature group 'ghost'" in problems(moved)
    wider = edit_op(
        model,
        at,
        "shared_feature",
        lambda op: dataclasses.replace(
            op, outputs=(dataclasses.replace(op.outputs[0], type=TensorType(shape=(1, 2))),)
        ),
    )
    assert f"(shared_feature): imports ([1, 2]) but {source} is" in problems(wider)


def test_undefined_block_output_and_feature_are_reported() -> None:
    model = example(*LFM2)
    feature = Value(name="k=ghost", type=TensorType(shape=(8, 64)))
    broken = edit_block(model, ATTN, lambda b: dataclasses.replace(b, output="gone", features=b.features + (feature,)))
    found = problems(broken)
    assert "layers[2][0] GQA: output %gone is not defined" in found
    assert "layers[2][0] GQA: feature k names undefined value %ghost" in found


def test_widths_are_checked() -> None:
    model = example(*LFM2)
    found = problems(dataclasses.replace(model, vocab=model.vocab + 1))
    assert "head LMHead: maps [1024] -> [65536], expected [1024] -> [65537]" in found


def test_lowered_models_have_only_body_sections() -> None:
    found = problems(example(*LFM2), stage="lower")
    assert "layers[0][0] GatedShortConv: section 0 is featurizer, but lowered blocks have only body sections" in found


def test_shares_must_be_gone_after_expand() -> None:
    model = example("star_shared", "build")
    assert verify(model, stage="build") == []
    assert "shares: 5 sharing declarations remain after expand" in problems(model, stage="expand")


def test_share_locations_are_checked() -> None:
    model = example("star_shared", "build")
    share = dataclasses.replace(model.shares[0], targets=((40, 0),))
    assert "shares[0]: layers[40][0] is not a sublayer of this model" in problems(
        dataclasses.replace(model, shares=(share,) + model.shares[1:])
    )


def test_recursion_steps_are_checked() -> None:
    model = example("mor_360m", "expand")
    rec = model.recursion
    assert rec is not None and verify(model, stage="expand") == []
    overlapping = dataclasses.replace(rec, steps=(rec.steps[0], rec.steps[0], rec.steps[2][:-1] + (99,)))
    found = problems(dataclasses.replace(model, recursion=overlapping))
    assert "recursion: layer 1 is in 2 steps" in found
    assert "recursion: step 2 names layer 99, but the model has 32 layers" in found
    uneven = dataclasses.replace(rec, steps=(rec.steps[0], rec.steps[1], rec.steps[2][:-1]))
    found = problems(dataclasses.replace(model, recursion=uneven))
    assert "recursion: steps have different lengths [10, 10, 9]" in found


def test_router_params_are_kept_and_must_exist() -> None:
    model = example("mor_360m", "expand")
    rec = model.recursion
    assert rec is not None and rec.router_params
    found = problems(dataclasses.replace(model, recursion=dataclasses.replace(rec, router_params=("r.missing",))))
    assert "recursion: router parameter @r.missing is not in the parameter table" in found
    assert f"params: @{rec.router_params[0]} is not used by any op" in found


def test_layer_indices_are_checked() -> None:
    model = example(*LFM2)
    layers = (dataclasses.replace(model.layers[0], index=7),) + model.layers[1:]
    assert "layers[0]: has index 7" in problems(dataclasses.replace(model, layers=layers))


def test_unknown_stage_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        verify(example(*LFM2), stage="optimize")
