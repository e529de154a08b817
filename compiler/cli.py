"""The `livc` command line. The only module that reads argv or the environment.

    livc check FILE...            check files (exit 1 on errors); --format json for tools
    livc fmt FILE... [--check]    format in place (atomically), or only report (exit 1 if unformatted)
    livc explain CODE             what a diagnostic code means
    livc demo                     the main job on an embedded default (the shipped LFM2-350M example)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from livc.compiler.check import CheckResult, check_path, check_source
from livc.compiler.model import ElaboratedModel
from livc.dsl.codes import CODES
from livc.dsl.diagnostics import CompileError, Diagnostic
from livc.dsl.render import render_all_text, render_json

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70
DEFAULT_EXAMPLE = "lfm2_350m"


def _print_diagnostics(diags: Sequence[Diagnostic], fmt: str) -> None:
    if fmt == "json":
        sys.stdout.write(render_json(list(diags)))
    elif diags:
        sys.stderr.write(render_all_text(list(diags)))


def _summary(model: ElaboratedModel) -> str:
    kinds: dict[str, int] = {}
    for layer in model.layers:
        for sub in layer.sublayers:
            kinds[sub.op.name] = kinds.get(sub.op.name, 0) + 1
    ops = ", ".join(f"{n}x {k}" for k, n in kinds.items())
    extras = [f"{len(model.shares)} sharing declaration(s)"] if model.shares else []
    extras += [f"MoR x{model.recursion.recursions} ({model.recursion.sharing})"] if model.recursion else []
    extras += [f"{len(model.budgets)} budget(s)"] if model.budgets else []
    return f"model {model.name}: {len(model.layers)} layers ({ops})" + "".join(f"; {e}" for e in extras)


def _report_check(result: CheckResult, name: str, fmt: str) -> int:
    _print_diagnostics(result.diagnostics, fmt)
    if fmt == "text" and result.ok:
        for model in result.models:
            print(f"{name}: ok: {_summary(model)}")
        if not result.models:
            print(f"{name}: ok (no models)")
    return EXIT_OK if result.ok else EXIT_ERRORS


def cmd_check(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for file in args.files:
        status = max(status, _report_check(check_path(Path(file)), file, args.format))
    return status


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory and rename: never half-written."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _format_one(path: Path, check_only: bool, fmt: str) -> int:
    from livc.compiler.loader import read_file
    from livc.dsl.formatter import format_text

    text, problem = read_file(path)
    if text is None:
        sys.stderr.write(f"error[E0109]: cannot read '{path}': {problem}\n")
        return EXIT_ERRORS
    try:
        formatted = format_text(text, str(path))
    except CompileError as exc:
        _print_diagnostics(exc.diagnostics, fmt)
        return EXIT_ERRORS
    if formatted == text:
        return EXIT_OK
    if check_only:
        print(f"would reformat {path}")
        return EXIT_ERRORS
    _write_atomic(path, formatted)
    print(f"reformatted {path}")
    return EXIT_OK


def cmd_fmt(args: argparse.Namespace) -> int:
    return max((_format_one(Path(f), args.check, args.format) for f in args.files), default=EXIT_OK)


def cmd_explain(args: argparse.Namespace) -> int:
    code = args.code.upper()
    if code not in CODES:
        sys.stderr.write(f"unknown code '{args.code}'; known codes: {', '.join(CODES)}\n")
        return EXIT_USAGE
    print(f"{code}: {CODES[code]}")
    return EXIT_OK


def embedded_example(name: str) -> str:
    return resources.files("livc.examples").joinpath(f"{name}.liv").read_text(encoding="utf-8")


def cmd_demo(args: argparse.Namespace) -> int:
    name = f"<examples>/{args.example}.liv"
    try:
        text = embedded_example(args.example)
    except FileNotFoundError:
        sys.stderr.write(f"no embedded example '{args.example}'\n")
        return EXIT_USAGE
    return _report_check(check_source(text, name), name, args.format)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livc", description="A compiler for LIV sequence-model architectures.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check .liv files")
    check.add_argument("files", nargs="+")
    fmt = sub.add_parser("fmt", help="format .liv files in place")
    fmt.add_argument("files", nargs="+")
    fmt.add_argument("--check", action="store_true", help="only report files that would change (exit 1)")
    for p in (check, fmt):
        p.add_argument("--format", choices=("text", "json"), default="text", help="diagnostic format")
    explain = sub.add_parser("explain", help="explain a diagnostic code")
    explain.add_argument("code")
    demo = sub.add_parser("demo", help="run the main job on an embedded example (no files needed)")
    demo.add_argument("--example", default=DEFAULT_EXAMPLE)
    demo.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults()
    return parser


COMMANDS = {"check": cmd_check, "fmt": cmd_fmt, "explain": cmd_explain, "demo": cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # an internal compiler error: never a bare traceback for users
        if os.environ.get("LIVC_DEBUG"):
            raise
        sys.stderr.write(f"internal compiler error: {type(exc).__name__}: {exc}\n"
                         "this is a bug in livc; rerun with LIVC_DEBUG=1 for a traceback\n")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
