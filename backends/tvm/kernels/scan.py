"""Hand TIR kernels for the recurrent token mixers: gated scan (GLA), linear attention, Mamba-1 selective scan and
the modal (Hyena-LI) recurrence. Each is one sequential pass over the T positions of a batch-1 sequence with an f32
state held in registers, parallel over heads / channels.

Every kernel takes the state before the first position and returns the outputs of all T positions plus the state
after the last one, so the same kernel serves prefill (state in = zeros, T symbolic) and decode (state in = the
cached state, T = 1). The math is the PyTorch helpers' (templates/helpers/{scan,linear_attention,selective_scan,
long_conv}.py) written as a recurrence; their chunked parallel forms are the same sums in another order.

Preconditions: batch 1, f32 buffers, the static sizes given to the builders. Kernels are marked
`tirx.is_scheduled` and `livc.scheduled` (no schedule or tuner touches them) and opaque (`op_pattern` 8: never fused).
Non-goals: chunked parallel forms (the sequential form does the same FLOPs per token), other dtypes.
"""

from __future__ import annotations

from tvm.script import tirx as T
from tvm.tirx import PrimFunc

_ATTRS = {"tirx.is_scheduled": True, "livc.scheduled": True, "tirx.noalias": True, "op_pattern": 8}
NORM_EPS = 1e-6  # helpers/linear_attention.py: o / (den + 1e-6)


def columns(dv: int) -> int:
    """Value columns per parallel task: the largest divisor of dv up to 16 (the state slice [dk, JB] stays small
    enough for registers / stack, and H * dv / JB tasks spread over the cores)."""
    return max(j for j in range(1, min(dv, 16) + 1) if dv % j == 0)


def gated_scan_func(heads: int, dk: int, dv: int) -> PrimFunc:
    """(s0 [1,H,dk,dv], q, k [1,T,H,dk], v [1,T,H,dv], g [1,T,H,dk]) -> (o [1,T,H,dv], s [1,H,dk,dv]).

    S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t; o_t = q_t S_t (helpers/scan.py gated_scan)."""
    H, DK, DV, JB = heads, dk, dv, columns(dv)

    @T.prim_func(private=True, s_tir=True)
    def gated_scan(s0h: T.handle, qh: T.handle, kh: T.handle, vh: T.handle, gh: T.handle, oh: T.handle, sh: T.handle):
        T.func_attr(_ATTRS)
        n = T.int64()
        S0 = T.match_buffer(s0h, (1, H, DK, DV), "float32")
        Q = T.match_buffer(qh, (1, n, H, DK), "float32")
        K = T.match_buffer(kh, (1, n, H, DK), "float32")
        V = T.match_buffer(vh, (1, n, H, DV), "float32")
        G = T.match_buffer(gh, (1, n, H, DK), "float32")
        OUT = T.match_buffer(oh, (1, n, H, DV), "float32")
        S = T.match_buffer(sh, (1, H, DK, DV), "float32")
        for task in T.parallel(H * (DV // JB)):
            st = T.alloc_buffer((DK, JB), "float32", scope="local")
            acc = T.alloc_buffer((JB,), "float32", scope="local")
            h = task // (DV // JB)
            j0 = task % (DV // JB) * JB
            for i, j in T.grid(DK, JB):
                st[i, j] = S0[0, h, i, j0 + j]
            for t in range(n):
                for j in range(JB):
                    acc[j] = T.float32(0)
                for i in range(DK):
                    for j in range(JB):
                        st[i, j] = st[i, j] * T.exp(G[0, t, h, i]) + K[0, t, h, i] * V[0, t, h, j0 + j]
                        acc[j] = acc[j] + Q[0, t, h, i] * st[i, j]
                for j in range(JB):
                    OUT[0, t, h, j0 + j] = acc[j]
            for i, j in T.grid(DK, JB):
                S[0, h, i, j0 + j] = st[i, j]

    return gated_scan


def linear_attention_func(heads: int, dk: int, dv: int) -> PrimFunc:
    """(s0 [1,H,dk,dv], z0 [1,H,dk,1], q, k [1,T,H,dk] (feature-mapped), v [1,T,H,dv]) -> (o, s, z).

    S_t = S_{t-1} + k_t^T v_t, z_t = z_{t-1} + k_t^T; o_t = q_t S_t / (q_t z_t + 1e-6)
    (helpers/linear_attention.py with normalize). Every column task keeps its own copy of z; the first writes it."""
    H, DK, DV, JB = heads, dk, dv, columns(dv)

    @T.prim_func(private=True, s_tir=True)
    def linear_attention(
        s0h: T.handle, z0h: T.handle, qh: T.handle, kh: T.handle, vh: T.handle, oh: T.handle, sh: T.handle, zh: T.handle
    ):
        T.func_attr(_ATTRS)
        n = T.int64()
        S0 = T.match_buffer(s0h, (1, H, DK, DV), "float32")
        Z0 = T.match_buffer(z0h, (1, H, DK, 1), "float32")
        Q = T.match_buffer(qh, (1, n, H, DK), "float32")
        K = T.match_buffer(kh, (1, n, H, DK), "float32")
        V = T.match_buffer(vh, (1, n, H, DV), "float32")
        OUT = T.match_buffer(oh, (1, n, H, DV), "float32")
        S = T.match_buffer(sh, (1, H, DK, DV), "float32")
        Z = T.match_buffer(zh, (1, H, DK, 1), "float32")
        for task in T.parallel(H * (DV // JB)):
            st = T.alloc_buffer((DK, JB), "float32", scope="local")
            zt = T.alloc_buffer((DK,), "float32", scope="local")
            acc = T.alloc_buffer((JB + 1,), "float32", scope="local")
            h = task // (DV // JB)
            j0 = task % (DV // JB) * JB
            for i in range(DK):
                zt[i] = Z0[0, h, i, 0]
                for j in range(JB):
                    st[i, j] = S0[0, h, i, j0 + j]
            for t in range(n):
                for j in range(JB + 1):
                    acc[j] = T.float32(0)
                for i in range(DK):
                    zt[i] = zt[i] + K[0, t, h, i]
                    acc[JB] = acc[JB] + Q[0, t, h, i] * zt[i]
                    for j in range(JB):
                        st[i, j] = st[i, j] + K[0, t, h, i] * V[0, t, h, j0 + j]
                        acc[j] = acc[j] + Q[0, t, h, i] * st[i, j]
                for j in range(JB):
                    OUT[0, t, h, j0 + j] = acc[j] / (acc[JB] + T.float32(NORM_EPS))
            for i in range(DK):
                if j0 == 0:
                    Z[0, h, i, 0] = zt[i]
                for j in range(JB):
                    S[0, h, i, j0 + j] = st[i, j]

    return linear_attention


def plain_scan_func(heads: int, dk: int, dv: int) -> PrimFunc:
    """Linear attention without normalisation: (s0, q, k, v) -> (o, s), S_t = S_{t-1} + k_t^T v_t, o_t = q_t S_t."""
    H, DK, DV, JB = heads, dk, dv, columns(dv)

    @T.prim_func(private=True, s_tir=True)
    def plain_scan(s0h: T.handle, qh: T.handle, kh: T.handle, vh: T.handle, oh: T.handle, sh: T.handle):
        T.func_attr(_ATTRS)
        n = T.int64()
        S0 = T.match_buffer(s0h, (1, H, DK, DV), "float32")
        Q = T.match_buffer(qh, (1, n, H, DK), "float32")
        K = T.match_buffer(kh, (1, n, H, DK), "float32")
        V = T.match_buffer(vh, (1, n, H, DV), "float32")
        OUT = T.match_buffer(oh, (1, n, H, DV), "float32")
        S = T.match_buffer(sh, (1, H, DK, DV), "float32")
        for task in T.parallel(H * (DV // JB)):
            st = T.alloc_buffer((DK, JB), "float32", scope="local")
            acc = T.alloc_buffer((JB,), "float32", scope="local")
            h = task // (DV // JB)
            j0 = task % (DV // JB) * JB
            for i, j in T.grid(DK, JB):
                st[i, j] = S0[0, h, i, j0 + j]
            for t in range(n):
                for j in range(JB):
                    acc[j] = T.float32(0)
                for i in range(DK):
                    for j in range(JB):
                        st[i, j] = st[i, j] + K[0, t, h, i] * V[0, t, h, j0 + j]
                        acc[j] = acc[j] + Q[0, t, h, i] * st[i, j]
                for j in range(JB):
                    OUT[0, t, h, j0 + j] = acc[j]
            for i, j in T.grid(DK, JB):
                S[0, h, i, j0 + j] = st[i, j]

    return plain_scan


def selective_scan_func(channels: int, state: int) -> PrimFunc:
    """(h0 [1,E,N], u, dt [1,T,E], b, c [1,T,N], a_log [E,N], d [E]) -> (y [1,T,E], h [1,E,N]).

    h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t, y_t = C_t h_t + D u_t, A = -exp(A_log) (helpers/selective_scan.py)."""
    E, N = channels, state

    @T.prim_func(private=True, s_tir=True)
    def selective_scan(
        h0h: T.handle,
        uh: T.handle,
        dth: T.handle,
        bh: T.handle,
        ch: T.handle,
        ah: T.handle,
        dh: T.handle,
        yh: T.handle,
        hh: T.handle,
    ):
        T.func_attr(_ATTRS)
        n = T.int64()
        H0 = T.match_buffer(h0h, (1, E, N), "float32")
        U = T.match_buffer(uh, (1, n, E), "float32")
        DT = T.match_buffer(dth, (1, n, E), "float32")
        B = T.match_buffer(bh, (1, n, N), "float32")
        C = T.match_buffer(ch, (1, n, N), "float32")
        A_LOG = T.match_buffer(ah, (E, N), "float32")
        D = T.match_buffer(dh, (E,), "float32")
        Y = T.match_buffer(yh, (1, n, E), "float32")
        HN = T.match_buffer(hh, (1, E, N), "float32")
        for e in T.parallel(E):
            st = T.alloc_buffer((N,), "float32", scope="local")
            a = T.alloc_buffer((N,), "float32", scope="local")
            acc = T.alloc_buffer((1,), "float32", scope="local")
            for i in range(N):
                st[i] = H0[0, e, i]
                a[i] = T.float32(0) - T.exp(A_LOG[e, i])
            for t in range(n):
                acc[0] = T.float32(0)
                for i in range(N):
                    st[i] = st[i] * T.exp(DT[0, t, e] * a[i]) + DT[0, t, e] * U[0, t, e] * B[0, t, i]
                    acc[0] = acc[0] + st[i] * C[0, t, i]
                Y[0, t, e] = acc[0] + U[0, t, e] * D[e]
            for i in range(N):
                HN[0, e, i] = st[i]

    return selective_scan


def modal_scan_func(channels: int, state: int) -> PrimFunc:
    """(s0 [1,C,S], u [1,T,C], poles, residues [C,S]) -> (y [1,T,C], s [1,C,S]) without skip or bias.

    s_t = s_{t-1} * sigmoid(poles) + u_t, y_t = sum_s residues * s_t: the modal filter
    h[t] = sum_s residue r^t as a recurrence (helpers/long_conv.py _modal)."""
    CH, SN = channels, state

    @T.prim_func(private=True, s_tir=True)
    def modal_scan(s0h: T.handle, uh: T.handle, ph: T.handle, rh: T.handle, yh: T.handle, sh: T.handle):
        T.func_attr(_ATTRS)
        n = T.int64()
        S0 = T.match_buffer(s0h, (1, CH, SN), "float32")
        U = T.match_buffer(uh, (1, n, CH), "float32")
        P = T.match_buffer(ph, (CH, SN), "float32")
        R = T.match_buffer(rh, (CH, SN), "float32")
        Y = T.match_buffer(yh, (1, n, CH), "float32")
        S = T.match_buffer(sh, (1, CH, SN), "float32")
        for c in T.parallel(CH):
            st = T.alloc_buffer((SN,), "float32", scope="local")
            r = T.alloc_buffer((SN,), "float32", scope="local")
            acc = T.alloc_buffer((1,), "float32", scope="local")
            for i in range(SN):
                st[i] = S0[0, c, i]
                r[i] = T.sigmoid(P[c, i])
            for t in range(n):
                acc[0] = T.float32(0)
                for i in range(SN):
                    st[i] = st[i] * r[i] + U[0, t, c]
                    acc[0] = acc[0] + st[i] * R[c, i]
                Y[0, t, c] = acc[0]
            for i in range(SN):
                S[0, c, i] = st[i]

    return modal_scan
