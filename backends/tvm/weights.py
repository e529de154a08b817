"""Storage formats of matrix weights: f32, f16, bf16, q8 (like llama.cpp Q8_0) and q4 (like Q4_0).

    storage(shape, fmt) -> ((suffix, shape, dtype), ...)   what the entry function takes for one matrix
    pack(w, fmt)        -> {suffix: np.ndarray}            torch layout [*lead, out, inp] f32 -> storage
    unpack(arrays, fmt, shape) -> np f32 [*lead, out, inp] the reference dequantisation (what kernels compute)

Layout (all formats): rows are packed by LANES=16 output rows, `[*lead, out_p/16, inp_s, 16]`, so both the
decode GEMV (16 output rows per vector) and the prefill GEMM (6x16 register tiles) read contiguous vectors and
the weights are stored once. `out_p` is `out` rounded up to 16; pad rows are zero and never read into results.
- f32 / f16: the values, `inp_s = inp`. bf16: the upper 16 bits of the f32 (round to nearest even) as uint16
  (numpy has no bfloat16; kernels rebuild the f32 by a 16-bit shift).
- q8: int8 `q` with `inp_s = ceil(inp/32)*32` and one f16 scale per group of 32 inputs (`.scale`,
  `[*lead, out_p/16, groups, 16]`): w = q * d, d = amax/127 rounded to f16, q = round(w/d) in [-127, 127].
- q4: uint8 `q` with `inp_s = ceil(inp/32)*16` bytes: in group g, byte g*16+j holds input 32g+j in its low
  nibble and 32g+16+j in its high nibble (Q4_0 order), w = (nibble - 8) * d with d = m / -8 (m: the value of
  largest magnitude, f16), nibble = clip(floor(w/d + 8.5), 0, 15).
- Partial groups (inp not a multiple of 32): the last group is padded with zeros before quantising, so its
  scale comes from the real values only; pad inputs decode to 0 and kernels never read them.

Preconditions: finite f32 weights, `out >= 1`, `inp >= 1`. Non-goals: other block sizes, k-quants, f16
overflow handling (values beyond 65504 are rejected).
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from livc.backends.tvm.errors import ARTIFACT, UNSUPPORTED, TvmError

Format = Literal["f32", "f16", "bf16", "q8", "q4"]
FORMATS: tuple[str, ...] = get_args(Format)
LANES = 16  # output rows per packed vector
GROUP = 32  # inputs per quantisation scale
Spec = tuple[str, tuple[int, ...], str]  # (suffix, shape, dtype)

DATA = ""  # suffix of the values / quants
SCALE = ".scale"  # suffix of the q8/q4 scales
_VALUE_DTYPE = {"f32": "float32", "f16": "float16", "bf16": "uint16", "q8": "int8", "q4": "uint8"}


def check_format(fmt: str) -> Format:
    if fmt not in FORMATS:
        raise TvmError(UNSUPPORTED, f"weights: unknown storage format {fmt!r} (expected one of {', '.join(FORMATS)})")
    return fmt  # type: ignore[return-value]


def _ceil(n: int, k: int) -> int:
    return -(-n // k) * k


def quantized(fmt: str) -> bool:
    return fmt in ("q8", "q4")


def groups(inp: int) -> int:
    return _ceil(inp, GROUP) // GROUP


def inner(inp: int, fmt: str) -> int:
    """The stored length of the input axis: inp (f32/f16/bf16), padded to 32 (q8), bytes (q4)."""
    if fmt == "q8":
        return _ceil(inp, GROUP)
    if fmt == "q4":
        return _ceil(inp, GROUP) // 2
    return inp


def storage(shape: tuple[int, ...], fmt: str) -> tuple[Spec, ...]:
    """The stored arrays of a [*lead, out, inp] matrix in format `fmt`, in entry-function order."""
    check_format(fmt)
    if len(shape) < 2 or min(shape) < 1:
        raise TvmError(UNSUPPORTED, f"weights: a matrix weight needs a shape [*lead, out, inp], got {shape}")
    *lead, out, inp = shape
    blocks = _ceil(out, LANES) // LANES
    data = (DATA, (*lead, blocks, inner(inp, fmt), LANES), _VALUE_DTYPE[fmt])
    if not quantized(fmt):
        return (data,)
    return data, (SCALE, (*lead, blocks, groups(inp), LANES), "float16")


# ------------------------------------------------------------------------------------------------ pack


def _blocked(w: np.ndarray) -> np.ndarray:
    """[*lead, out, inp] -> [*lead, out_p/16, inp, 16] (zero pad rows)."""
    *lead, out, inp = w.shape
    pad = _ceil(out, LANES) - out
    w = np.pad(w, [(0, 0)] * len(lead) + [(0, pad), (0, 0)])
    w = w.reshape(*lead, -1, LANES, inp)
    return np.ascontiguousarray(np.swapaxes(w, -1, -2))


def _unblocked(b: np.ndarray, out: int) -> np.ndarray:
    """[*lead, out_p/16, inp, 16] -> [*lead, out, inp]."""
    w = np.swapaxes(b, -1, -2)
    w = w.reshape(*w.shape[:-3], -1, w.shape[-1])
    return np.ascontiguousarray(w[..., :out, :])


def _bf16_bits(w: np.ndarray) -> np.ndarray:
    bits = w.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def _grouped(w: np.ndarray) -> np.ndarray:
    """[*lead, out, inp] -> [*lead, out, groups, 32] with the partial last group zero-padded."""
    inp = w.shape[-1]
    w = np.pad(w, [(0, 0)] * (w.ndim - 1) + [(0, _ceil(inp, GROUP) - inp)])
    return w.reshape(*w.shape[:-1], -1, GROUP)


def _f16_scale(d: np.ndarray) -> np.ndarray:
    return d.astype(np.float16).astype(np.float32)


def _q8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> q int8 [*lead, out, groups*32], d f32 (f16-exact) [*lead, out, groups]."""
    g = _grouped(w)
    d = _f16_scale(np.abs(g).max(axis=-1) / 127.0)
    safe = np.where(d == 0, 1.0, d)[..., None]
    q = np.clip(np.rint(g / safe), -127, 127).astype(np.int8)
    return q.reshape(*q.shape[:-2], -1), d


def _q4(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> nibbles uint8 [*lead, out, groups*32] (in input order), d f32 (f16-exact) [*lead, out, groups]."""
    g = _grouped(w)
    idx = np.abs(g).argmax(axis=-1)[..., None]
    m = np.take_along_axis(g, idx, axis=-1)[..., 0]
    d = _f16_scale(m / -8.0)
    safe = np.where(d == 0, 1.0, d)[..., None]
    q = np.clip(np.floor(g / safe + 8.5), 0, 15).astype(np.uint8)
    return q.reshape(*q.shape[:-2], -1), d


def _nibbles(q: np.ndarray) -> np.ndarray:
    """[..., groups*32] nibbles in input order -> [..., groups*16] bytes (low: j, high: j + 16)."""
    g = q.reshape(*q.shape[:-1], -1, 2, 16)
    return (g[..., 0, :] | (g[..., 1, :] << 4)).reshape(*q.shape[:-1], -1)


def _from_nibbles(b: np.ndarray) -> np.ndarray:
    g = b.reshape(*b.shape[:-1], -1, 16)
    return np.stack([g & 15, g >> 4], axis=-2).reshape(*b.shape[:-1], -1)


def _check_values(w: np.ndarray, fmt: str) -> np.ndarray:
    if w.ndim < 2 or min(w.shape) < 1:
        raise TvmError(UNSUPPORTED, f"weights: a matrix weight needs a shape [*lead, out, inp], got {w.shape}")
    w = np.asarray(w, dtype=np.float32)
    if not np.isfinite(w).all():
        raise TvmError(ARTIFACT, "weights: a matrix weight holds NaN or infinity")
    if fmt == "f16" and np.abs(w).max() > 65504.0:
        raise TvmError(ARTIFACT, f"weights: |w| up to {np.abs(w).max():.4g} does not fit f16 (max 65504)")
    return w


def pack(w: np.ndarray, fmt: str) -> dict[str, np.ndarray]:
    """Torch-layout f32 [*lead, out, inp] -> the stored arrays of `storage(w.shape, fmt)`."""
    check_format(fmt)
    w = _check_values(w, fmt)
    if fmt == "f32":
        return {DATA: _blocked(w)}
    if fmt == "f16":
        return {DATA: _blocked(w.astype(np.float16))}
    if fmt == "bf16":
        return {DATA: _blocked(_bf16_bits(w))}
    q, d = _q8(w) if fmt == "q8" else _q4(w)
    data = q if fmt == "q8" else _nibbles(q)
    return {DATA: _blocked(data), SCALE: _blocked(d.astype(np.float16))}


def unpack(arrays: dict[str, np.ndarray], fmt: str, shape: tuple[int, ...]) -> np.ndarray:
    """The stored arrays -> f32 [*lead, out, inp] exactly as the kernels dequantise them."""
    check_format(fmt)
    *_, out, inp = shape
    data = _unblocked(arrays[DATA], out)
    if fmt == "f32":
        return data.astype(np.float32)
    if fmt == "f16":
        return data.astype(np.float32)
    if fmt == "bf16":
        return (data.astype(np.uint32) << 16).view(np.float32)
    d = _unblocked(arrays[SCALE], out).astype(np.float32)
    q = data.astype(np.float32) if fmt == "q8" else _from_nibbles(data).astype(np.float32) - 8.0
    w = q.reshape(*q.shape[:-1], -1, GROUP) * d[..., None]
    return np.ascontiguousarray(w.reshape(*w.shape[:-2], -1)[..., :inp])


def nbytes(shape: tuple[int, ...], fmt: str) -> int:
    """Bytes stored for one matrix (the decode roofline counts these)."""
    return sum(int(np.prod(s)) * np.dtype(dt).itemsize for _, s, dt in storage(shape, fmt))
