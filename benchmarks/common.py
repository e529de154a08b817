"""Shared helpers of the runtime benchmarks (torch_vs_hf.py, hyena_edge_vs_transformer.py).

Timing (warm-ups, repeats, median, device synchronisation), peak-memory meters (CUDA allocator
peak; CPU peak RSS via /proc), the device-to-device copy bandwidth used for the decode roofline,
the machine description written into every JSON result, the common command-line options, and
rich tables. Everything here depends only on torch, rich and the standard library.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import platform
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}
MiB = 1024 * 1024


# --------------------------------------------------------------------------------------------- setup


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """--device, --dtype, --quick, --repeat, --warmup, --threads, --out: shared by every benchmark."""
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="fp32")
    parser.add_argument("--quick", action="store_true", help="CI-sized run: short sequences, fewer repeats")
    parser.add_argument("--repeat", type=int, default=None, help="timed repeats (median reported)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed warm-up runs before timing")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the CPU count)")
    parser.add_argument("--out", type=Path, default=None, help="JSON output path")


def setup_torch(device: str, threads: int | None) -> int:
    """Seed, set torch's intra-op threads (default: all CPUs) and check the device; returns the thread count."""
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch")
    n = threads or os.cpu_count() or 1
    torch.set_num_threads(n)
    torch.manual_seed(0)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 on both sides of every comparison
        torch.backends.cudnn.allow_tf32 = False
    return torch.get_num_threads()


# --------------------------------------------------------------------------------------------- timing


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_once(fn: Callable[[], object], device: str) -> float:
    """Wall-clock seconds of one call, with the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def time_repeats(fn: Callable[[], object], device: str, warmup: int, repeat: int) -> list[float]:
    """`warmup` untimed calls, then `repeat` timed calls; the list of seconds."""
    for _ in range(warmup):
        fn()
    return [time_once(fn, device) for _ in range(repeat)]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


@dataclass(frozen=True)
class Timing:
    """Median and spread of repeated measurements (seconds, or any unit the caller uses)."""

    median: float
    minimum: float
    maximum: float
    samples: tuple[float, ...]

    @staticmethod
    def of(samples: Sequence[float]) -> Timing:
        return Timing(median(samples), min(samples), max(samples), tuple(samples))

    def to_json(self, scale: float = 1.0) -> dict[str, Any]:
        return {
            "median": self.median * scale,
            "min": self.minimum * scale,
            "max": self.maximum * scale,
            "samples": [s * scale for s in self.samples],
        }


# --------------------------------------------------------------------------------------------- memory


def _proc_status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _malloc_trim() -> None:
    """Return freed heap memory to the OS so that a later RSS peak is not hidden by glibc's free lists."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_rss_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs); False where refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    hwm, rss = _proc_status_kib("VmHWM"), _proc_status_kib("VmRSS")
    return hwm is not None and rss is not None and hwm <= rss + 1024


class _RssSampler(threading.Thread):
    """Fallback when VmHWM cannot be reset: sample VmRSS every millisecond, keep the maximum."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kib = _proc_status_kib("VmRSS") or 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak_kib = max(self.peak_kib, _proc_status_kib("VmRSS") or 0)
            time.sleep(0.001)

    def finish(self) -> int:
        self._done.set()
        self.join()
        return self.peak_kib


class PeakMemory:
    """Peak memory above a baseline, over the calls made between start() and stop() (bytes).

    CUDA: torch.cuda.max_memory_allocated() - memory_allocated() at start (the caching allocator's
    live tensors, not its reserve). CPU: peak resident set size (VmHWM, reset through
    /proc/self/clear_refs, or a 1 ms VmRSS sampler where that is refused) - VmRSS at start, after
    gc and malloc_trim; it includes allocator and page-granularity overheads.
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self.method = "cuda.max_memory_allocated" if device == "cuda" else "VmHWM"
        self._base = 0
        self._sampler: _RssSampler | None = None

    def start(self) -> None:
        gc.collect()
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return
        _malloc_trim()
        if _reset_rss_peak():
            self.method = "VmHWM"
        else:
            self.method = "VmRSS sampler (1 ms)"
            self._sampler = _RssSampler()
            self._sampler.start()
        self._base = (_proc_status_kib("VmRSS") or 0) * 1024

    def stop(self) -> int:
        if self.device == "cuda":
            torch.cuda.synchronize()
            return int(torch.cuda.max_memory_allocated() - self._base)
        if self._sampler is not None:
            peak = self._sampler.finish() * 1024
            self._sampler = None
        else:
            peak = (_proc_status_kib("VmHWM") or 0) * 1024
        return max(0, peak - self._base)


def measure_peak(fn: Callable[[], object], device: str) -> tuple[int, str]:
    """(peak bytes above the baseline while `fn` runs, how it was measured)."""
    meter = PeakMemory(device)
    meter.start()
    fn()
    return meter.stop(), meter.method


# --------------------------------------------------------------------------------------------- bandwidth


def copy_bandwidth(device: str, nbytes: int = 1 << 30, repeat: int = 10) -> float:
    """Bytes per second of a large tensor copy on `device`, counting bytes read + bytes written (median)."""
    n = nbytes // 4
    src = torch.empty(n, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    times = time_repeats(lambda: dst.copy_(src), device, warmup=3, repeat=repeat)
    return 2 * n * 4 / median(times)


def read_bandwidth(device: str, nbytes: int = 1 << 30, repeat: int = 10) -> float:
    """Bytes per second of a read-only pass (a sum) over a large tensor: a tighter bound than a copy on CPUs,
    where a copy's writes also cost a read (write-allocate) that the copy figure does not count."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    times = time_repeats(lambda: src.sum(), device, warmup=3, repeat=repeat)
    return (nbytes // 4) * 4 / median(times)


@dataclass(frozen=True)
class Roofline:
    """Batch-1 decode bound: every weight and the whole cache read once per token at copy bandwidth."""

    weight_bytes: int
    cache_bytes: int
    bandwidth: float  # bytes/s of a copy, read + write
    read_bandwidth: float | None = None  # bytes/s of a read-only pass, for reference

    @property
    def bytes_per_token(self) -> int:
        return self.weight_bytes + self.cache_bytes

    @property
    def ms_per_token(self) -> float:
        return 1e3 * self.bytes_per_token / self.bandwidth

    def fraction(self, measured_ms: float) -> float:
        return self.ms_per_token / measured_ms

    def read_fraction(self, measured_ms: float) -> float | None:
        if self.read_bandwidth is None:
            return None
        return 1e3 * self.bytes_per_token / self.read_bandwidth / measured_ms

    def to_json(self) -> dict[str, Any]:
        return {
            "weight_bytes": self.weight_bytes,
            "cache_bytes": self.cache_bytes,
            "bytes_per_token": self.bytes_per_token,
            "copy_bandwidth_GBps": self.bandwidth / 1e9,
            "roofline_ms_per_token": self.ms_per_token,
            "read_bandwidth_GBps": None if self.read_bandwidth is None else self.read_bandwidth / 1e9,
        }


# --------------------------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_smi() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine_info(device: str, threads: int) -> dict[str, Any]:
    """What ran the benchmark: CPU model and count, torch threads, GPU (nvidia-smi), library versions, load."""
    info: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "torch": torch.__version__,
        "load_average": list(os.getloadavg()),
        "device": device,
    }
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        info["transformers"] = None
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        info["nvidia_smi"] = _nvidia_smi()
        info["cuda"] = torch.version.cuda
    return info


def describe_machine(info: dict[str, Any]) -> str:
    text = f"{info['cpu_model']} ({info['cpu_count']} CPUs, torch threads = {info['torch_threads']})"
    if info.get("gpu"):
        text += f"; GPU {info.get('nvidia_smi') or info['gpu']}"
    return text + f"; torch {info['torch']}, transformers {info.get('transformers')}"


# --------------------------------------------------------------------------------------------- output


def make_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    table = Table(title=title)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def console() -> Console:
    return Console(width=160)


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def default_out(stem: str, device: str, dtype: str, quick: bool) -> Path:
    suffix = "_quick" if quick else ""
    return RESULTS / f"{stem}_{device}_{dtype}{suffix}.json"


def fmt(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}x"
