"""The deployable artifact of `livc build --target x86|arm64-linux|arm64-android`: one directory holding

    model.so | model.tar (+ link.sh)   the compiled Relax VM library (targets.export)
    weights.safetensors                 every weight input of the entry functions, named as in the plan, stored in
                                        the chosen format (f32 / f16 / bf16 as uint16 / q8 / q4 + f16 scales)
    manifest.json                       what a runner needs: entry functions and their argument order, cache
                                        entries (shape, dtype, bytes), weight inputs, format, max_len, vocab,
                                        the livc version, the source hash and the target

    write(out, Contents) -> Artifact    atomic: built in a temporary sibling directory and renamed into place
    read(path) -> Artifact              validated; TvmError E0703 naming what is wrong

Entry functions (the contract of compile.py): `prefill(tokens, *cache, *weights) -> (logits, *cache)` and
`decode_step(tokens, pos, *cache, *weights) -> (logits, *cache)`; the manifest spells the order out as
"tokens", "pos", "cache:KEY", "weight:NAME" so runners (runner.cc, runtime.Session) never hard-code it.
Where the weights come from (a checkpoint, or the PyTorch initialisation) is `checkpoint.py`'s business.

Non-goals: sharded weight files; an artifact directory holding anything else (it is replaced whole).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from livc import __version__
from livc.backends.tvm.errors import ARTIFACT, TvmError
from livc.backends.tvm.plan import CacheEntry, Plan, WeightInput, capacity

FORMAT = "livc-tvm-artifact"
FORMAT_VERSION = 1
MANIFEST, WEIGHTS = "manifest.json", "weights.safetensors"
# numpy dtype name -> safetensors dtype tag (the stored arrays of weights.storage)
ST_DTYPES = {"float32": "F32", "float16": "F16", "uint16": "U16", "int8": "I8", "uint8": "U8", "int32": "I32"}


@dataclass(frozen=True)
class Source:
    """Where the model came from: the shown name (`model.liv -D d=512`) and the sha256 of the text it covers."""

    model: str
    file: str
    sha256: str


@dataclass(frozen=True)
class Contents:
    """What goes into an artifact. `export(dir) -> library path` writes the compiled library into `dir`."""

    plan: Plan
    vocab: int
    target: dict[str, Any]  # {"name": ..., "llvm": {...}, "link_command": ...}
    library: str
    source: Source
    weights: list[np.ndarray]  # in plan.weight_inputs order
    export: Callable[[Path], Path]
    decodes: bool = True  # False: no decode_step (bidirectional attention)
    runner: str | None = None  # a bundled native runner (relative path), written by `export`
    quantization: dict[str, Any] | None = None  # quant_report.QuantError.as_dict(): stored vs f32 weights


@dataclass(frozen=True)
class Artifact:
    """A validated artifact directory and its manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def library(self) -> Path:
        return self.path / str(self.manifest["library"])

    @property
    def weights_file(self) -> Path:
        return self.path / str(self.manifest["weights"]["file"])

    @property
    def target(self) -> str:
        return str(self.manifest["target"]["name"])

    @property
    def decodes(self) -> bool:
        return "decode_step" in self.manifest["entries"]

    @property
    def executable(self) -> Any:
        """The library loaded into this process (only for a target this host runs: x86)."""
        import tvm

        try:
            return tvm.runtime.load_module(str(self.library))
        except Exception as exc:  # tvm raises its own error types for foreign or broken libraries
            raise _bad(self.path, f"cannot load {self.library.name} here ({type(exc).__name__}: {exc})") from exc

    @property
    def plan(self) -> Plan:
        """The build plan as recorded (enough to allocate the cache and order the weight arguments)."""
        m = self.manifest
        inputs = tuple(
            WeightInput(w["name"], w["param"], w["suffix"], tuple(w["shape"]), w["dtype"]) for w in m["weight_inputs"]
        )
        cache = tuple(
            CacheEntry(c["key"], tuple(c["shape"]), c["dtype"], c["position_axis"], c["window"]) for c in m["cache"]
        )
        shapes = tuple((p, tuple(s)) for p, s in m["params"])
        return Plan(m["weights"]["format"], m["max_len"], frozenset(m["matrices"]), shapes, inputs, cache)

    def load_weights(self) -> list[np.ndarray]:
        """The weight arguments in `weight_inputs` order (checked against the manifest)."""
        tensors = _read_safetensors(self.weights_file)
        return [tensors[w["name"]] for w in self.manifest["weight_inputs"]]


# ---------------------------------------------------------------------------------------------------------
# Manifest


def entries(plan: Plan, decodes: bool = True) -> dict[str, dict[str, list[str]]]:
    """Argument and output order of the entry functions (see the module docstring)."""
    cache = [f"cache:{c.key}" for c in plan.cache]
    weights = [f"weight:{w.name}" for w in plan.weight_inputs]
    outputs = ["logits", *cache]
    out = {"prefill": {"args": ["tokens", *cache, *weights], "outputs": outputs}}
    if decodes:
        out["decode_step"] = {"args": ["tokens", "pos", *cache, *weights], "outputs": outputs}
    return out


def _nbytes(shape: tuple[int, ...], dtype: str) -> int:
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def manifest(c: Contents, weight_bytes: int) -> dict[str, Any]:
    plan = c.plan
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "livc": __version__,
        "model": c.source.model,
        "source": {"file": c.source.file, "sha256": c.source.sha256},
        "target": c.target,
        "library": c.library,
        "runner": c.runner,
        "weights": {"file": WEIGHTS, "format": plan.fmt, "bytes": weight_bytes},
        "vocab": c.vocab,
        "max_len": plan.max_len,
        "capacity": capacity(plan),
        "entries": entries(plan, c.decodes),
        "cache": [
            {
                "key": e.key,
                "shape": list(e.shape),
                "dtype": e.dtype,
                "bytes": _nbytes(e.shape, e.dtype),
                "position_axis": e.position_axis,
                "window": e.window,
            }
            for e in plan.cache
        ],
        "weight_inputs": [
            {
                "name": w.name,
                "param": w.param,
                "suffix": w.suffix,
                "shape": list(w.shape),
                "dtype": w.dtype,
                "bytes": _nbytes(w.shape, w.dtype),
            }
            for w in plan.weight_inputs
        ],
        "params": [[pid, list(shape)] for pid, shape in plan.shapes],
        "matrices": sorted(plan.matrices),
        "quantization": c.quantization,
    }


# ---------------------------------------------------------------------------------------------------------
# safetensors (written and read here: the format is an 8-byte header length, a JSON header, the data)


def safetensors_header(named: list[tuple[str, np.ndarray]], metadata: dict[str, str]) -> bytes:
    """The 8-byte length and JSON header of a safetensors file holding `named` in that order, back to back
    (the header is padded with spaces to a multiple of 8 bytes, as the format allows)."""
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for name, arr in named:
        header[name] = {
            "dtype": ST_DTYPES[arr.dtype.name],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + arr.nbytes],
        }
        offset += arr.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file, as read-only views of a memory map (no copy)."""
    try:
        with path.open("rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        data = np.memmap(path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as exc:
        raise TvmError(ARTIFACT, f"{path}: not a readable safetensors file ({exc})") from exc
    tags = {v: k for k, v in ST_DTYPES.items()}
    out = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        lo, hi = (8 + n + int(o) for o in spec["data_offsets"])
        if spec.get("dtype") not in tags or hi > len(data):
            raise TvmError(ARTIFACT, f"{path}: tensor {name} has an unknown dtype or lies beyond the file's end")
        out[name] = data[lo:hi].view(tags[spec["dtype"]]).reshape(spec["shape"])
    return out


# ---------------------------------------------------------------------------------------------------------
# Writing


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise TvmError(ARTIFACT, f"{out} exists and is not a directory (an artifact is a directory)")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise TvmError(ARTIFACT, f"{out} is a non-empty directory that is not a livc artifact; refusing to replace it")
    if not out.parent.is_dir():
        raise TvmError(ARTIFACT, f"directory '{out.parent}' does not exist")


def _write_weights(path: Path, c: Contents) -> int:
    names = [w.name for w in c.plan.weight_inputs]
    for w, arr in zip(c.plan.weight_inputs, c.weights):
        if tuple(arr.shape) != w.shape or arr.dtype.name != w.dtype:
            raise TvmError(
                ARTIFACT, f"weight {w.name}: got {arr.dtype.name}{list(arr.shape)}, need {w.dtype}{list(w.shape)}"
            )
    arrays = [np.ascontiguousarray(a) for a in c.weights]
    head = safetensors_header(list(zip(names, arrays)), {"format": c.plan.fmt, "livc": __version__})
    with path.open("wb") as f:
        f.write(head)
        for arr in arrays:
            f.write(memoryview(arr.reshape(-1)).cast("B"))
    return path.stat().st_size


def write(out: Path, c: Contents) -> Artifact:
    """Write the artifact directory `out` atomically (a failure leaves any previous artifact in place)."""
    _check_out(out)
    if len(c.weights) != len(c.plan.weight_inputs):
        raise TvmError(ARTIFACT, f"{len(c.weights)} weight arrays for {len(c.plan.weight_inputs)} weight inputs")
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name[:64]}.", suffix=".tmp"))
    try:
        c.export(tmp)
        size = _write_weights(tmp / WEIGHTS, c)
        text = json.dumps(manifest(c, size), indent=2, sort_keys=True) + "\n"
        (tmp / MANIFEST).write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o777 & ~_umask())
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return read(out)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _swap(tmp: Path, out: Path) -> None:
    """Rename `tmp` to `out`; an existing artifact is moved aside first and removed after."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name[:64]}.", suffix=".old"))
    os.rename(out, old / "a")
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old / "a", out)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------
# Reading


def _bad(path: Path, why: str) -> TvmError:
    return TvmError(ARTIFACT, f"{path} is not a usable livc artifact: {why}")


def read(path: Path) -> Artifact:
    """Open and validate an artifact directory; E0703 saying what is wrong."""
    file = path / MANIFEST
    if not path.is_dir():
        raise _bad(path, "not a directory")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _bad(path, f"cannot read {MANIFEST} ({exc})") from exc
    _check_manifest(path, doc)
    art = Artifact(path, doc)
    _check_files(art)
    return art


REQUIRED = ("format", "format_version", "livc", "target", "library", "weights", "vocab", "max_len", "entries")
REQUIRED += ("cache", "weight_inputs", "params", "matrices")


def _check_manifest(path: Path, doc: Any) -> None:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _bad(path, f"{MANIFEST} is not a {FORMAT} manifest")
    missing = [k for k in REQUIRED if k not in doc]
    if missing:
        raise _bad(path, f"{MANIFEST} lacks {', '.join(missing)}")
    if doc["format_version"] != FORMAT_VERSION:
        raise _bad(path, f"format version {doc['format_version']} (this livc reads version {FORMAT_VERSION})")
    if "prefill" not in doc["entries"] or not set(doc["entries"]) <= {"prefill", "decode_step"}:
        raise _bad(path, "the entry functions must be prefill and (optionally) decode_step")


def _check_files(art: Artifact) -> None:
    if not art.library.is_file():
        raise _bad(art.path, f"the library {art.library.name} is missing")
    if not art.weights_file.is_file():
        raise _bad(art.path, f"the weights file {art.weights_file.name} is missing")
    size = art.weights_file.stat().st_size
    if size != art.manifest["weights"].get("bytes", size):
        raise _bad(
            art.path, f"{art.weights_file.name} has {size} bytes, the manifest says {art.manifest['weights']['bytes']}"
        )
    header = _safetensors_header(art.weights_file)
    for w in art.manifest["weight_inputs"]:
        spec = header.get(w["name"])
        if spec is None:
            raise _bad(art.path, f"{art.weights_file.name} has no tensor {w['name']}")
        if spec.get("shape") != w["shape"] or spec.get("dtype") != ST_DTYPES.get(w["dtype"]):
            raise _bad(
                art.path,
                f"tensor {w['name']} is {spec.get('dtype')}{spec.get('shape')}, "
                f"the manifest says {w['dtype']}{w['shape']}",
            )


def _safetensors_header(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n > 100_000_000:
                raise ValueError("header too large")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as exc:
        raise _bad(path.parent, f"{path.name} is not a safetensors file ({exc})") from exc
    if not isinstance(header, dict):
        raise _bad(path.parent, f"{path.name} is not a safetensors file")
    return header
