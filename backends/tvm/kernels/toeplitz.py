"""Hand TIR kernels for the Hyena long convolution with an implicit filter (TVM has no FFT).

- `toeplitz_func`: prefill, y[t, c] = sum_{s <= t} h[t - s, c] u[s, c], the causal Toeplitz product done directly,
  in register tiles of `ROWS` output rows x up to 16 channels (each loaded u vector serves ROWS outputs).
- `history_write_func`: prefill, history[0, c, s] = u[0, s, c] for s < T, in place (the rest stays as it arrived:
  zero in a fresh cache), like helpers/long_conv.py `history[:, :, :L].copy_(u^T)`.
- `history_decode_func`: decode at position p, history[0, c, p] = u[c] in place, then
  y[c] = sum_{s <= p} history[0, c, s] h[p - s, c] (helpers/long_conv.py `_implicit` decode branch).

Preconditions: batch 1, f32, `h` holds at least T (prefill) or p + 1 (decode) filter rows. Kernels are marked
`tirx.is_scheduled` + `livc.scheduled` and opaque (`op_pattern` 8). Non-goals: FFT convolution, other dtypes.
"""

from __future__ import annotations

from tvm.script import tirx as T
from tvm.tirx import PrimFunc

_ATTRS = {"tirx.is_scheduled": True, "livc.scheduled": True, "tirx.noalias": True, "op_pattern": 8}
ROWS = 8  # output rows per block in the prefill product


def lanes(channels: int) -> int:
    """Channels per register tile: the largest divisor of `channels` up to 16."""
    return max(j for j in range(1, min(channels, 16) + 1) if channels % j == 0)


def toeplitz_func(channels: int) -> PrimFunc:
    """(u [1,T,C], h [T,C]) -> y [1,T,C], the causal convolution of u with the per-channel filter h.

    One parallel task per (block of ROWS output rows, tile of `lanes` channels) with its accumulator in registers;
    row blocks are visited small, large, small ... so the static split over cores gets even work."""
    CH, RB, LN = channels, ROWS, lanes(channels)
    NCB = CH // LN

    @T.prim_func(private=True, s_tir=True)
    def toeplitz(uh: T.handle, hh: T.handle, yh: T.handle):
        T.func_attr(_ATTRS)
        n = T.int64()
        U = T.match_buffer(uh, (1, n, CH), "float32")
        H = T.match_buffer(hh, (n, CH), "float32")
        Y = T.match_buffer(yh, (1, n, CH), "float32")
        for task in T.parallel((n + RB - 1) // RB * NCB):
            acc = T.alloc_buffer((RB, LN), "float32", scope="local")
            i = task // NCB
            blk = T.if_then_else(i % 2 == 0, i // 2, (n + RB - 1) // RB - 1 - i // 2)
            c0 = task % NCB * LN
            for r, c in T.grid(RB, LN):
                acc[r, c] = T.float32(0)
            for s in range(T.min(blk * RB + RB, n)):
                for r in T.unroll(RB):
                    if blk * RB + r < n and s <= blk * RB + r:
                        for c in T.vectorized(LN):
                            acc[r, c] = acc[r, c] + H[blk * RB + r - s, c0 + c] * U[0, s, c0 + c]
            for r in range(RB):
                if blk * RB + r < n:
                    for c in T.vectorized(LN):
                        Y[0, blk * RB + r, c0 + c] = acc[r, c]

    return toeplitz


def history_write_func(channels: int, max_len: int) -> PrimFunc:
    """(history [1,C,L], u [1,T,C]) -> history with columns 0..T-1 set to u^T (in place, output = argument 0)."""
    CH, ML = channels, max_len

    @T.prim_func(private=True, s_tir=True)
    def history_write(histh: T.handle, uh: T.handle):
        T.func_attr(_ATTRS)
        n = T.int64()
        HIST = T.match_buffer(histh, (1, CH, ML), "float32")
        U = T.match_buffer(uh, (1, n, CH), "float32")
        for c in T.parallel(CH):
            for s in range(n):
                HIST[0, c, s] = U[0, s, c]

    return history_write


def history_decode_func(channels: int, max_len: int) -> PrimFunc:
    """(history [1,C,L], u [1,1,C], h [p+1,C], p) -> (history, y [1,1,C]); history updated in place at column p."""
    CH, ML = channels, max_len

    @T.prim_func(private=True, s_tir=True)
    def history_decode(histh: T.handle, uh: T.handle, hh: T.handle, pos: T.int64, yh: T.handle):
        T.func_attr(_ATTRS)
        m = T.int64()
        HIST = T.match_buffer(histh, (1, CH, ML), "float32")
        U = T.match_buffer(uh, (1, 1, CH), "float32")
        H = T.match_buffer(hh, (m, CH), "float32")
        Y = T.match_buffer(yh, (1, 1, CH), "float32")
        for c in T.parallel(CH):
            acc = T.alloc_buffer((1,), "float32", scope="local")
            HIST[0, c, pos] = U[0, 0, c]
            acc[0] = T.float32(0)
            for s in range(pos + 1):
                acc[0] = acc[0] + HIST[0, c, s] * H[pos - s, c]
            Y[0, 0, c] = acc[0]

    return history_decode
