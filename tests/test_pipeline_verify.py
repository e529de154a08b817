"""The pipeline runs the IR verifier after every stage; a violated invariant is an `InternalError`."""

from __future__ import annotations

import dataclasses

import pytest

from livc.compiler.ir.nodes import Model
from livc.compiler.pipeline import InternalError, compile_source, run_stages
from livc.dsl.diagnostics import DiagnosticSink

TEXT = """from std.norms import RMSNorm
from std.embedding import Embedding, LMHead
op Mix(d: int) {
    w = linear(x, d)
    w = linear(w, d)
    return w
}
model M(vocab: int = 11, d: int = 8) {
    embedding: Embedding(vocab, d)
    norm: RMSNorm(d)
    layers: [Mix(d)]
    head: LMHead(vocab, d)
}
"""


def _duplicated(model: Model) -> Model:
    """`model` with the second value of layers[0][0] renamed to the first (a value defined twice)."""
    sub = model.layers[0].sublayers[0]
    ops = sub.block.ops
    twice = dataclasses.replace(ops[1], outputs=(dataclasses.replace(ops[1].outputs[0], name=ops[0].outputs[0].name),))
    section = dataclasses.replace(sub.block.sections[0], ops=(ops[0], twice, *ops[2:]))
    block = dataclasses.replace(sub.block, sections=(section,), output=ops[0].outputs[0].name)
    layer = dataclasses.replace(model.layers[0], sublayers=(dataclasses.replace(sub, block=block),))
    return dataclasses.replace(model, layers=(layer,))


def test_every_compile_verifies() -> None:
    result = compile_source(TEXT, "m.liv", stop_after="lower")
    assert result.ok
    with pytest.raises(InternalError) as caught:
        run_stages(_duplicated(result.models[0]), DiagnosticSink())
    err = caught.value
    assert (err.model, err.stage) == ("M", "build")
    assert any("defines %w twice" in p for p in err.problems)
    assert "IR verifier failed for model M after stage 'build':\n  - layers[0][0] Mix" in str(err)


def test_verify_false_skips_the_verifier() -> None:
    model = compile_source(TEXT, "m.liv", stop_after="build").models[0]
    assert run_stages(_duplicated(model), DiagnosticSink(), stop_after="build", verify=False) is not None


def test_many_problems_are_listed_with_a_count() -> None:
    err = InternalError("M", "lower", tuple(f"problem {i}" for i in range(25)))
    assert str(err).count("\n  - ") == 20 and str(err).endswith("... and 5 more")
