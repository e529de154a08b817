"""The `livc` subcommands: each takes the parsed arguments and returns an exit code.

Exit codes: 0 ok, 1 the input has errors (or warnings under `--deny-warnings`), 2 usage errors (bad
arguments, unusable `-o` paths; raised as `UsageError`/`OutputError` and reported by `cli.main`),
70 an internal compiler error. Results go to stdout, diagnostics and status lines to stderr; with
`--format json` stdout carries exactly one JSON document.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import textwrap
from importlib import resources
from pathlib import Path

from livc.cli_args import UsageError, budget_spec, plot_format, seq_range, token_count
from livc.cli_tvm import check_torch_build
from livc.commands_search import cmd_search
from livc.commands_tvm import cmd_bench, cmd_build_tvm, cmd_run, cmd_tune
from livc.compiler.analysis.budget_lints import seq_beyond_context
from livc.compiler.analysis.budgets import BudgetSyntaxError, parse_cli_budget
from livc.compiler.analysis.evaluate import Context
from livc.compiler.analysis.report import comparison, plot_cache, plot_formats, render_text
from livc.compiler.check import CheckResult, check_path, check_source
from livc.compiler.elaboration.overrides import Override, OverrideSyntaxError, parse_define, provenance
from livc.compiler.ir.nodes import Budget, DType
from livc.compiler.pipeline import analyze_checked, compile_checked
from livc.dsl.codes import CODES
from livc.dsl.diagnostics import CompileError, Diagnostic, Severity, count, error
from livc.dsl.source import SourceFile, Span
from livc.outputs import Destination, OutputError, check_destination, terminal, write_output, write_stdout
from livc.results import FileResult, check_lines, diagnostics_text, document, dumps, file_result

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70
DEFAULT_EXAMPLE = "lfm2_350m"
DEFAULT_PLOT_SEQS = [2**k for k in range(7, 21)]


def _status(message: str) -> None:
    sys.stderr.write(message + "\n")


def _diagnostics(diags: tuple[Diagnostic, ...] | list[Diagnostic], deny: bool = False) -> None:
    if diags:
        sys.stderr.write(diagnostics_text(diags, terminal(sys.stderr).color, deny))


def overrides(args: argparse.Namespace) -> tuple[Override, ...]:
    try:
        return tuple(parse_define(d) for d in getattr(args, "define", None) or ())
    except OverrideSyntaxError as exc:
        raise UsageError(f"invalid -D '{exc.text}': {exc.reason}") from exc


def budgets(args: argparse.Namespace) -> tuple[Budget, ...]:
    dtype, batch = getattr(args, "dtype", None), getattr(args, "batch", 1)
    try:
        return tuple(parse_cli_budget(budget_spec(b), dtype, batch) for b in args.budget or ())  # type: ignore[arg-type]
    except BudgetSyntaxError as exc:
        raise UsageError(f"invalid --budget '{exc.text}': {exc.reason}") from exc


def _dtype(args: argparse.Namespace) -> DType | None:
    return DType(args.dtype) if getattr(args, "dtype", None) else None


def _seq(args: argparse.Namespace) -> tuple[int | None, list[int] | None]:
    """(seq for the report, seqs for the plot); seq None = each model's `context:` (else 4096)."""
    text = getattr(args, "seq", None)
    if text is None:
        return None, None
    if ":" in text:
        seqs = seq_range(text)
        return seqs[-1], seqs
    return token_count(text), None


def _analyze(args: argparse.Namespace, seq: int | None) -> list[FileResult]:
    extra, defines, dtype = budgets(args), overrides(args), _dtype(args)
    results = []
    for file in args.files:
        check = check_path(Path(file), defines)
        result = file_result(file, analyze_checked(check, extra), args.batch, seq, dtype, extra)
        results.append(_with_seq_warnings(result, check, seq))
    return results


def _with_seq_warnings(result: FileResult, check: CheckResult, seq: int | None) -> FileResult:
    """W0003 for a `--seq` beyond a model's `context` (warnings are for error-free files only)."""
    if seq is None or result.errors or check.program is None:
        return result
    root = check.program.modules.get(check.program.root)
    module = root.ast if root is not None else None
    found = [d for m in result.models if (d := seq_beyond_context(m.elaborated, seq, module)) is not None]
    return dataclasses.replace(result, diagnostics=result.diagnostics + tuple(found)) if found else result


def _status_code(results: list[FileResult], deny: bool) -> int:
    return EXIT_OK if all(r.ok(deny) for r in results) else EXIT_ERRORS


def cmd_check(args: argparse.Namespace) -> int:
    if args.seq is not None and ":" in args.seq:
        shown = args.seq if args.seq.isprintable() else ascii(args.seq)[1:-1]
        raise UsageError(f"--seq '{shown}': a range A:B is for `livc cost --plot`; check takes one length")
    seq, _ = _seq(args)
    results = _analyze(args, seq)
    if args.format == "json":
        write_stdout(dumps(document("check", results, args.deny_warnings)))
        return _status_code(results, args.deny_warnings)
    for r in results:
        _diagnostics(r.diagnostics, args.deny_warnings)
        if r.ok(args.deny_warnings):
            write_stdout(_wrapped(check_lines(r), terminal().width))
    return _status_code(results, args.deny_warnings)


def _wrapped(lines: list[str], width: int) -> str:
    """Lines wrapped at word boundaries to the terminal width, continuations indented."""
    indent = lambda line: " " * (len(line) - len(line.lstrip()) + 4)  # noqa: E731
    return "".join(
        textwrap.fill(line, width, subsequent_indent=indent(line), break_long_words=False, break_on_hyphens=False)
        + "\n"
        for line in lines
    )


def cmd_cost(args: argparse.Namespace) -> int:
    seq, seqs = _seq(args)
    plot = _plot_target(args.plot) if args.plot else None
    results = _analyze(args, seq)
    if args.format == "json":
        write_stdout(dumps(document("cost", results, args.deny_warnings, rows=True)))
    for r in results if args.format == "text" else ():
        _diagnostics(r.diagnostics, args.deny_warnings)
    models = [m for r in results if r.ok(args.deny_warnings) for m in r.models]
    term = terminal()
    if args.format == "text" and args.compare and models:
        write_stdout(
            comparison([(m.report.model, m.report) for m in models], models[0].context, term.width, term.color)
        )
    elif args.format == "text":
        for m in models:
            write_stdout(render_text(m.report, m.context, term.width, term.color, m.budgets))
    if plot is not None and models:
        dest, fmt = plot
        ctx = Context(args.batch, models[0].context.seq, _dtype(args))
        write_output(
            dest, plot_cache([(m.report.model, m.report) for m in models], ctx, seqs or DEFAULT_PLOT_SEQS, fmt)
        )
        _status(f"wrote {args.plot}")
    return _status_code(results, args.deny_warnings)


def _plot_target(path: str) -> tuple[Destination, str]:
    fmt = plot_format(path, plot_formats())
    return check_destination(path), fmt


def cmd_ir(args: argparse.Namespace) -> int:
    from livc.compiler.ir.text import print_model

    check = check_path(Path(args.file), overrides(args))
    result = compile_checked(check, stop_after=args.stage)  # the verifier always runs (--verify is accepted)
    ok = result.ok and not (args.deny_warnings and _warnings(result.diagnostics))
    texts = [(m.name, print_model(m)) for m in result.models] if ok else []
    if args.format == "json":
        doc = document("ir", [FileResult(args.file, (), result.diagnostics)], args.deny_warnings)
        doc["ir"] = [{"model": name, "stage": args.stage, "text": text} for name, text in texts]
        write_stdout(dumps(doc))
    else:
        _diagnostics(result.diagnostics, args.deny_warnings)
        write_stdout("".join(text for _, text in texts))
    return EXIT_OK if ok else EXIT_ERRORS


def _warnings(diags: tuple[Diagnostic, ...]) -> int:
    return count(diags, Severity.WARNING)


def cmd_build(args: argparse.Namespace) -> int:
    from livc.backends.pytorch.emit_ops import BackendError
    from livc.backends.pytorch.generate import generate
    from livc.compiler.resolution.loader import read_file

    if args.target != "torch":
        return cmd_build_tvm(args)  # TVM targets; an unknown or unavailable one is E0702 there
    check_torch_build(args)
    dest = check_destination(args.output)
    defines = overrides(args)
    result = compile_checked(check_path(Path(args.file), defines), stop_after="canonicalize")
    _diagnostics(result.diagnostics, args.deny_warnings)
    if not result.ok or (args.deny_warnings and _warnings(result.diagnostics)):
        return EXIT_ERRORS
    if len(result.models) != 1:
        _status(f"error: {args.file} defines {len(result.models)} models; the {args.target} backend builds one")
        return EXIT_ERRORS
    try:
        code = generate(result.models[0], *provenance(args.file, read_file(Path(args.file))[0] or "", defines))
    except BackendError as exc:
        _status(f"error: the {args.target} backend cannot build {args.file}: {exc}")
        return EXIT_ERRORS
    return _emit(dest, code, args.output)


def _emit(dest: Destination, text: str, shown: str) -> int:
    """Write a command's product to its checked destination and say so (unless it went to stdout)."""
    write_output(dest, text)
    if dest.kind != "stdout":
        _status(f"wrote {shown}")
    return EXIT_OK


def cmd_import_hf(args: argparse.Namespace) -> int:
    """Config -> .liv without torch: only `hf_import` (never `hf`, which needs torch) is imported."""
    from livc.backends.pytorch.hf_configs import HFImportError
    from livc.backends.pytorch.hf_import import import_hf, read_config_file

    dest = check_destination(args.output)
    try:
        text = import_hf(read_config_file(Path(args.config)), args.name)
    except HFImportError as exc:
        _status(f"error: {exc}")
        return EXIT_ERRORS
    return _emit(dest, text, args.output)


def _format_one(file: str, check_only: bool) -> tuple[int, FileResult, str | None]:
    """(status, diagnostics, what happened) for one file; writes it (atomically) unless `check_only`."""
    from livc.compiler.resolution.loader import read_file
    from livc.dsl.formatter import format_text

    text, problem = read_file(Path(file))
    if text is None:  # the diagnostic `livc check` gives, so that `--format json` carries it too
        unread = error("E0109", f"cannot read '{file}'", Span(SourceFile(file, ""), 0, 0), problem or "")
        return EXIT_ERRORS, FileResult(file, (), (unread,)), None
    try:
        formatted = format_text(text, file)
    except CompileError as exc:
        return EXIT_ERRORS, FileResult(file, (), tuple(exc.diagnostics)), None
    if formatted == text:
        return EXIT_OK, FileResult(file, (), ()), None
    if check_only:
        return EXIT_ERRORS, FileResult(file, (), ()), f"would reformat {file}"
    write_output(check_destination(file), formatted)
    return EXIT_OK, FileResult(file, (), ()), f"reformatted {file}"


def _fmt_message(message: str | None) -> None:
    if message is not None:
        write_stdout(message + "\n")


def cmd_fmt(args: argparse.Namespace) -> int:
    status, results, messages = EXIT_OK, [], []
    for file in args.files:
        code, result, message = _format_one(file, args.check)
        status, messages = max(status, code), messages + ([message] if message else [])
        results.append(result)
        if args.format == "text":
            _diagnostics(result.diagnostics)
            _fmt_message(message)
    if args.format == "json":
        doc = document("fmt", results)
        doc["ok"], doc["messages"] = status == EXIT_OK, messages
        write_stdout(dumps(doc))
    return status


def _all_codes() -> dict[str, str]:
    """The compiler's codes, then the TVM backend's (E07xx) and the search's (E08xx): `livc explain` knows all."""
    from livc.backends.tvm.errors import CODES as TVM_CODES
    from livc.search.errors import CODES as SEARCH_CODES

    return {**CODES, **TVM_CODES, **SEARCH_CODES}


def cmd_explain(args: argparse.Namespace) -> int:
    code, codes = args.code.upper(), _all_codes()
    if code not in codes:
        raise UsageError(f"unknown code '{args.code}'; known codes: {', '.join(codes)}")
    if args.format == "json":
        write_stdout(dumps({"code": code, "explanation": codes[code]}))
    else:
        write_stdout(f"{code}: {codes[code]}\n")
    return EXIT_OK


def embedded_examples() -> tuple[str, ...]:
    return tuple(sorted(p.name[:-4] for p in resources.files("livc.examples").iterdir() if p.name.endswith(".liv")))


def embedded_example(name: str) -> str:
    return resources.files("livc.examples").joinpath(f"{name}.liv").read_text(encoding="utf-8")


def cmd_demo(args: argparse.Namespace) -> int:
    """Check, cost and generate PyTorch code for an embedded example (no files, GPU or network)."""
    known = embedded_examples()
    if args.example not in known:
        raise UsageError(f"no embedded example '{args.example}'; examples: {', '.join(known)}")
    name = f"<examples>/{args.example}.liv"
    text = embedded_example(args.example)
    check = check_source(text, name)
    result = file_result(name, analyze_checked(check), 1, None, None, ())
    if args.format == "json":
        write_stdout(dumps(document("demo", [result], rows=True)))
        return _status_code([result], False)
    _diagnostics(result.diagnostics)
    if not result.ok():
        return EXIT_ERRORS
    term = terminal()
    write_stdout(_wrapped(check_lines(result), term.width))
    for m in result.models:
        write_stdout(render_text(m.report, m.context, term.width, term.color, m.budgets))
    _demo_codegen(check)
    return EXIT_OK


def _demo_codegen(check: CheckResult) -> None:
    from livc.backends.pytorch.emit_ops import BackendError
    from livc.backends.pytorch.generate import generate

    for model in compile_checked(check, stop_after="canonicalize").models:
        try:
            code = generate(model, "<examples>", "")
        except BackendError as exc:
            write_stdout(f"PyTorch backend: {exc}\n")
            continue
        write_stdout(
            f"PyTorch backend: generated {len(code.splitlines())} lines for {model.name}\n"
            "(write them with `livc build FILE --target torch -o model.py`)\n"
        )


COMMANDS = {
    "check": cmd_check,
    "cost": cmd_cost,
    "ir": cmd_ir,
    "build": cmd_build,
    "import-hf": cmd_import_hf,
    "fmt": cmd_fmt,
    "explain": cmd_explain,
    "demo": cmd_demo,
    "search": cmd_search,
    "run": cmd_run,
    "bench": cmd_bench,
    "tune": cmd_tune,
}

__all__ = ["COMMANDS", "EXIT_ERRORS", "EXIT_INTERNAL", "EXIT_OK", "EXIT_USAGE", "OutputError", "UsageError"]
