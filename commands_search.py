"""`livc search SPACE.toml -o DIR [--resume DIR] [--ray auto|ADDRESS] [--workers N]`.

Runs (or, with `--resume DIR`, continues) the evolutionary search of a search-space file into a
directory: the archive (`archive.sqlite`), then the report (`report/summary.md`, Pareto plots, the
front's .liv files). Progress goes to stderr (a live panel on a terminal, one line per generation
otherwise); the front's summary to stdout. A bad space file or archive is a diagnostic (exit 1), never a
traceback. `--ray` sets RAY_AUTH_MODE=disabled (unless already set) before Ray starts: this CLI layer
is the only place that touches the environment. Heavy imports (pymoo, torch) happen only when run.
"""

from __future__ import annotations

import argparse
import os
import sys

from livc.cli_args import UsageError

EXAMPLES = """examples:
  livc search examples/search/smoke.toml -o runs/smoke
  livc search examples/search/smoke.toml --resume runs/smoke
  livc search examples/search/cpu.toml -o runs/cpu --workers 2
  livc search space.toml -o runs/x --ray auto"""


def workers_count(text: str) -> int:
    """argparse `type=` for `--workers`: 0 (evaluate in the driver process) or more."""
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got '{text}'") from None
    if not 0 <= value <= 4096:
        raise argparse.ArgumentTypeError(f"must be between 0 and 4096, got {value}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("space", metavar="SPACE", help="a search-space .toml file (docs/search.md)")
    p.add_argument("-o", "--output", default=None, metavar="DIR", help="directory of the search (a new one)")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue the search in DIR (after a crash or kill)")
    p.add_argument(
        "--ray",
        default=None,
        metavar="auto|ADDRESS",
        help="evaluate on Ray: auto = join a running cluster or start a local one (default: local processes)",
    )
    p.add_argument(
        "--workers", type=workers_count, default=None, metavar="N", help="worker processes (default: the file's)"
    )


def _directory(args: argparse.Namespace) -> tuple[str, bool]:
    if args.resume and args.output and os.path.abspath(args.resume) != os.path.abspath(args.output):
        raise UsageError("--resume DIR and -o DIR name different directories; give one of them")
    if not (args.resume or args.output):
        raise UsageError("give the search directory: -o DIR (new search) or --resume DIR")
    return (args.resume or args.output), bool(args.resume)


def cmd_search(args: argparse.Namespace) -> int:
    from livc.search.api import search
    from livc.search.errors import SearchError
    from livc.search.progress import LineProgress, RichProgress

    directory, resume = _directory(args)
    if args.ray is not None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    progress = RichProgress() if sys.stderr.isatty() else LineProgress()
    try:
        result = search(args.space, directory, resume=resume, workers=args.workers, ray=args.ray, progress=progress)
    except SearchError as exc:
        sys.stderr.write(str(exc) + "\n")
        return 1
    sys.stdout.write(_summary(result))
    return 0


def _summary(result: object) -> str:
    from livc.search.report import front_table

    r = result  # api.SearchResult
    lines = [f"search {r.directory}: {_counts(r.counts)}", front_table(r.front, r.config.objectives)]  # type: ignore[attr-defined]
    if r.report is not None:  # type: ignore[attr-defined]
        lines.append(f"report: {r.report}")  # type: ignore[attr-defined]
    return "\n".join(lines) + "\n"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no evaluations"
