"""Emitter of long_conv (Hyena): implicit filters by a direct causal Toeplitz product, modal filters by recurrence.

implicit_filter: the filter h [L, C] is computed in the graph from the op's parameters exactly as
helpers/long_conv.py `implicit_filter` (positional encoding of t / FILTER_LEN -> Linear -> sin(freq * .) ->
(Linear -> sin)* -> Linear -> exponential decay window); prefill convolves with it directly (kernels/toeplitz.py;
torch uses an FFT, the same sum), decode writes the input into the history cache [1, C, max_len] in place at
`pos` and takes the dot of the history with the first pos + 1 filter taps.
modal_filter: the state [1, C, S] recurrence of kernels/scan.py `modal_scan_func` in both modes (prefill from
zeros), equal to torch's FFT with h[t] = sum_s residue r^t and its closing state sum_s u_s r^(L-1-s).
Both add the per-channel skip term (and the bias when present).

Preconditions: a [1, T, C] f32 input. Non-goals: filter kinds other than implicit_filter / modal_filter (E0701).
"""

from __future__ import annotations

import math

import numpy as np
from tvm import relax, te, tirx

from livc.backends.pytorch.emit_ops import _filter_spec
from livc.backends.tvm.context import EmitCtx
from livc.backends.tvm.emit.scans import call_kernel, no_shared_state, state_in
from livc.backends.tvm.errors import UNSUPPORTED, TvmError
from livc.backends.tvm.kernels import scan, toeplitz
from livc.compiler.ir.nodes import Op

FILTER_LEN = 2048  # helpers/long_conv.py: positions are normalised by this fixed length


def _encoding(ctx: EmitCtx, length: tirx.PrimExpr, emb_dim: int) -> relax.Expr:
    """z [L, emb_dim] = [t, cos(2 pi f t), sin(2 pi f t)] with t = arange(L) / FILTER_LEN (float32 like torch)."""
    bands = (emb_dim - 1) // 2
    freqs = np.linspace(1e-4, max(bands - 1, 1e-4), max(bands, 1)).astype(np.float32)[:bands]
    angular = (np.float32(2 * math.pi) * freqs).astype(np.float32)
    omega = relax.const(angular if bands else np.zeros(1, np.float32), "float32")

    def build(w: te.Tensor) -> te.Tensor:
        def body(t, j):  # noqa: ANN001, ANN202
            tt = t.astype("float32") / float(FILTER_LEN)
            band = tirx.max(tirx.min(j - 1 - tirx.if_then_else(j > bands, bands, 0), bands - 1), 0)
            angle = w[band] * tt
            return tirx.if_then_else(j == 0, tt, tirx.if_then_else(j <= bands, tirx.cos(angle), tirx.sin(angle)))

        return te.compute((length, emb_dim), body, name="hyena_encoding")

    return ctx.bb.emit_te(build, omega)


def _decay(ctx: EmitCtx, h: relax.Expr, length: tirx.PrimExpr, channels: int, fast: float, slow: float) -> relax.Expr:
    deltas = np.abs(np.linspace(math.log(1e-2) / slow, math.log(1e-2) / fast, channels).astype(np.float32))

    def build(x: te.Tensor, d: te.Tensor) -> te.Tensor:
        def body(t, c):  # noqa: ANN001, ANN202
            return x[t, c] * tirx.exp(-(t.astype("float32") / float(FILTER_LEN)) * d[c])

        return te.compute((length, channels), body, name="hyena_decay")

    return ctx.bb.emit_te(build, h, relax.const(deltas, "float32"))


def _filter_layers(op: Op) -> list[str]:
    roles = {role for role, _ in op.params}
    return ["filter_in"] + [f"filter_{i}" for i in range(len(roles)) if f"filter_{i}.weight" in roles]


def implicit_filter(op: Op, ctx: EmitCtx, length: tirx.PrimExpr, channels: int, spec: dict) -> relax.Expr:
    """h [length, C] (helpers/long_conv.py implicit_filter)."""
    hid = _encoding(ctx, length, int(spec["emb_dim"]))
    freq = ctx.param(op, "filter_freq")
    for layer in _filter_layers(op):
        lin = relax.op.linear(hid, ctx.param(op, f"{layer}.weight"), ctx.param(op, f"{layer}.bias"))
        hid = ctx.bb.emit(relax.op.sin(relax.op.multiply(freq, ctx.bb.emit(lin))))
    h = ctx.bb.emit(relax.op.linear(hid, ctx.param(op, "filter_out.weight")))
    return _decay(ctx, h, length, channels, float(spec["decay_fast"]), float(spec["decay_slow"]))


def _implicit(op: Op, ctx: EmitCtx, u: relax.Expr, channels: int, spec: dict) -> relax.Expr:
    key = ctx.key(ctx.base(op, op.params[0][0]))
    hist = ctx.cache_in(key)
    hist_ty = relax.TensorType([1, channels, ctx.max_len], "float32")
    if ctx.mode == "prefill":
        h = implicit_filter(op, ctx, ctx.seq, channels, spec)  # type: ignore[arg-type]
        (y,) = call_kernel(ctx, toeplitz.toeplitz_func(channels), "toeplitz", [u, h], [(1, ctx.seq, channels)])
        gv = ctx.bb.add_func(toeplitz.history_write_func(channels, ctx.max_len), "history_write")
        ctx.cache_out(key, ctx.bb.emit(relax.call_tir_inplace(gv, [hist, u], [0], hist_ty)))
        return y
    assert ctx.pos is not None
    h = implicit_filter(op, ctx, ctx.pos + 1, channels, spec)
    gv = ctx.bb.add_func(toeplitz.history_decode_func(channels, ctx.max_len), "history_decode")
    y_ty = relax.TensorType([1, 1, channels], "float32")
    call = ctx.bb.emit(relax.call_tir_inplace(gv, [hist, u, h, relax.prim_value(ctx.pos)], [0, -1], [hist_ty, y_ty]))
    ctx.cache_out(key, ctx.bb.emit(relax.TupleGetItem(call, 0)))
    return ctx.bb.emit(relax.TupleGetItem(call, 1))


def _modal(op: Op, ctx: EmitCtx, u: relax.Expr, channels: int, spec: dict) -> relax.Expr:
    state = int(spec["state"])
    key = ctx.key(ctx.base(op, op.params[0][0]))
    s0 = state_in(ctx, key, (1, channels, state))
    args = [s0, u, ctx.param(op, "poles"), ctx.param(op, "residues")]
    func = scan.modal_scan_func(channels, state)
    y, s = call_kernel(ctx, func, "modal_scan", args, [(1, ctx.seq, channels), (1, channels, state)])
    ctx.cache_out(key, s)
    return y


def long_conv(op: Op, ctx: EmitCtx) -> None:
    no_shared_state(op, ctx)
    spec = _filter_spec(str(op.attr("filter")))
    t = ctx.type(op.inputs[0])
    u = ctx.value(op.inputs[0])
    if len(t.shape) != 1:
        u = ctx.bb.emit(relax.op.reshape(u, relax.ShapeExpr([1, ctx.seq, t.numel])))
    if spec["kind"] == "modal_filter":
        y = _modal(op, ctx, u, t.numel, spec)
    elif spec["kind"] == "implicit_filter":
        y = _implicit(op, ctx, u, t.numel, spec)
    else:
        raise TvmError(UNSUPPORTED, f"{ctx.prefix}: long_conv filter {spec['kind']} has no TVM lowering")
    y = ctx.bb.emit(relax.op.add(y, relax.op.multiply(u, ctx.param(op, "skip"))))
    if ctx.has_param(op, "bias"):
        y = ctx.bb.emit(relax.op.add(y, ctx.param(op, "bias")))
    shape = op.outputs[0].type.shape
    if len(shape) != 1:
        y = ctx.bb.emit(relax.op.reshape(y, relax.ShapeExpr([1, ctx.seq, *shape])))
    ctx.set(op.outputs[0].name, y)
