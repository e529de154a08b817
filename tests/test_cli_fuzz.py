"""A fuzz of the command line: argument combinations over every subcommand, flag and value, odd paths.

Each example runs `main(argv)` in-process with stdout/stderr captured and checks: the exit code is
0, 1 or 2 (never 70), no traceback or "internal compiler error" text, with `--format json` stdout is
one JSON document, and nothing outside the named outputs changes (every path lives in a temp dir,
the process runs in an empty cwd there). A few fixed hostile command lines run in a subprocess too.

Default CI: a few hundred examples (< 60 s). Longer run, one command:

    pytest -m slow tests/test_cli_fuzz.py        # LIVC_CLI_FUZZ_EXAMPLES (default 3000) examples
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livc.cli import main

VALID = """from std.embedding import Embedding, LMHead
from std.mlp import SwiGLU
from std.norms import RMSNorm

model Tiny(d: int = 32, n_layers: int = 2) {
    embedding: Embedding(64, d)
    layers: n_layers * [SwiGLU(d, 64)]
    head: LMHead(64, d)
    budget {
        params <= 1M
    }
}
"""
CONFIG = (
    '{"architectures": ["LlamaForCausalLM"], "vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 1,'
    ' "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 64}'
)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("cli_fuzz")
    (root / "cwd").mkdir()
    (root / "valid.liv").write_text(VALID)
    (root / "bad.liv").write_text("let a = undefined\nmodel M( {\n")
    (root / "odd name \u00e9\n\x1b[31m.liv").write_text(VALID)
    (root / "-dash.liv").write_text(VALID)
    (root / "config.json").write_text(CONFIG)
    (root / "notjson.json").write_text("{")
    (root / "adir").mkdir()
    os.mkfifo(root / "fifo")
    (root / "loop").symlink_to(root / "loop")
    (root / "link.liv").symlink_to(root / "valid.liv")
    cwd = os.getcwd()
    os.chdir(root / "cwd")
    try:
        yield root
    finally:
        os.chdir(cwd)


# (usual values, hostile values): a value is usual 3 times in 4, so most command lines get past parsing.
INPUTS = (["valid.liv", "link.liv", "-dash.liv", "odd name \u00e9\n\x1b[31m.liv"], ["bad.liv", "notjson.json"])
INPUTS[1].extend(["adir", "fifo", "loop", "missing.liv", "missing/dir.liv", "/dev/null", "", "\x00", "config.json"])
CONFIGS = (["config.json"], ["notjson.json", "valid.liv", "adir", "fifo", "loop", "missing.json", "/dev/zero"])
OUTPUTS = (["out.py", "out.liv", "/dev/null", "-", "link.liv", "odd\nname.py"], ["adir", "fifo", "loop", "missing/x"])
PLOTS = (["p.png", "p.svg", "p.pdf", "p.jpg", "p.PNG"], ["p.txt", "p", "-", "adir/p.png", "missing/p.png", "fifo"])
SEQS = (["4096", "2K", "32k", "1M", "128:64K", "1:1", "1G"], ["64K:128", "2.5K", "2KB", "2KiB", "0", "-1", "1e4", "x"])
SEQS[1].extend(["", "1" * 30, "1099511627777", "2:3:4"])
BATCHES = (["1", "8", "1_0"], ["0", "-3", "1.5", "x", "999999999999"])
BUDGETS = (["params<=1M", "params<=1", "cache@32K<=64MiB", "flops_per_token@4K<2G", "activations<=1GiB"], [])
BUDGETS[1].extend(["cache@2.5K<=1", "parms<=1", "params>=1", "<=", "x", "params<=1e400", "cache@0<=1"])
DEFINES = (["d=64", "n_layers=3", "Tiny.d=48", "n_layers=1"], ["d=0", "d=-1", "x=1", "d=", "=1", "d", "d=1e400"])
DEFINES[1].extend(["d=(", "a.b.c=1", "d=\x1b[31m", "n_layers=10**10", "d=true", "d=1.5"])
DTYPES = (["bf16", "f32", "f16", "int8"], ["fp64"])
FORMATS = (["text", "json"], ["xml"])
STAGES = (["build", "expand", "canonicalize", "lower"], ["nope"])
TARGETS = (["torch"], ["tvm"])
NAMES = (["M", "Tiny2"], ["1x", "", "torch", "a\nb"])
EXAMPLES_ = (["lfm2_350m", "star_shared"], ["../x", "nope"])
CODES = (["E0302", "e0201", "W0001"], ["E9999", "", "x"])
Pool = tuple[list[str], list[str]]


def value(pool: Pool) -> st.SearchStrategy[str]:
    usual, hostile = pool
    return st.integers(0, 3).flatmap(lambda i: st.sampled_from(usual if i < 3 or not hostile else hostile))


def _opt(flag: str, pool: Pool) -> st.SearchStrategy[list[str]]:
    return value(pool).map(lambda v: [flag, v])


ANALYSIS = [
    _opt("--seq", SEQS),
    _opt("--batch", BATCHES),
    _opt("--dtype", DTYPES),
    _opt("--budget", BUDGETS),
    _opt("-D", DEFINES),
    _opt("--format", FORMATS),
    st.just(["--deny-warnings"]),
]
OPTIONS = {
    "check": ANALYSIS,
    "cost": ANALYSIS + [st.just(["--compare"]), _opt("--plot", PLOTS)],
    "ir": [_opt("--stage", STAGES), st.just(["--verify"]), _opt("-D", DEFINES), _opt("--format", FORMATS)],
    "build": [_opt("-o", OUTPUTS), _opt("--target", TARGETS), _opt("-D", DEFINES), st.just(["--deny-warnings"])],
    "import-hf": [_opt("-o", OUTPUTS), _opt("--name", NAMES)],
    "fmt": [st.just(["--check"]), _opt("--format", FORMATS)],
    "explain": [_opt("--format", FORMATS)],
    "demo": [_opt("--example", EXAMPLES_), _opt("--format", FORMATS)],
}
GARBAGE = st.sampled_from(["--help", "--version", "--nope", "-x", "--", "--seq", "-o"])


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(sorted(OPTIONS)))
    one = value(INPUTS).map(lambda p: [p])
    positional = {
        "explain": value(CODES).map(lambda c: [c]),
        "demo": st.just([]),
        "ir": one,
        "build": one,
        "import-hf": value(CONFIGS).map(lambda p: [p]),
    }.get(command, st.lists(value(INPUTS), min_size=1, max_size=3))
    parts = [draw(positional)] + draw(st.lists(st.one_of(OPTIONS[command]), max_size=5))
    parts = draw(st.permutations(parts))
    argv = [command] + [token for part in parts for token in part]
    if draw(st.integers(0, 19)) == 19:
        argv.insert(draw(st.integers(0, len(argv))), draw(GARBAGE))
    return argv


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:  # a directory changes only by what is in it (listed below), not by its mtime
            out[os.path.join(dirpath, name)] = (os.lstat(os.path.join(dirpath, name)).st_mode, 0, 0)
        for name in filenames:
            info = os.lstat(os.path.join(dirpath, name))
            out[os.path.join(dirpath, name)] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return out


def _allowed(cwd: Path, argv: list[str]) -> set[str]:
    """Paths a command line may change: its -o/--plot targets (and what symlinks point to), fmt's files."""
    named = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-o", "--output", "--plot")]
    if argv and argv[0] == "fmt":
        named += argv[1:]
    paths = {os.path.normpath(os.path.join(cwd, n)) for n in named if n and "\x00" not in n}
    return paths | {os.path.realpath(p) for p in paths}


def _relative_to_sandbox(argv: list[str]) -> list[str]:
    """Sandbox files are named relative to the command's cwd (`cwd/` inside the sandbox)."""
    names = {name for pool in (INPUTS, CONFIGS, OUTPUTS, PLOTS) for group in pool for name in group}
    return [f"../{a}" if a in names and a and not a.startswith(("/", "-")) else a for a in argv]


def check_command_line(root: Path, argv: list[str]) -> None:
    argv = _relative_to_sandbox(argv)
    before = _snapshot(root)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    stdout, stderr = out.getvalue(), err.getvalue()
    assert code in (0, 1, 2), (argv, code, stderr)
    assert "Traceback" not in stdout + stderr and "internal compiler error" not in stdout + stderr, (argv, stderr)
    formats = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--format"]
    if formats and formats[-1] == "json" and stdout and not {"--help", "--version"} & set(argv):
        json.loads(stdout)  # exactly one document
    after = _snapshot(root)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    stray = changed - _allowed(root / "cwd", argv)
    assert not stray, (argv, stray)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


EXAMPLES = int(os.environ.get("LIVC_CLI_FUZZ_EXAMPLES", "3000"))
FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(argv=command_lines())
def test_cli_fuzz(sandbox: Path, argv: list[str]) -> None:
    check_command_line(sandbox, argv)


@pytest.mark.slow
@SLOW
@given(argv=command_lines())
def test_cli_fuzz_long(sandbox: Path, argv: list[str]) -> None:
    check_command_line(sandbox, argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "../fifo"],
        ["cost", "/dev/zero", "--format", "json"],
        ["build", "../valid.liv", "-o", "../fifo"],
        ["build", "../valid.liv", "-o", "/dev/null"],
        ["cost", "../valid.liv", "--plot", "../p.txt"],
        ["cost", "../valid.liv", "--batch", "0"],
        ["import-hf", "../config.json", "-o", "../adir"],
        ["check", "../loop", "--format", "json"],
    ],
)
def test_cli_subprocess(sandbox: Path, argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "livc", *argv], cwd=sandbox / "cwd", capture_output=True, text=True, timeout=120
    )
    assert proc.returncode in (0, 1, 2), proc.stderr
    assert "Traceback" not in proc.stderr and "internal compiler error" not in proc.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and stat.S_ISFIFO(os.stat(sandbox / "fifo").st_mode)
