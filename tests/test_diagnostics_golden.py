"""Every diagnostic code has a failing example whose rendered output is a golden file.

Cases live in tests/golden/diagnostics: `CODE.liv` (single file) or `CODE/main.liv` (several
files). Each must report its own code first; the text and JSON renderings are compared with
`CODE.txt` / `CODE.json`. A warning's case (`W....`) reports warnings only: it checks cleanly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import GOLDEN, assert_golden

from livc.compiler.check import check_path
from livc.compiler.pipeline import analyze_checked
from livc.dsl.codes import CODES
from livc.dsl.render import render_all_text, render_json

CASES = GOLDEN / "diagnostics"


def _case_file(code: str) -> Path:
    single = CASES / f"{code}.liv"
    return single if single.exists() else CASES / code / "main.liv"


def _codes_with_cases() -> list[str]:
    cases = [p for pattern in ("E*", "W*") for p in CASES.glob(pattern)]
    return sorted(p.stem for p in cases if p.suffix == ".liv") + sorted(p.name for p in cases if p.is_dir())


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_code_has_a_golden_case(code: str) -> None:
    assert _case_file(code).exists(), f"no failing example for {code} in {CASES}"


@pytest.mark.parametrize("code", _codes_with_cases())
def test_golden_rendering(code: str, update_golden: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    case = _case_file(code)
    monkeypatch.chdir(case.parent)
    result = analyze_checked(check_path(Path(case.name)))
    assert result.diagnostics, f"{case} produced no diagnostics"
    assert result.diagnostics[0].code == code, [d.code for d in result.diagnostics]
    assert result.ok or not code.startswith("W"), "a warning's case must have no errors"
    text = render_all_text(result.diagnostics)
    assert_golden(CASES / f"{code}.txt", text, update_golden)
    assert_golden(CASES / f"{code}.json", render_json(result.diagnostics), update_golden)
    assert json.loads(render_json(result.diagnostics))["diagnostics"][0]["code"] == code
