"""The TVM commands of `livc`: `build --target x86|arm64-linux|arm64-android`, `run`, `bench`, `tune`.

    livc build model.liv --target arm64-linux --weights q8 [--max-len N] [--checkpoint PATH] -o out/
    livc run out/ --prompt-ids 1,2,3 --max-new-tokens 8 [--native]
    livc bench model.liv --target x86 --weights bf16 [-p 64] [-n 32] [-r 3]
    livc tune model.liv --target x86 --trials 64 [--db DIR]

Each takes the parsed arguments and returns an exit code like `commands` (0 ok, 1 input errors, 2 usage).
Backend failures are TvmErrors, printed as `error[E07xx]: message` on stderr (exit 1), never tracebacks.
Their arguments are defined in cli_tvm.py; the runner cache folder comes from cli.py (the environment).
Non-goals: sampling (greedy only), batch > 1, `--format json`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from livc.cli_args import UsageError
from livc.compiler.check import check_path
from livc.compiler.ir.nodes import Model
from livc.compiler.pipeline import compile_checked
from livc.dsl.diagnostics import Severity, count
from livc.outputs import OutputError, write_stdout
from livc.results import diagnostics_text

EXIT_OK, EXIT_ERRORS = 0, 1
RUNNABLE = ("x86", "arm64-linux")  # artifacts `livc run` can run here (arm64-linux: the native runner under qemu)
RUNNER_ARCH = {"x86": "x86_64", "arm64-linux": "aarch64"}  # targets the native runner is built for
RUNNER_DIR = "runner"
DEFAULT_MAX_LEN = 2048


def _status(message: str) -> None:
    sys.stderr.write(message + "\n")


def _error(exc: Exception) -> int:
    code = getattr(exc, "code", "E0700")
    _status(f"error[{code}]: {getattr(exc, 'message', str(exc))}")
    return EXIT_ERRORS


def _guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """TvmError -> a diagnostic line and exit 1 (everything else is left to cli.main)."""

    def run(args: argparse.Namespace) -> int:
        from livc.backends.tvm.errors import TvmError

        try:
            return fn(args)
        except TvmError as exc:
            return _error(exc)

    return run


# ---------------------------------------------------------------------------------------------------------
# Models


@dataclass(frozen=True)
class Compiled:
    lowered: Model  # the lower stage (TVM)
    canonical: Model  # the canonicalize stage (the PyTorch backend: initialisation, reference)
    shown: str  # `model.liv -D d=512`
    sha256: str


def compile_model(args: argparse.Namespace) -> Compiled | None:
    """Both IR stages of the one model in args.file; None after printing diagnostics."""
    from livc.commands import overrides
    from livc.compiler.elaboration.overrides import provenance
    from livc.compiler.resolution.loader import read_file

    defines = overrides(args)
    check = check_path(Path(args.file), defines)
    lowered = compile_checked(check, stop_after="lower")
    deny = getattr(args, "deny_warnings", False)
    if lowered.diagnostics:
        sys.stderr.write(diagnostics_text(lowered.diagnostics, False, deny))
    if not lowered.ok or (deny and count(lowered.diagnostics, Severity.WARNING)):
        return None
    if len(lowered.models) != 1:
        _status(f"error: {args.file} defines {len(lowered.models)} models; the TVM backend builds one")
        return None
    canonical = compile_checked(check, stop_after="canonicalize").models[0]
    shown, text = provenance(args.file, read_file(Path(args.file))[0] or "", defines)
    return Compiled(lowered.models[0], canonical, shown, hashlib.sha256(text.encode()).hexdigest())


def _max_len(args: argparse.Namespace, model: Model) -> int:
    if args.max_len is not None:
        return int(args.max_len)
    return min(DEFAULT_MAX_LEN, model.context or DEFAULT_MAX_LEN)


def _fmt(args: argparse.Namespace) -> str:
    return str(args.weights or "f32")


def _state(args: argparse.Namespace, c: Compiled) -> dict[str, np.ndarray]:
    from livc.backends.tvm.checkpoint import checkpoint_state, initial_state

    if args.checkpoint:
        return checkpoint_state(Path(args.checkpoint), c.canonical)
    return initial_state(c.canonical, args.seed)


def _build(args: argparse.Namespace, c: Compiled, target: Any, max_len: int, fmt: str = "") -> tuple[Any, float]:
    from livc.backends.tvm.compile import BuildOptions, build

    tune_db = Path(args.db) if getattr(args, "db", None) else None
    start = time.perf_counter()
    options = BuildOptions(target=target, weights=fmt or _fmt(args), max_len=max_len, tune_db=tune_db)
    built = build(c.lowered, options)
    return built, time.perf_counter() - start


# ---------------------------------------------------------------------------------------------------------
# livc build --target x86|arm64-linux|arm64-android


def _artifact_dir(args: argparse.Namespace) -> Path:
    if args.output == "-":
        raise UsageError(f"--target {args.target} writes an artifact directory: give -o DIR")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {args.output}: exists and is not a directory (an artifact is a directory)")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise UsageError(f"-o {args.output}: a non-empty directory that is not a livc artifact (it is never replaced)")
    if not out.parent.is_dir():
        raise UsageError(f"-o {args.output}: directory '{out.parent}' does not exist")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise UsageError(f"-o {args.output}: permission denied (cannot create files in '{out.parent}')")
    return out


@_guarded
def cmd_build_tvm(args: argparse.Namespace) -> int:
    from livc.backends.tvm import artifact, targets
    from livc.backends.tvm.quant_report import quantization_error

    out = _artifact_dir(args)
    target = targets.resolve(args.target)
    if args.bundle_runner and target.name not in RUNNER_ARCH:
        raise UsageError(f"--bundle-runner: the native runner is built for {', '.join(RUNNER_ARCH)}, not {target.name}")
    c = compile_model(args)
    if c is None:
        return EXIT_ERRORS
    max_len = _max_len(args, c.lowered)
    state = _state(args, c)  # a bad checkpoint fails before the (long) compile
    built, seconds = _build(args, c, target, max_len)
    packed = built.plan.pack(state)
    quant = quantization_error(built.plan, state, packed)
    device = dict(target.device) if target.device else None  # GPU targets: llvm is then the host
    info = {"name": target.name, "llvm": target.llvm_dict, "device": device, "link_command": target.link_command}
    contents = artifact.Contents(
        plan=built.plan,
        vocab=c.lowered.vocab,
        target=info,
        library=target.library,
        source=artifact.Source(c.lowered.name, c.shown, c.sha256),
        weights=packed,
        export=_exporter(args, built, target),
        decodes=built.decodes,
        runner=f"{RUNNER_DIR}/livc-runner" if args.bundle_runner else None,
        quantization=quant.as_dict(),
    )
    try:
        art = artifact.write(out, contents)
    except OSError as exc:  # disk full, permissions: nothing was replaced (exit 1 like any unwritable output)
        raise OutputError(args.output, exc.strerror or str(exc), usage=False) from exc
    size = art.weights_file.stat().st_size
    _status(
        f"wrote {args.output}: {target.library} ({art.library.stat().st_size / 1e6:.1f} MB, {target.describe()}), "
        f"weights {size / 1e6:.1f} MB {_fmt(args)}, max_len {max_len}, compiled in {seconds:.1f} s"
    )
    _status(quant.describe())
    if target.link_command:
        _status(f"link it on a machine with the Android NDK: {args.output}/link.sh (ANDROID_NDK=...)")
    return EXIT_OK


def _exporter(args: argparse.Namespace, built: Any, target: Any) -> Callable[[Path], Path]:
    """Writes the library (and with --bundle-runner the runner + runtime libraries) into the new artifact."""
    from livc.backends.tvm import native, targets

    def export(directory: Path) -> Path:
        library = targets.export(built.executable, target, directory)
        if target.name == "cuda":  # machine code for the kernels, so the GPU machine needs no CUDA toolkit
            from livc.backends.tvm.gpu import nvcc

            if nvcc.find_nvcc() is not None:
                nvcc.write_fatbins(built.executable.mod, directory, "sm_90")
            else:
                _status("note: nvcc is not installed here: the kernels stay CUDA source, compiled when loaded")
        if args.bundle_runner:
            native.bundle(RUNNER_ARCH[target.name], Path(args.runner_cache), directory / RUNNER_DIR)
        return library

    return export


# ---------------------------------------------------------------------------------------------------------
# livc run ARTIFACT


def prompt_ids(text: str) -> tuple[int, ...]:
    try:
        ids = tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise UsageError(f"--prompt-ids '{text}': expected comma-separated token ids, e.g. 1,2,3") from None
    if not ids:
        raise UsageError("--prompt-ids: give at least one token id")
    return ids


def _check_prompt(ids: tuple[int, ...], vocab: int) -> None:
    bad = [t for t in ids if not 0 <= t < vocab]
    if bad:
        raise UsageError(f"--prompt-ids: token id {bad[0]} is outside the vocabulary (0..{vocab - 1})")


@dataclass(frozen=True)
class Timed:
    tokens: tuple[int, ...]
    prompt: int
    prefill_ms: float
    decoded: int
    decode_ms: float


def _rate(n: int, ms: float) -> str:
    return f"{n * 1000.0 / ms:.1f} tokens/s" if ms > 0 and n else "-"


def _print_timed(t: Timed, how: str) -> None:
    write_stdout(
        f"tokens: {' '.join(map(str, t.tokens))}\n"
        f"prefill: {t.prompt} tokens in {t.prefill_ms:.3f} ms ({_rate(t.prompt, t.prefill_ms)})\n"
        f"decode: {t.decoded} tokens in {t.decode_ms:.3f} ms ({_rate(t.decoded, t.decode_ms)})\n"
    )
    _status(f"ran {how}")


def run_session(session: Any, ids: tuple[int, ...], n: int) -> Timed:
    """Greedy generation with an in-process Session or FfiSession, timed like the native runner."""
    start = time.perf_counter()
    logits = session.prefill(list(ids))
    mid = time.perf_counter()
    out: list[int] = []
    for step in range(n):
        out.append(int(logits[0].argmax()))  # numpy (Session) or torch (FfiSession) logits
        if step + 1 < n:
            logits = session.decode(out[-1])
    end = time.perf_counter()
    return Timed(tuple(out), len(ids), (mid - start) * 1e3, max(n - 1, 0), (end - mid) * 1e3)


@_guarded
def cmd_run(args: argparse.Namespace) -> int:
    from livc.backends.tvm import artifact

    art = artifact.read(Path(args.artifact))
    ids = prompt_ids(args.prompt_ids)
    _check_prompt(ids, int(art.manifest["vocab"]))
    if args.max_new_tokens < 1:
        raise UsageError("--max-new-tokens must be at least 1")
    needed, cap = len(ids) + args.max_new_tokens - 1, art.manifest.get("capacity")
    if cap is not None and needed > cap:
        raise UsageError(f"the prompt and new tokens need {needed} positions; the artifact holds {cap} (--max-len)")
    if art.target == "cuda":
        return _run_cuda(args, art, ids)
    if art.target not in RUNNABLE:
        how = "link it with link.sh and push it to the device" if (art.path / "link.sh").is_file() else "copy it"
        raise UsageError(f"a {art.target} artifact runs on its device, not here: {how} (docs/tvm.md)")
    if args.native or art.target != "x86":
        return _run_native(args, art, ids)
    from livc.backends.tvm.runtime import Session

    session = Session(art, packed=art.load_weights())
    _print_timed(run_session(session, ids, args.max_new_tokens), "in-process (TVM Relax VM, this host)")
    return EXIT_OK


def _run_cuda(args: argparse.Namespace, art: Any, ids: tuple[int, ...]) -> int:
    """A cuda artifact on this machine's NVIDIA GPU: FfiSession (tvm_ffi + the TVM runtime; the kernels'
    fatbins from the artifact)."""
    import torch

    from livc.backends.tvm.errors import TARGET, TvmError
    from livc.backends.tvm.ffi_runtime import FfiSession
    from livc.backends.tvm.gpu import nvcc

    if args.native:
        raise UsageError("--native runs CPU artifacts; a cuda artifact runs in-process on the GPU")
    if not torch.cuda.is_available():
        raise TvmError(TARGET, "a cuda artifact runs on an NVIDIA GPU and this machine has none (torch sees no CUDA)")
    binaries = nvcc.read_fatbins(art.path)
    session = FfiSession(art.library, art.plan, art.load_weights(), "cuda", decodes=art.decodes, cuda_binaries=binaries)
    timed = run_session(session, ids, args.max_new_tokens)
    _print_timed(timed, f"in-process on {torch.cuda.get_device_name(0)} (TVM runtime via tvm_ffi)")
    return EXIT_OK


def _run_native(args: argparse.Namespace, art: Any, ids: tuple[int, ...]) -> int:
    from livc.backends.tvm import native

    arch = RUNNER_ARCH[art.target]
    runner = native.build_runner(arch, Path(args.runner_cache))
    r = native.run(runner, art.path, ids, args.max_new_tokens, arch)
    how = "natively" if arch == "x86_64" else "under qemu-aarch64 (emulated: the timings mean nothing)"
    _print_timed(Timed(r.tokens, r.prompt_tokens, r.prefill_ms, r.decode_tokens, r.decode_ms), f"{how} with {runner}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------
# livc bench (measuring: backends/tvm/bench.py) / livc tune (backends/tvm/tune.py, H4)


@_guarded
def cmd_bench(args: argparse.Namespace) -> int:
    """pp/tg rows per weight format: timed here beside the PyTorch backend, or with --rpc on the remote device."""
    from livc.backends.tvm import bench, targets

    target = targets.resolve(args.target)
    tracker = _tracker(args) if getattr(args, "rpc", None) else None
    if tracker is None and not target.runs_here:
        raise UsageError(
            f"bench measures this host: use --target x86, or --rpc HOST:PORT --key KEY for a {args.target} device"
        )
    c = compile_model(args)
    if c is None:
        return EXIT_ERRORS
    max_len = args.max_len or args.n_prompt + args.n_gen + 1
    state = _state(args, c)
    ids, rows, decodes = bench.prompt(c.lowered, args.n_prompt, args.seed), [], True
    where = f"; timing on {args.key!r}" if tracker else ""
    for fmt in args.weights:
        built, seconds = _build(args, c, target, max_len, fmt)
        _status(f"compiled {fmt} for {target.describe()} in {seconds:.1f} s{where}")
        if tracker is None:
            rows += bench.tvm_rows(built, state, ids, args.n_gen, args.repetitions)
        else:
            rows += _remote_rows(args, built, target, state, ids, tracker)
        decodes = built.decodes
    if tracker is None:
        rows += bench.torch_rows(c.canonical, state, ids, args.n_gen, args.repetitions, max_len, decodes)
    write_stdout(bench.table(c.lowered.name, rows))
    return EXIT_OK


def _tracker(args: argparse.Namespace) -> tuple[str, int]:
    """--rpc HOST:PORT with its --key (bench and tune)."""
    from livc.backends.tvm.gpu import rpc

    if not args.key:
        raise UsageError("--rpc needs --key KEY (the device key the RPC server registered with the tracker)")
    return rpc.endpoint(args.rpc)


def _remote_rows(args: argparse.Namespace, built: Any, target: Any, state: Any, ids: Any, tracker: Any) -> list[Any]:
    """`livc bench --rpc`: the build uploaded to the tracker's --key device and timed there (gpu/rpc_bench.py)."""
    import tempfile

    from livc.backends.tvm.gpu.rpc_bench import bench_remote

    with tempfile.TemporaryDirectory(prefix="livc-bench-") as tmp:
        return bench_remote(
            built, target, built.plan.pack(state), tracker, args.key, ids, args.n_gen, args.repetitions, Path(tmp)
        )


@_guarded
def cmd_tune(args: argparse.Namespace) -> int:
    from livc.backends.tvm import targets, tune
    from livc.backends.tvm.errors import TARGET, TvmError

    target = targets.resolve(args.target)
    if getattr(args, "rpc", None):
        return _tune_rpc(args, target)
    if not target.runs_here:
        raise TvmError(
            TARGET,
            f"tuning times kernels on the machine that runs them: {args.target} needs an RPC runner on the device "
            "(not implemented by livc tune); tune --target x86 here",
        )
    c = compile_model(args)
    if c is None:
        return EXIT_ERRORS
    db = Path(args.db)
    options = tune.TuneOptions(db, args.trials, target, args.weights, _max_len(args, c.lowered), seed=args.seed)
    report = tune.tune(c.lowered, options, progress=_status)
    write_stdout(
        f"tuned {len(report.tasks)} kernels of decode_step ({len(report.reused)} reused from the database, "
        f"{len(report.skipped)} not tunable) in {report.seconds:.0f} s; "
        f"{report.records} records in {db}\n"
        f"apply them: livc build {args.file} --target {args.target} --weights {args.weights} --db {db} -o out/\n"
    )
    return EXIT_OK


def _tune_rpc(args: argparse.Namespace, target: Any) -> int:
    """`livc tune --rpc HOST:PORT --key KEY`: candidates built here, timed on the remote device (gpu/rpc.py)."""
    from livc.backends.tvm import tune
    from livc.backends.tvm.gpu import rpc

    tracker = _tracker(args)
    c = compile_model(args)
    if c is None:
        return EXIT_ERRORS
    db = Path(args.db)
    options = tune.TuneOptions(db, args.trials, target, args.weights, _max_len(args, c.lowered), seed=args.seed)
    report = rpc.tune_remote(c.lowered, options, tracker, args.key, progress=_status)
    write_stdout(
        f"tuned {len(report.tasks)} kernels of decode_step on {args.key} in {report.seconds:.0f} s; "
        f"{report.records} records in {db}\n"
    )
    return EXIT_OK
