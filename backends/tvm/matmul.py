"""Matrix weights and products: `Weight`, `linear`, `gather_rows`, and the TE kernels behind them.

    linear(ctx, x [1, T, inp], w, bias) -> [1, T, out] = x @ W.T (+ bias)
        decode (T == 1): GEMV kernel "livc_gemv"; otherwise GEMM "livc_gemm" on rows padded to ROWS (6) inside
        the kernel (pad block "livc_pad"), sliced back to T in the same kernel.
    gather_rows(ctx, w, tokens [1, T] int32) -> [1, T, inp] rows of W (embedding) in any format.

Weights arrive in the storage of weights.py (packed [out_p/16, inp_s, 16] + scales); each kernel dequantises
inside the reduction (block "livc_dequant": f16/bf16 -> f32, q8/q4 codes * f16 scale) and accumulates in f32.
The q8/q4 GEMV takes the scale and the q4 offset out of the inner sum (per-group partial sums "livc_gpart" of
x * raw code, then sum_g d * (part - 8 * sum of x over the group)): one FMA per weight instead of three ops.
Every PrimFunc carries `"livc.kernel"` ("gemv", "gemm", "gather") and the blocks keep their names through
FuseOps/FuseTIR, so schedules.py dispatches on them. The matmul kernels are marked op_pattern 4
(out-elementwise fusable) so that bias / activation epilogues fuse into them.

Preconditions: `x` is [1, T, I] f32 with I == w.inp; `bias` is [out] f32. Non-goals: batch > 1, int8
activations (llama.cpp-style integer dot products): the math is f32 throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tvm import relax, te, tirx

from livc.backends.tvm import weights as W
from livc.backends.tvm.errors import UNSUPPORTED, TvmError

if TYPE_CHECKING:
    from livc.backends.tvm.context import EmitCtx

ROWS = 6  # GEMM register tile: 6 rows x 16 output lanes
KERNEL_ATTR = "livc.kernel"
OUT_EWISE_FUSABLE = 4  # relay/relax OpPatternKind
Value = Callable[..., tirx.Expr]  # (row block, input index, lane) -> f32 weight


@dataclass(frozen=True)
class Weight:
    """One matrix parameter in its storage format: `inputs` are the entry-function vars, in the order of
    `weights.storage(shape, fmt)` (f32/f16/bf16: the packed values; q8/q4: the codes, then the scales)."""

    fmt: str
    inputs: tuple[relax.Expr, ...]
    out: int
    inp: int


# --------------------------------------------------------------------------------------------- dequant


def _f32(v: tirx.Expr) -> tirx.Expr:
    return v if v.dtype == "float32" else tirx.Cast("float32", v)


def _bf16(v: tirx.Expr) -> tirx.Expr:
    bits = tirx.shift_left(tirx.Cast("uint32", v), tirx.const(16, "uint32"))
    return tirx.reinterpret("float32", bits)


def _q4_nibble(data: te.Tensor, ob: tirx.Expr, i: tirx.Expr, lane: tirx.Expr) -> tirx.Expr:
    """The raw 4-bit code (0..15) of input i as f32."""
    byte = data[ob, (i // W.GROUP) * 16 + i % 16, lane]
    shift = tirx.Cast("uint8", (i % W.GROUP) // 16 * 4)
    return tirx.Cast("float32", tirx.bitwise_and(tirx.shift_right(byte, shift), tirx.const(15, "uint8")))


def _q4_code(data: te.Tensor, ob: tirx.Expr, i: tirx.Expr, lane: tirx.Expr) -> tirx.Expr:
    return _q4_nibble(data, ob, i, lane) - tirx.const(8.0, "float32")


def value_fn(fmt: str, data: te.Tensor, scale: te.Tensor | None) -> Value:
    """The f32 weight at (row block, input, lane) of stored arrays `data` (+ `scale`) in format `fmt`."""
    if fmt in ("f32", "f16"):
        return lambda ob, i, lane: _f32(data[ob, i, lane])
    if fmt == "bf16":
        return lambda ob, i, lane: _bf16(data[ob, i, lane])
    assert scale is not None
    if fmt == "q8":
        return lambda ob, i, lane: _f32(data[ob, i, lane]) * _f32(scale[ob, i // W.GROUP, lane])
    if fmt == "q4":
        return lambda ob, i, lane: _q4_code(data, ob, i, lane) * _f32(scale[ob, i // W.GROUP, lane])
    raise TvmError(UNSUPPORTED, f"matmul: unknown weight format {fmt!r}")


def _split(fmt: str, stored: tuple[te.Tensor, ...]) -> tuple[te.Tensor, te.Tensor | None]:
    return stored[0], (stored[1] if W.quantized(fmt) else None)


def dequant(fmt: str, stored: tuple[te.Tensor, ...], inp: int) -> te.Tensor:
    """Block "livc_dequant": [out_p/16, inp, 16] f32 (schedules inline it into the reduction)."""
    data, scale = _split(fmt, stored)
    value = value_fn(fmt, data, scale)
    blocks = data.shape[0]
    return te.compute((blocks, inp, W.LANES), lambda ob, i, lane: value(ob, i, lane), name="livc_dequant")


# --------------------------------------------------------------------------------------------- kernels


def _product(x: te.Tensor, wd: te.Tensor, rows: tirx.Expr, out_p: int, name: str) -> te.Tensor:
    i = te.reduce_axis((0, wd.shape[1]), name="i")
    return te.compute(
        (1, rows, out_p),
        lambda b, t, o: te.sum(x[b, t, i] * wd[o // W.LANES, i, o % W.LANES], axis=i),
        name=name,
    )


def _epilogue(y: te.Tensor, bias: te.Tensor | None, rows: tirx.Expr, out: int) -> te.Tensor:
    if bias is None:
        return te.compute((1, rows, out), lambda b, t, o: y[b, t, o], name="livc_out")
    return te.compute((1, rows, out), lambda b, t, o: y[b, t, o] + bias[o], name="livc_out")


def _needs_epilogue(bias: te.Tensor | None, out: int, out_p: int, padded: bool) -> bool:
    return bias is not None or out != out_p or padded


def gemv_te(fmt: str, out: int, x: te.Tensor, *args: te.Tensor) -> te.Tensor:
    """x [1, 1, inp] -> [1, 1, out]; args = stored weight arrays (+ bias [out])."""
    stored, bias = _stored_and_bias(fmt, args)
    if W.quantized(fmt):
        y = _grouped_gemv(fmt, x, stored[0], stored[1])
    else:
        y = _product(x, dequant(fmt, stored, int(x.shape[2])), 1, int(stored[0].shape[0]) * W.LANES, "livc_gemv")
    out_p = int(y.shape[2])
    return _epilogue(y, bias, 1, out) if _needs_epilogue(bias, out, out_p, False) else y


def _grouped_gemv(fmt: str, x: te.Tensor, data: te.Tensor, scale: te.Tensor) -> te.Tensor:
    """q8/q4 GEMV with the scale (and the q4 offset 8) taken out of the inner sum:
    y[o] = sum_g d[o, g] * (sum_j x[32g + j] * code[o, 32g + j] - 8 * sum_j x[32g + j]), code = raw q / nibble.
    Blocks: "livc_gpart" (per-group partial sums), "livc_gxsum" (q4), "livc_gemv" (scaled sum)."""
    inp, groups = int(x.shape[2]), int(scale.shape[1])
    width = groups * W.GROUP
    zero = tirx.const(0.0, "float32")
    xp = (
        x
        if width == inp
        else te.compute(
            (1, 1, width),
            lambda b, t, i: tirx.if_then_else(i < inp, x[b, t, tirx.min(i, inp - 1)], zero),
            name="livc_xpad",
        )
    )
    code = _q4_nibble if fmt == "q4" else (lambda d, ob, i, lane: _f32(d[ob, i, lane]))
    out_p = int(data.shape[0]) * W.LANES
    j = te.reduce_axis((0, W.GROUP), name="j")
    part = te.compute(
        (1, 1, out_p, groups),
        lambda b, t, o, g: te.sum(
            xp[b, t, g * W.GROUP + j] * code(data, o // W.LANES, g * W.GROUP + j, o % W.LANES), axis=j
        ),
        name="livc_gpart",
    )
    g = te.reduce_axis((0, groups), name="g")

    def scaled(b: tirx.Var, t: tirx.Var, o: tirx.Var, grp: tirx.Expr) -> tirx.Expr:
        return _f32(scale[o // W.LANES, grp, o % W.LANES])

    if fmt == "q8":
        return te.compute(
            (1, 1, out_p), lambda b, t, o: te.sum(scaled(b, t, o, g) * part[b, t, o, g], axis=g), name="livc_gemv"
        )
    jj = te.reduce_axis((0, W.GROUP), name="jj")
    xsum = te.compute((1, 1, groups), lambda b, t, gg: te.sum(xp[b, t, gg * W.GROUP + jj], axis=jj), name="livc_gxsum")
    eight = tirx.const(8.0, "float32")
    return te.compute(
        (1, 1, out_p),
        lambda b, t, o: te.sum(scaled(b, t, o, g) * (part[b, t, o, g] - eight * xsum[b, t, g]), axis=g),
        name="livc_gemv",
    )


def padded_rows(rows: tirx.Expr) -> tirx.Expr:
    return tirx.floordiv(rows + (ROWS - 1), ROWS) * ROWS


def gemm_te(fmt: str, out: int, x: te.Tensor, *args: te.Tensor) -> te.Tensor:
    """x [1, T, inp] -> [1, T, out] with T padded to ROWS inside ("livc_pad"), the result sliced back."""
    stored, bias = _stored_and_bias(fmt, args)
    rows, inp = x.shape[1], int(x.shape[2])
    tp = padded_rows(rows)
    zero = tirx.const(0.0, "float32")
    xp = te.compute((1, tp, inp), lambda b, t, i: tirx.if_then_else(t < rows, x[b, t, i], zero), name="livc_pad")
    wd = dequant(fmt, stored, inp)
    out_p = int(wd.shape[0]) * W.LANES
    y = _product(xp, wd, tp, out_p, "livc_gemm")
    return _epilogue(y, bias, rows, out)


def gather_te(fmt: str, inp: int, tokens: te.Tensor, *stored: te.Tensor) -> te.Tensor:
    """tokens [1, T] int32 -> [1, T, inp] f32: row `tok` of the stored [vocab, inp] matrix."""
    data, scale = _split(fmt, stored)
    value = value_fn(fmt, data, scale)
    lanes = tirx.const(W.LANES, "int64")

    def row(b: tirx.Var, t: tirx.Var, d: tirx.Var) -> tirx.Expr:
        tok = tirx.Cast("int64", tokens[b, t])
        return value(tok // lanes, d, tok % lanes)

    return te.compute((1, tokens.shape[1], inp), row, name="livc_gather")


def _stored_and_bias(fmt: str, args: tuple[te.Tensor, ...]) -> tuple[tuple[te.Tensor, ...], te.Tensor | None]:
    n = len(W.storage((1, 1), fmt))
    stored = args[:n]
    bias = args[n] if len(args) > n else None
    return stored, bias


# --------------------------------------------------------------------------------------------- relax


def _rows(x: relax.Expr) -> tirx.Expr:
    shape = x.ty.shape
    if shape is None or len(shape) != 3:
        raise TvmError(UNSUPPORTED, "linear: expects x of shape [1, T, inp]")
    return shape[1]


def _check(x: relax.Expr, w: Weight, what: str) -> None:
    W.check_format(w.fmt)
    inp = x.ty.shape[2]
    if not isinstance(inp, tirx.IntImm) or int(inp) != w.inp:
        raise TvmError(UNSUPPORTED, f"{what}: input width {inp} does not match the weight's {w.inp}")


def _attrs(kind: str, pattern: int | None) -> dict[str, object]:
    attrs: dict[str, object] = {KERNEL_ATTR: kind}
    if pattern is not None:
        attrs["op_pattern"] = pattern
    return attrs


def linear(ctx: EmitCtx, x: relax.Expr, w: Weight, bias: relax.Expr | None) -> relax.Expr:
    """x [1, T, inp] -> [1, T, out] = x @ W.T (+ bias), dequantised inside, f32 accumulation."""
    _check(x, w, "linear")
    rows = _rows(x)
    args = (x, *w.inputs) + ((bias,) if bias is not None else ())
    gemv = isinstance(rows, tirx.IntImm) and int(rows) == 1
    kind, fn = ("gemv", gemv_te) if gemv else ("gemm", gemm_te)
    name = f"livc_{kind}_{w.fmt}"
    return ctx.bb.emit_te(
        fn, w.fmt, w.out, *args, primfunc_name_hint=name, primfunc_attrs=_attrs(kind, OUT_EWISE_FUSABLE)
    )


def gather_rows(ctx: EmitCtx, w: Weight, tokens: relax.Expr) -> relax.Expr:
    """Embedding lookup: tokens [1, T] int32 -> [1, T, inp] f32 rows of W [out=vocab, inp=d]."""
    W.check_format(w.fmt)
    attrs = _attrs("gather", None)
    return ctx.bb.emit_te(
        gather_te, w.fmt, w.inp, tokens, *w.inputs, primfunc_name_hint=f"livc_gather_{w.fmt}", primfunc_attrs=attrs
    )
