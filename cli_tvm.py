"""Arguments of the TVM commands (`build --target x86|arm64-linux|arm64-android`, `run`, `bench`, `tune`).

cli.py builds the parsers with these functions (it alone reads the environment: the runner cache default is
passed in); `check_torch_build` rejects TVM options given to `--target torch`. The commands: commands_tvm.py.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from livc.cli_args import UsageError

TVM_TARGETS = ("x86", "arm64-linux", "arm64-android", "adreno", "mali", "adreno-linux", "mali-linux", "webgpu", "cuda")


EXAMPLES = {
    "run": """examples:
  livc run out/ --prompt-ids 1,2,3 --max-new-tokens 16
  livc run out/ --prompt-ids 1,2,3 --native        # the C++ runner (arm64-linux artifacts: always, under qemu)""",
    "bench": """examples:
  livc bench examples/lfm2_350m.liv --target x86 --weights bf16
  livc bench model.liv --weights q8 -p 128 -n 64 -r 5
  livc bench model.liv --target arm64-linux --weights q4 --rpc 127.0.0.1:9190 --key phone""",
    "tune": """examples:
  livc tune model.liv --target x86 --trials 64 --db tune-db/
  livc build model.liv --target x86 --db tune-db/ -o out/""",
}
BUILD_EXAMPLES = """
  livc build model.liv --target x86 --weights bf16 -o out/
  livc build model.liv --target arm64-linux --weights q8 --max-len 4096 -o out-arm/
  livc build model.liv --target arm64-android --weights q4 --checkpoint hf-dir/ -o out-android/"""
FORMATS = ("f32", "f16", "bf16", "q8", "q4")


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip().replace("_", ""), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def format_list(text: str) -> tuple[str, ...]:
    """argparse `type=` for bench's `--weights f32,bf16,q4`."""
    formats = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise argparse.ArgumentTypeError(
            f"expected formats from {', '.join(FORMATS)} separated by commas, got '{text}'"
        )
    return formats


def _add_weights(p: argparse.ArgumentParser, default: str | None, many: bool = False) -> None:
    if many:
        p.add_argument(
            "--weights",
            type=format_list,
            default=("f32",),
            metavar="W[,W...]",
            help=f"matrix-weight storage formats, comma-separated ({', '.join(FORMATS)}; default: f32)",
        )
    else:
        p.add_argument(
            "--weights",
            choices=FORMATS,
            default=default,
            help=f"matrix-weight storage format (TVM; default: {default or 'f32'})",
        )
    p.add_argument(
        "--max-len",
        type=_int_at_least(1),
        default=None,
        metavar="N",
        help="cache capacity in positions (default: min(2048, the model's `context:`))",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        metavar="PATH",
        help="weights: a .safetensors file or a Hugging Face directory (default: the PyTorch backend's initialisation)",
    )
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the initialisation without --checkpoint")
    p.add_argument(
        "--db", default=None, metavar="DIR", help="apply a `livc tune` database (default: the hand schedules only)"
    )


def add_build_arguments(p: argparse.ArgumentParser, runner_cache: str) -> None:
    """The TVM options of `livc build` (its --target accepts torch and TVM_TARGETS)."""
    _add_weights(p, None)
    p.add_argument(
        "--bundle-runner",
        action="store_true",
        help="also put the native runner and its two TVM runtime libraries into DIR/runner (x86, arm64-linux)",
    )
    p.add_argument("--runner-cache", default=runner_cache, metavar="DIR", help="where runners are built and cached")


def add_run_arguments(p: argparse.ArgumentParser, runner_cache: str) -> None:
    p.add_argument("artifact", metavar="DIR", help="an artifact directory written by `livc build --target ...`")
    p.add_argument("--prompt-ids", required=True, metavar="IDS", help="the prompt as comma-separated token ids")
    p.add_argument(
        "--max-new-tokens", type=_int_at_least(1), default=16, metavar="N", help="tokens to generate (greedy)"
    )
    p.add_argument("--native", action="store_true", help="run the C++ runner instead of the in-process Relax VM")
    p.add_argument(
        "--runner-cache",
        default=runner_cache,
        metavar="DIR",
        help="where the native runner and aarch64 runtime are cached",
    )


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="a .liv file defining one model")
    p.add_argument("--target", default="x86", help="the host target (bench measures this machine), or with --rpc any")
    p.add_argument("--rpc", default=None, metavar="HOST:PORT", help="measure on a remote device: its TVM RPC tracker")
    p.add_argument("--key", default=None, metavar="KEY", help="the device key registered with the tracker (--rpc)")
    p.add_argument(
        "-p", "--n-prompt", type=_int_at_least(1), default=64, metavar="N", help="prompt tokens of the pp test"
    )
    p.add_argument(
        "-n",
        "--n-gen",
        type=_int_at_least(0),
        default=32,
        metavar="N",
        help="generated tokens of the tg test (0: none)",
    )
    p.add_argument(
        "-r", "--repetitions", type=_int_at_least(1), default=3, metavar="R", help="repetitions of each test"
    )
    _add_weights(p, "f32", many=True)


def add_tune_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="a .liv file defining one model")
    p.add_argument("--target", default="x86", help="target to tune for (this host: x86)")
    p.add_argument("--trials", type=_int_at_least(1), default=64, metavar="N", help="MetaSchedule trials in all")
    p.add_argument("--db", default="tune-db", metavar="DIR", help="the tuning database folder (created or extended)")
    p.add_argument("--weights", choices=FORMATS, default="f32", help="matrix-weight storage format")
    p.add_argument("--max-len", type=_int_at_least(1), default=None, metavar="N", help="cache capacity in positions")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="the tuner's random seed")
    p.add_argument("--rpc", default=None, metavar="HOST:PORT", help="measure on a remote device: its TVM RPC tracker")
    p.add_argument("--key", default=None, metavar="KEY", help="the device key registered with the tracker (--rpc)")


def check_torch_build(args: argparse.Namespace) -> None:
    """`--target torch` takes none of the TVM options (a silently ignored --weights q4 would mislead)."""
    names = ("weights", "max_len", "checkpoint", "db", "bundle_runner")
    given = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n, None)]
    if given:
        raise UsageError(f"{', '.join(given)}: only for the TVM targets ({', '.join(TVM_TARGETS)}), not --target torch")
