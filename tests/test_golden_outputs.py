"""Golden files for text-shaped outputs: generated PyTorch code and IR dumps at every stage.

A change in codegen or in a pass shows up here as a reviewable diff; accept it with
`pytest tests/test_golden_outputs.py --update-golden`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import GOLDEN, assert_golden

from livc.backends.pytorch.generate import generate
from livc.compiler.ir.text import print_model
from livc.compiler.pipeline import STAGE_NAMES, compile_path

SOURCE = GOLDEN / "tiny_hybrid.liv"


def _compiled(stage: str, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN202
    monkeypatch.chdir(GOLDEN)
    result = compile_path(Path(SOURCE.name), stop_after=stage, verify=True)
    assert result.ok, result.diagnostics
    return result.models[0]


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_ir_dump(stage: str, update_golden: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    text = print_model(_compiled(stage, monkeypatch))
    assert_golden(GOLDEN / "ir" / f"tiny_hybrid.{stage}.ir", text, update_golden)


def test_generated_pytorch_module(update_golden: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _compiled("canonicalize", monkeypatch)
    code = generate(model, SOURCE.name, SOURCE.read_text(encoding="utf-8"))
    assert_golden(GOLDEN / "codegen" / "tiny_hybrid.py", code, update_golden)
