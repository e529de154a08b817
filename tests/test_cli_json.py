"""`--format json` documents match docs/cli.md's schema; MoR costs render as text and JSON; budgets show margins."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from livc.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MOR = [EXAMPLES / "mor_360m.liv", EXAMPLES / "mor_kvshare.liv"]
TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
    "object": dict,
    "array": list,
}


def documented_schema() -> dict[str, Any]:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- livc-json-schema -->\n```json\n(.*?)\n```", text, re.DOTALL)
    assert block is not None, "docs/cli.md lost its schema block"
    return json.loads(block[1])


def _type_ok(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, TYPES[name])


def validate(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "$") -> None:
    """The JSON Schema subset docs/cli.md uses: $ref, type, enum, required, properties, items, additionalProperties."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        assert any(_type_ok(value, t) for t in names), f"{where}: {value!r} is not {types}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            assert key in value, f"{where}: missing '{key}'"
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                validate(item, props[key], root, f"{where}.{key}")
            elif isinstance(extra, dict):
                validate(item, extra, root, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            validate(item, schema["items"], root, f"{where}[{i}]")


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main([*argv, "--format", "json"])
    out = capsys.readouterr().out
    doc = json.loads(out)  # exactly one document
    validate(doc, documented_schema(), documented_schema())
    return code, doc


def test_validator_rejects_wrong_shapes() -> None:
    schema = documented_schema()
    with pytest.raises(AssertionError):
        validate({"livc": "0", "schema": 1}, schema, schema)
    with pytest.raises(AssertionError):
        validate({"code": "E1", "severity": "fatal"}, schema["$defs"]["diagnostic"], schema)


@pytest.mark.parametrize("command", ["check", "cost"])
def test_every_example_matches_the_schema(capsys: pytest.CaptureFixture[str], command: str) -> None:
    files = sorted(map(str, EXAMPLES.glob("*.liv")))
    code, doc = run_json(capsys, command, *files)
    assert code == 0 and doc["ok"] and doc["command"] == command
    assert [f["file"] for f in doc["files"]] == files
    assert all(len(f["models"]) == 1 for f in doc["files"])
    assert all(("rows" in m) == (command == "cost") for f in doc["files"] for m in f["models"])


def test_check_json_reports_params_costs_and_budgets(capsys: pytest.CaptureFixture[str]) -> None:
    lfm2 = str(EXAMPLES / "lfm2_350m.liv")
    code, doc = run_json(capsys, "check", lfm2, "--seq", "32K", "--batch", "2", "--budget", "params<=355M")
    (model,) = doc["files"][0]["models"]
    assert code == 0 and model["params"] == 354_483_968
    assert model["context"] == {"batch": 2, "seq": 32768, "dtype": None}
    cache = model["total"]["cache_min_bytes"]
    assert isinstance(cache, int) and cache == 2 * 2 * (6144 * 32768 + 20480)
    assert [b["source"] for b in model["budgets"]] == [lfm2] * 4 + ["<command line>"]
    cli = [b for b in model["budgets"] if b["source"] == "<command line>"]
    assert cli == [
        {
            "metric": "params",
            "args": {},
            "op": "<=",
            "limit": 355_000_000,
            "value": 354_483_968,
            "margin": 516_032,
            "ok": True,
            "source": "<command line>",
        }
    ]


def test_cost_json_polynomials_are_structured(capsys: pytest.CaptureFixture[str]) -> None:
    _, doc = run_json(capsys, "cost", str(EXAMPLES / "lfm2_350m.liv"))
    prefill = doc["files"][0]["models"][0]["total"]["symbolic"]["prefill_flops"]
    terms = {tuple((f["atom"]["var"], f["power"]) for f in t["monomial"]): t["coeff"] for t in prefill["terms"]}
    assert terms == {(("L", 2),): 12288, (("L", 1),): 709_311_488}
    _, doc = run_json(capsys, "cost", str(EXAMPLES / "striped_hyena2.liv"))
    sym = doc["files"][0]["models"][0]["total"]["symbolic"]["prefill_flops"]
    assert {"kind": "log2x", "var": "L"} in [f["atom"] for t in sym["terms"] for f in t["monomial"]]


@pytest.mark.parametrize("path", MOR, ids=lambda p: p.stem)
def test_mor_cost_text_and_json(capsys: pytest.CaptureFixture[str], path: Path) -> None:
    """Regression: Fraction capacities crashed `{:.3g}` formatting and json.dumps (exit 70)."""
    code = main(["cost", str(path)])
    out, err = capsys.readouterr()
    assert code == 0 and "internal compiler error" not in err
    assert re.search(r" x(\d+/\d+|0\.\d+)", out)
    code, doc = run_json(capsys, "cost", str(path))
    rows = doc["files"][0]["models"][0]["rows"]
    partial = [r["capacity"] for r in rows if r["capacity"]["value"] != 1]
    assert code == 0 and partial
    assert all(Fraction(*c["exact"]) == Fraction(c["value"]).limit_denominator(10**6) for c in partial if "exact" in c)


def test_errors_are_in_the_one_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.liv"
    bad.write_text("let a = undefined\n")
    for command in ("check", "cost", "ir"):
        code, doc = run_json(capsys, command, str(bad))
        assert code == 1 and not doc["ok"] and doc["summary"]["errors"] == 1
        assert doc["diagnostics"][0]["code"] == "E0201" and doc["files"][0]["models"] == []


def test_usage_errors_still_print_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run_json(capsys, "cost", str(EXAMPLES / "lfm2_350m.liv"), "--seq", "2.5K")
    assert code == 2 and not doc["ok"] and "--seq" in doc["usage_error"]


def test_budget_margins_in_text(capsys: pytest.CaptureFixture[str]) -> None:
    lfm2 = str(EXAMPLES / "lfm2_350m.liv")
    assert main(["check", lfm2, "--budget", "params<=355M"]) == 0
    out = capsys.readouterr().out
    assert "budget params <= 355,000,000: 354,483,968 (margin 516,032) ok" in out
    assert main(["cost", lfm2, "--budget", "cache@32K<=1GiB"]) == 0
    assert "budget cache @ seq 32,768 <= 1.00 GiB" in capsys.readouterr().out
