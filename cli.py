"""The `livc` command line: the argument parser and `main`. The only module that reads argv or the environment.

    livc check FILE...   names, shapes, costs and budgets (exit 1 on errors)
    livc cost FILE...    static cost report: parameters, FLOPs, cache (--compare, --plot)
    livc ir FILE         the IR after a pipeline stage
    livc build FILE      a standalone PyTorch module, or a TVM artifact (--target x86|arm64-linux|arm64-android)
    livc run DIR         generate greedily with a TVM artifact (tokens and timings)
    livc bench FILE      prompt/generation tokens/s: TVM next to the PyTorch backend
    livc tune FILE       MetaSchedule tuning into a database for `build --db`
    livc import-hf CFG   a .liv file for a Hugging Face config.json (no torch needed)
    livc fmt FILE...     format in place (atomically), or only report (--check)
    livc explain CODE    what a diagnostic code means
    livc demo            the main job on an embedded example
    livc search SPACE    evolutionary architecture search (docs/search.md)

The subcommands live in `commands`, output handling in `outputs`, argument values in `cli_args`.
`main` turns every failure into an exit code and a message: 2 for usage errors, 70 (with a request
to report it) for internal errors, 141 quietly when stdout is a closed pipe (`livc ... | head`).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from livc import __version__, cli_tvm, commands_search
from livc.cli_args import TOKEN_RULE, UsageError, positive_int
from livc.commands import COMMANDS, EXIT_INTERNAL, EXIT_USAGE, OutputError
from livc.compiler.ir.nodes import DType
from livc.compiler.pipeline import STAGE_NAMES
from livc.results import dumps, failure_document

GC_THRESHOLDS = (20_000, 50, 1_000)  # fewer full collections: keeps long compiles linear (benchmarks/layer_scaling.py)
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `yes | head`
DEFAULT_EXAMPLE = "lfm2_350m"

EXAMPLES = {
    "check": """examples:
  livc check examples/*.liv
  livc check model.liv --budget 'params<=400M' --budget 'cache@32K<=64MiB'
  livc check model.liv -D d=512 -D n_layers=8 --format json
  livc check model.liv --deny-warnings""",
    "cost": """examples:
  livc cost examples/lfm2_350m.liv --seq 32K
  livc cost a.liv b.liv --compare --batch 8 --dtype f16
  livc cost model.liv --plot cache.svg --seq 128:1M
  livc cost model.liv --format json | jq '.files[0].models[0].total'""",
    "ir": """examples:
  livc ir model.liv
  livc ir model.liv --stage build
  livc ir model.liv -D n_layers=2 --format json""",
    "build": """examples:
  livc build model.liv --target torch -o model.py
  livc build model.liv -D d=512 -o small.py
  livc build model.liv | less"""
    + cli_tvm.BUILD_EXAMPLES,
    "import-hf": """examples:
  livc import-hf config.json -o lfm2.liv
  livc import-hf config.json --name MyLlama""",
    "fmt": """examples:
  livc fmt model.liv
  livc fmt --check examples/*.liv stdlib/*.liv""",
    "explain": """examples:
  livc explain E0302
  livc explain w0001 --format json""",
    "demo": """examples:
  livc demo
  livc demo --example hyena_edge --format json""",
    "search": commands_search.EXAMPLES,
    **cli_tvm.EXAMPLES,
}

SEQ_HELP = f"sequence length: {TOKEN_RULE} (default: the model's `context:`, else 4096)"


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in every help line, and the examples epilog printed as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        return text if "default" in text else super()._get_help_string(action)


def _parser(sub: argparse._SubParsersAction, name: str, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help, epilog=EXAMPLES[name], formatter_class=_Formatter)


def _add_format(p: argparse.ArgumentParser, what: str = "results and diagnostics") -> None:
    p.add_argument(
        "--format", choices=("text", "json"), default="text", help=f"{what} as text or as one JSON document on stdout"
    )


def _add_analysis(p: argparse.ArgumentParser, deny: bool = True) -> None:
    p.add_argument(
        "-D",
        "--define",
        action="append",
        metavar="NAME=VALUE",
        default=None,
        help="set a model parameter, e.g. -D d=512 or -D LFM2.n_layers=8 (repeatable; default: none)",
    )
    if deny:
        p.add_argument("--deny-warnings", action="store_true", help="treat warnings as errors (exit 1)")


def _add_context(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seq", default=None, metavar="N", help=SEQ_HELP)
    p.add_argument("--batch", type=positive_int, default=1, metavar="B", help="batch size (a whole number >= 1)")
    p.add_argument(
        "--dtype",
        choices=[d.value for d in DType],
        default=None,
        help="cache/activation dtype (default: the model's `dtype:`)",
    )
    p.add_argument(
        "--budget",
        action="append",
        metavar="SPEC",
        default=None,
        help="extra budget METRIC[@SEQ]<=LIMIT, e.g. params<=400M or cache@32K<=64MiB (repeatable; default: none)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="livc",
        description="A compiler for LIV sequence-model architectures.",
        epilog="examples:\n  livc demo\n  livc check examples/*.liv\n  livc cost examples/lfm2_350m.liv --seq 32K",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"livc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = _parser(sub, "check", "check .liv files: names, shapes, costs and budgets")
    check.add_argument("files", nargs="+", metavar="FILE", help=".liv files to check")
    cost = _parser(sub, "cost", "static cost report: parameters, FLOPs and inference cache")
    cost.add_argument("files", nargs="+", metavar="FILE", help=".liv files to report on")
    for p in (check, cost):
        _add_context(p)
        _add_analysis(p)
        _add_format(p)
    cost.add_argument("--compare", action="store_true", help="one side-by-side table of every model's totals")
    cost.add_argument(
        "--plot",
        metavar="FILE",
        default=None,
        help="plot cache bytes against sequence length (log axes) into FILE; the format comes from the "
        "extension (png, svg, pdf, jpg, ...); --seq A:B sets the range (default: no plot)",
    )
    ir = _parser(sub, "ir", "print the IR after a pipeline stage")
    ir.add_argument("file", metavar="FILE", help="a .liv file")
    ir.add_argument("--stage", choices=STAGE_NAMES, default="lower", help="print the IR after this stage")
    ir.add_argument(
        "--verify", action="store_true", help="accepted for scripts: the IR verifier always runs after every stage"
    )
    _add_analysis(ir)
    _add_format(ir, "IR and diagnostics")
    build = _parser(sub, "build", "generate code for a backend")
    build.add_argument("file", metavar="FILE", help="a .liv file defining one model")
    build.add_argument(
        "--target",
        default="torch",
        help="torch (a PyTorch module) or a TVM target: x86, arm64-linux, arm64-android (GPUs: docs/tvm.md)",
    )
    build.add_argument(
        "-o", "--output", default="-", metavar="OUT", help="output file (torch; - is stdout) or artifact directory"
    )
    _add_analysis(build)
    cli_tvm.add_build_arguments(build, _runner_cache())
    import_hf = _parser(sub, "import-hf", "write a .liv file for a Hugging Face config.json")
    import_hf.add_argument("config", metavar="CONFIG", help="config.json of an Lfm2/Llama/Qwen2ForCausalLM model")
    import_hf.add_argument("-o", "--output", default="-", metavar="OUT", help="output .liv file; - is stdout")
    import_hf.add_argument("--name", default=None, help="model name (default: from `_name_or_path`)")
    fmt = _parser(sub, "fmt", "format .liv files in place")
    fmt.add_argument("files", nargs="+", metavar="FILE", help=".liv files to format")
    fmt.add_argument("--check", action="store_true", help="only report files that would change (exit 1)")
    _add_format(fmt, "diagnostics")
    explain = _parser(sub, "explain", "explain a diagnostic code")
    explain.add_argument("code", metavar="CODE", help="a code such as E0302 or W0001")
    _add_format(explain, "the explanation")
    demo = _parser(sub, "demo", "run the main job on an embedded example (no files needed)")
    demo.add_argument("--example", default=DEFAULT_EXAMPLE, help="name of an example shipped in livc/examples")
    _add_format(demo)
    commands_search.add_arguments(_parser(sub, "search", "evolutionary architecture search over a space file"))
    cli_tvm.add_run_arguments(_parser(sub, "run", "generate with a TVM artifact (greedy)"), _runner_cache())
    bench = _parser(sub, "bench", "tokens/s of the TVM build next to the PyTorch backend")
    cli_tvm.add_bench_arguments(bench)
    _add_analysis(bench)
    tune = _parser(sub, "tune", "tune the TVM kernels of a model with MetaSchedule")
    cli_tvm.add_tune_arguments(tune)
    _add_analysis(tune)
    return parser


def _runner_cache() -> str:
    """Where the native runner and the aarch64 TVM runtime are cached: $XDG_CACHE_HOME/livc/native."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "livc", "native")


class _ArgumentError(Exception):
    """A usage error found by argparse (its message, after the usage line was printed)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise _ArgumentError(f"{self.prog}: error: {message}")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace | int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return build_parser().parse_args(args)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except _ArgumentError as exc:
        sys.stderr.write(f"{exc}\n")
        command = _json_command(args)
        if command is not None:  # `--format json` promises one document, also for a bad argument
            sys.stdout.write(dumps(failure_document(command, "usage_error", str(exc))))
        return EXIT_USAGE


def _json_command(argv: list[str]) -> str | None:
    """The subcommand of an argument list that asks for `--format json` (None if it does not)."""
    wants = "--format=json" in argv or any(a == "--format" and b == "json" for a, b in zip(argv, argv[1:]))
    command = next((a for a in argv if not a.startswith("-")), None)
    return command if wants and command in COMMANDS else None


def _fail(args: argparse.Namespace, kind: str, message: str) -> None:
    sys.stderr.write(message + "\n")
    if getattr(args, "format", "text") == "json":
        sys.stdout.write(dumps(failure_document(args.command, kind, message)))


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush stays silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if isinstance(args, int):
        return args
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        status = COMMANDS[args.command](args)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except (UsageError, OutputError) as exc:
        _fail(args, "usage_error", f"livc {args.command}: error: {exc}")
        return EXIT_USAGE if getattr(exc, "usage", True) else 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # an internal compiler error: never a bare traceback for users
        if os.environ.get("LIVC_DEBUG"):
            raise
        _fail(
            args,
            "internal_error",
            f"internal compiler error: {type(exc).__name__}: {exc}\n"
            "this is a bug in livc; rerun with LIVC_DEBUG=1 for a traceback",
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
