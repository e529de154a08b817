"""README.md and docs/*.md cannot drift from what livc does.

- every complete ```liv block outside docs/language.md is a program that `livc check` accepts without
  errors (docs/language.md's blocks are parsed by tests/test_highlight.py; some show errors on purpose);
- a ```text block right after `<!-- output: livc ARGS -->` is exactly what `livc ARGS` prints (stdout, then
  stderr), run in-process from the repository root;
- a block after `<!-- output-lines: livc ARGS -->` lists lines that each appear in that output (an excerpt);
- every `livc ...` command line in a ```sh block parses with the real argument parser (stale flags fail).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from livc.cli import build_parser, main
from livc.compiler.check import check_source

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
FENCE = re.compile(r"^```(\S*)([^\n]*)\n(.*?)^```$", re.S | re.M)
MARKER = re.compile(r"<!--\s*(output|output-lines):\s*(livc[^>]*?)\s*-->\s*\n```\w*\n(.*?)^```$", re.S | re.M)


@dataclass(frozen=True)
class Block:
    doc: Path
    lang: str
    info: str
    text: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks(lang: str) -> list[Block]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            if m[1] == lang:
                found.append(Block(doc, m[1], m[2].strip(), m[3], text.count("\n", 0, m.start()) + 1))
    return found


def markers() -> list[tuple[str, str, str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in MARKER.finditer(text):
            where = f"{doc.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
            found.append((where, m[1], m[2], m[3]))
    return found


def run_cli(command: str) -> str:
    argv = shlex.split(command)[1:]
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(argv)
    finally:
        os.chdir(cwd)
    return out.getvalue() + err.getvalue()


PROGRAMS = [b for b in blocks("liv") if b.doc.name != "language.md" and not b.info]


@pytest.mark.parametrize("block", PROGRAMS, ids=[b.where for b in PROGRAMS])
def test_liv_blocks_check(block: Block) -> None:
    result = check_source(block.text, block.where)
    errors = [d for d in result.diagnostics if d.severity.value == "error"]
    assert errors == [], f"{block.where}: the example does not check"


MARKED = markers()


def test_docs_have_marked_outputs() -> None:
    assert any(where.startswith("README.md") for where, *_ in MARKED), "README shows no tested output"


@pytest.mark.parametrize("where,kind,command,expected", MARKED, ids=[m[0] for m in MARKED])
def test_marked_outputs(where: str, kind: str, command: str, expected: str) -> None:
    output = run_cli(command)
    if kind == "output":
        assert output == expected, f"{where}: `{command}` prints something else now"
        return
    lines = output.splitlines()
    missing = [line for line in expected.splitlines() if line.strip() and line not in lines]
    assert missing == [], f"{where}: `{command}` no longer prints these lines"


def command_lines() -> list[tuple[str, str]]:
    found = []
    for block in blocks("sh"):
        for i, raw in enumerate(block.text.splitlines()):
            for part in re.split(r"\s*(?:&&|;|\|)\s*", raw.split("#", 1)[0]):
                if part.startswith("livc "):
                    found.append((f"{block.doc.relative_to(ROOT)}:{block.line + 1 + i}", part.strip()))
    return found


COMMANDS = command_lines()


@pytest.mark.parametrize("where,command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_documented_commands_parse(where: str, command: str) -> None:
    try:
        build_parser().parse_args(shlex.split(command)[1:])
    except SystemExit as exc:
        pytest.fail(f"{where}: `{command}` is rejected by the argument parser (exit {exc.code})")
