"""TE kernels of the causal depthwise convolution (short_conv / causal_conv) and its k-1 state.

Semantics = backends/pytorch/templates/helpers/conv.py at batch 1, f32: x [1, T, C], weight [G, k] with G = C
or G filter groups (channel c uses row c // (C / G), torch's repeat_interleave), bias [C];
y[t, c] = sum_r x[t - (k - 1) + r, c] * w[c, r] (+ bias), taps before position 0 read zero (the prefill cache
arrives fresh). The state [1, C, k-1] holds the last k-1 inputs (zero-padded on the left for short prompts).
Decode: window = state ++ x, y = window . w, state <- window[1:].

The taps are an `if_then_else` on the tap index (not pad + slice): that keeps the kernels fusable with their
elementwise neighbours and compiles for every target. Non-goal: k == 1 state (it has no columns; the emitter
leaves the empty cache entry alone).
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import te, tirx


@dataclass(frozen=True)
class ConvSpec:
    channels: int
    rows: int  # weight rows G: channels, or the filter groups
    kernel: int
    bias: bool = False

    @property
    def per_row(self) -> int:
        return self.channels // self.rows


def _row(spec: ConvSpec, c: tirx.PrimExpr) -> tirx.PrimExpr:
    return c if spec.per_row == 1 else c // spec.per_row


def _with_bias(spec: ConvSpec, y: te.Tensor, bias: tuple[te.Tensor, ...]) -> te.Tensor:
    if not spec.bias:
        return y
    return te.compute(y.shape, lambda b, t, c: y[b, t, c] + bias[0][c], name="conv_bias")


def prefill(spec: ConvSpec):  # noqa: ANN201 - a TE builder for bb.emit_te
    """(x [1, T, C], w [G, k], *bias) -> y [1, T, C]."""
    k = spec.kernel

    def build(x: te.Tensor, w: te.Tensor, *bias: te.Tensor) -> te.Tensor:
        r = te.reduce_axis((0, k), name="r")

        def body(b, t, c):  # noqa: ANN001, ANN202
            src = t + r - (k - 1)
            tap = tirx.if_then_else(src >= 0, x[b, tirx.max(src, 0), c], tirx.const(0.0, "float32"))
            return te.sum(tap * w[_row(spec, c), r], axis=r)

        return _with_bias(spec, te.compute(x.shape, body, name="causal_conv"), bias)

    return build


def prefill_state(spec: ConvSpec):  # noqa: ANN201
    """x [1, T, C] -> state [1, C, k-1]: the last k-1 inputs, zeros before position 0."""
    k = spec.kernel

    def build(x: te.Tensor) -> te.Tensor:
        length = x.shape[1]

        def body(b, c, i):  # noqa: ANN001, ANN202
            src = length - (k - 1) + i
            return tirx.if_then_else(src >= 0, x[b, tirx.max(src, 0), c], tirx.const(0.0, "float32"))

        return te.compute((x.shape[0], spec.channels, k - 1), body, name="conv_state")

    return build


def decode(spec: ConvSpec):  # noqa: ANN201
    """(x [1, 1, C], state [1, C, k-1], w [G, k], *bias) -> y [1, 1, C] over the window state ++ x."""
    k = spec.kernel

    def build(x: te.Tensor, state: te.Tensor, w: te.Tensor, *bias: te.Tensor) -> te.Tensor:
        r = te.reduce_axis((0, k), name="r")

        def body(b, t, c):  # noqa: ANN001, ANN202
            tap = tirx.if_then_else(r < k - 1, state[b, c, tirx.min(r, k - 2)], x[b, t, c])
            return te.sum(tap * w[_row(spec, c), r], axis=r)

        return _with_bias(spec, te.compute(x.shape, body, name="causal_conv_step"), bias)

    return build


def decode_state(spec: ConvSpec):  # noqa: ANN201
    """(x [1, 1, C], state [1, C, k-1]) -> the shifted state: window[1:]."""
    k = spec.kernel

    def build(x: te.Tensor, state: te.Tensor) -> te.Tensor:
        def body(b, c, i):  # noqa: ANN001, ANN202
            return tirx.if_then_else(i < k - 2, state[b, c, tirx.min(i + 1, k - 2)], x[b, 0, c])

        return te.compute(state.shape, body, name="conv_state_step")

    return build
