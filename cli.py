"""The `livc` command line. The only module that reads argv or the environment.

livc check FILE... [--budget B]   check files: names, shapes, costs, budgets (exit 1 on errors)
livc cost FILE... [--seq N] [--batch B] [--dtype D] [--json] [--compare] [--plot P --seq A:B]
livc ir FILE [--stage NAME] [--verify]   print the IR after a pipeline stage
livc build FILE --target torch -o OUT.py   write a standalone PyTorch module
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

from livc.compiler.analysis.budgets import BudgetSyntaxError, parse_cli_budget
from livc.compiler.analysis.evaluate import Context
from livc.compiler.analysis.report import comparison, plot_cache
from livc.compiler.analysis.report import render_json as render_cost_json
from livc.compiler.analysis.report import render_text as render_cost_text
from livc.compiler.check import CheckResult, check_path, check_source
from livc.compiler.elaboration.model import ElaboratedModel
from livc.compiler.ir.nodes import Budget, DType
from livc.compiler.pipeline import STAGE_NAMES, analyze_checked, analyze_path
from livc.dsl.codes import CODES
from livc.dsl.diagnostics import CompileError, Diagnostic
from livc.dsl.lexicon import number_value
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


def _report_check(result: CheckResult, name: str, fmt: str, budgets: tuple[Budget, ...] = ()) -> int:
    analyzed = analyze_checked(result, budgets)
    _print_diagnostics(analyzed.diagnostics, fmt)
    if fmt == "text" and analyzed.ok:
        for model, report in zip(result.models, analyzed.reports):
            print(f"{name}: ok: {_summary(model)}; {report.params:,} params; cache {report.total.cache_min} elements")
        if not result.models:
            print(f"{name}: ok (no models)")
    return EXIT_OK if analyzed.ok else EXIT_ERRORS


def _cli_budgets(args: argparse.Namespace) -> tuple[Budget, ...] | None:
    try:
        return tuple(
            parse_cli_budget(b, getattr(args, "dtype", "bf16"), getattr(args, "batch", 1)) for b in args.budget or ()
        )
    except BudgetSyntaxError as exc:
        sys.stderr.write(f"error: invalid --budget '{exc.text}': {exc.reason}\n")
        return None


def cmd_check(args: argparse.Namespace) -> int:
    budgets = _cli_budgets(args)
    if budgets is None:
        return EXIT_USAGE
    status = EXIT_OK
    for file in args.files:
        status = max(status, _report_check(check_path(Path(file)), file, args.format, budgets))
    return status


def _seq_range(text: str) -> list[int] | None:
    ends = [number_value(p) for p in text.split(":")]
    if len(ends) != 2 or not all(isinstance(e, int) and e > 0 for e in ends) or ends[0] > ends[1]:  # type: ignore
        return None
    lo, hi = ends
    seqs, s = [], lo
    while s <= hi:  # type: ignore[operator]
        seqs.append(s)
        s *= 2  # type: ignore[operator]
    return seqs  # type: ignore[return-value]


def cmd_cost(args: argparse.Namespace) -> int:
    budgets = _cli_budgets(args)
    seqs = _seq_range(args.seq) if ":" in args.seq else None
    seq = number_value(args.seq) if seqs is None else seqs[-1]
    if budgets is None or not isinstance(seq, int) or seq < 1:
        sys.stderr.write(f"error: invalid --seq '{args.seq}' (an int like 4096 or 32K, or a range 128:1M)\n")
        return EXIT_USAGE
    ctx = Context(batch=args.batch, seq=seq, dtype=DType(args.dtype))
    results = [(f, analyze_path(Path(f), budgets)) for f in args.files]
    failed = [r for _, r in results if not r.ok]
    for _, r in results:
        _print_diagnostics(r.diagnostics, "text")
    reports = [(r.compiled.models[i].name, rep) for _, r in results for i, rep in enumerate(r.reports)]
    if args.json:
        sys.stdout.write(render_cost_json([rep for _, rep in reports], ctx))
    elif args.compare:
        sys.stdout.write(comparison(reports, ctx))
    else:
        for _, rep in reports:
            sys.stdout.write(render_cost_text(rep, ctx))
    if args.plot:
        plot_cache(reports, ctx, seqs or [2**k for k in range(7, 21)], args.plot)
        print(f"wrote {args.plot}")
    return EXIT_ERRORS if failed else EXIT_OK


def cmd_ir(args: argparse.Namespace) -> int:
    from livc.compiler.ir.text import print_model
    from livc.compiler.pipeline import compile_path

    result = compile_path(Path(args.file), stop_after=args.stage, verify=args.verify)
    _print_diagnostics(result.diagnostics, "text")
    for model in result.models:
        sys.stdout.write(print_model(model))
    return EXIT_OK if result.ok else EXIT_ERRORS


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
    from livc.compiler.resolution.loader import read_file
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


def cmd_build(args: argparse.Namespace) -> int:
    from livc.backends.pytorch.emit_ops import BackendError
    from livc.backends.pytorch.load import generate_from_path

    try:
        _, code = generate_from_path(Path(args.file))
    except CompileError as exc:
        _print_diagnostics(exc.diagnostics, "text")
        return EXIT_ERRORS
    except BackendError as exc:
        sys.stderr.write(f"error: the {args.target} backend cannot build {args.file}: {exc}\n")
        return EXIT_ERRORS
    if args.output == "-":
        sys.stdout.write(code)
    else:
        _write_atomic_new(Path(args.output), code)
        print(f"wrote {args.output}")
    return EXIT_OK


def _write_atomic_new(path: Path, text: str) -> None:
    if not path.exists():
        path.touch(mode=0o644)
    _write_atomic(path, text)


def _import_hf(args: argparse.Namespace) -> int:
    from livc.backends.pytorch.hf import cmd_import_hf

    return cmd_import_hf(args)


def embedded_example(name: str) -> str:
    return resources.files("livc.examples").joinpath(f"{name}.liv").read_text(encoding="utf-8")


def cmd_demo(args: argparse.Namespace) -> int:
    """Check, cost and generate PyTorch code for an embedded example (no files, GPU or network)."""
    name = f"<examples>/{args.example}.liv"
    try:
        text = embedded_example(args.example)
    except FileNotFoundError:
        sys.stderr.write(f"no embedded example '{args.example}'\n")
        return EXIT_USAGE
    check = check_source(text, name)
    status = _report_check(check, name, args.format)
    if status != EXIT_OK or args.format == "json":
        return status
    analyzed = analyze_checked(check)
    ctx = Context(batch=1, seq=4096, dtype=DType.BF16)
    for report in analyzed.reports:
        sys.stdout.write(render_cost_text(report, ctx))
    _demo_codegen(check)
    return EXIT_OK


def _demo_codegen(check: CheckResult) -> None:
    from livc.backends.pytorch.emit_ops import BackendError
    from livc.backends.pytorch.generate import generate
    from livc.compiler.pipeline import compile_checked

    for model in compile_checked(check, stop_after="canonicalize").models:
        try:
            code = generate(model, "<examples>", "")
        except BackendError as exc:
            print(f"PyTorch backend: {exc}")
            continue
        print(
            f"PyTorch backend: generated {len(code.splitlines())} lines for {model.name} "
            "(write them with `livc build FILE --target torch -o model.py`)"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livc", description="A compiler for LIV sequence-model architectures.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check .liv files: names, shapes, costs and budgets")
    check.add_argument("files", nargs="+")
    cost = sub.add_parser("cost", help="static cost report (parameters, FLOPs, cache)")
    cost.add_argument("files", nargs="+")
    cost.add_argument("--seq", default="4096", help="sequence length, or a range A:B for --plot (e.g. 128:1M)")
    cost.add_argument("--batch", type=int, default=1)
    cost.add_argument("--dtype", choices=[d.value for d in DType], default="bf16", help="cache dtype")
    cost.add_argument("--json", action="store_true", help="machine-readable output")
    cost.add_argument("--compare", action="store_true", help="side-by-side totals of several files")
    cost.add_argument("--plot", metavar="PNG", help="plot cache bytes against sequence length (log axes)")
    for p in (check, cost):
        p.add_argument(
            "--budget",
            action="append",
            metavar="SPEC",
            help="extra budget, e.g. params<=400M or cache@32768<=64MiB (repeatable)",
        )
    ir = sub.add_parser("ir", help="print the IR after a pipeline stage")
    ir.add_argument("file")
    ir.add_argument("--stage", choices=STAGE_NAMES, default="lower")
    ir.add_argument("--verify", action="store_true", help="run the IR verifier after every stage")
    fmt = sub.add_parser("fmt", help="format .liv files in place")
    fmt.add_argument("files", nargs="+")
    fmt.add_argument("--check", action="store_true", help="only report files that would change (exit 1)")
    for p in (check, fmt):
        p.add_argument("--format", choices=("text", "json"), default="text", help="diagnostic format")
    explain = sub.add_parser("explain", help="explain a diagnostic code")
    explain.add_argument("code")
    import_hf = sub.add_parser("import-hf", help="write a .liv file for a Hugging Face config.json")
    import_hf.add_argument("config", help="config.json of an Lfm2/Llama/Qwen2ForCausalLM model")
    import_hf.add_argument("-o", "--output", default="-", help="output .liv file (default: stdout)")
    import_hf.add_argument("--name", default=None, help="model name in the .liv file")
    build = sub.add_parser("build", help="generate code for a backend")
    build.add_argument("file")
    build.add_argument("--target", choices=("torch",), default="torch")
    build.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    demo = sub.add_parser("demo", help="run the main job on an embedded example (no files needed)")
    demo.add_argument("--example", default=DEFAULT_EXAMPLE)
    demo.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults()
    return parser


COMMANDS = {
    "check": cmd_check,
    "cost": cmd_cost,
    "ir": cmd_ir,
    "build": cmd_build,
    "import-hf": lambda args: _import_hf(args),
    "fmt": cmd_fmt,
    "explain": cmd_explain,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # an internal compiler error: never a bare traceback for users
        if os.environ.get("LIVC_DEBUG"):
            raise
        sys.stderr.write(
            f"internal compiler error: {type(exc).__name__}: {exc}\n"
            "this is a bug in livc; rerun with LIVC_DEBUG=1 for a traceback\n"
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
