"""The `livc` command line: exit codes, output formats, atomic formatting, no tracebacks."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from livc.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_examples_ok(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", *map(str, sorted(EXAMPLES.glob("*.liv"))))
    assert code == 0, err
    assert out.count(": ok: model") == len(list(EXAMPLES.glob("*.liv")))


def test_check_reports_errors_with_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.liv"
    bad.write_text("let a = undefined\n")
    code, _, err = run(capsys, "check", str(bad))
    assert code == 1
    assert "error[E0201]" in err and f"{bad}:1:9" in err and "^^^^^^^^^" in err


def test_check_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.liv"
    bad.write_text("let a = 1 // 0\n")
    code, out, _ = run(capsys, "check", "--format", "json", str(bad))
    data = json.loads(out)
    assert code == 1 and data["diagnostics"][0]["code"] == "E0303"
    assert data["diagnostics"][0]["primary"]["start"] == {"offset": 8, "line": 1, "column": 9}


def test_missing_file_is_a_diagnostic_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "check", "/nonexistent/model.liv")
    assert code == 1 and "E0109" in err and "Traceback" not in err


def test_fmt_check_and_in_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.liv"
    path.write_text("let   a=1+2 # c\n")
    path.chmod(0o644)
    assert run(capsys, "fmt", "--check", str(path))[0] == 1
    assert path.read_text() == "let   a=1+2 # c\n"
    assert run(capsys, "fmt", str(path))[0] == 0
    assert path.read_text() == "let a = 1 + 2  # c\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert run(capsys, "fmt", "--check", str(path))[0] == 0
    assert not list(tmp_path.glob(".*tmp"))


def test_fmt_leaves_broken_files_untouched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.liv"
    path.write_text("let a = (\n")
    code, _, err = run(capsys, "fmt", str(path))
    assert code == 1 and "E0103" in err and path.read_text() == "let a = (\n"


def test_cost_json_and_compare(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cost", str(EXAMPLES / "lfm2_350m.liv"), "--format", "json", "--seq", "2K")
    data = json.loads(out)["files"][0]["models"][0]
    assert code == 0 and data["params"] == 354_483_968 and data["context"]["seq"] == 2048
    code, out, _ = run(
        capsys, "cost", "--compare", str(EXAMPLES / "lfm2_350m.liv"), str(EXAMPLES / "transformer_pp.liv")
    )
    assert code == 0 and "LFM2_350M" in out and "TransformerPP" in out


def test_cost_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "cache.png"
    code, _, _ = run(capsys, "cost", str(EXAMPLES / "lfm2_350m.liv"), "--plot", str(png), "--seq", "128:64K")
    assert code == 0 and png.read_bytes()[:4] == b"\x89PNG"


def test_command_line_budgets(capsys: pytest.CaptureFixture[str]) -> None:
    lfm2 = str(EXAMPLES / "lfm2_350m.liv")
    assert run(capsys, "check", lfm2, "--budget", "params<=355M")[0] == 0
    code, _, err = run(capsys, "check", lfm2, "--budget", "params<=354M", "--budget", "cache@32768<=64MiB")
    assert code == 1 and err.count("error[E0402]") == 2
    assert run(capsys, "check", lfm2, "--budget", "parms<=1")[0] == 2


def test_explain_and_demo(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "explain", "E0302")
    assert code == 0 and "require" in out
    code, out, _ = run(capsys, "demo")
    assert code == 0 and "LFM2_350M" in out and "354,483,968" in out
