"""Hand TIR kernels of softmax attention: KV-cache writes (in place), prefill and decode attention.

Semantics = backends/pytorch/templates/helpers/attention.py at batch 1, f32:
- q [1, T, H, dk], k [1, T, KV, dk], v [1, T, KV, dv] with H a multiple of KV; query head h reads KV head
  h // (H / KV) (the repeat is never materialised).
- The cache is [1, KV, S, d]. S = max_len, position p in slot p; a sliding window with S == window is a ring
  buffer (position p in slot p % window). Prefill stores the prompt's last S positions, decode stores `pos`.
- Decode attends over the n = min(pos + 1, S) written slots: every one of them is visible (a ring only holds
  the last `window` positions), so the loop runs over n keys, never over max_len with a mask.
- softcap c: scores s -> c * tanh(s / c); scale 1 / sqrt(dk) as F.scaled_dot_product_attention.
- key_mask [1, N] (f32 > 0.5 or bool; Mixture-of-Recursions): key position p is visible iff key_mask[p],
  and a query always sees its own position.

The kernels are already scheduled (parallel over heads / (head, row), vectorised over head_dim, prefill
blocked over keys with an online softmax); they carry `livc.kernel` and `op_pattern` 8 (opaque: never fused,
never rescheduled). Non-goals: batch > 1, non-f32 caches, a parallel split over keys in decode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tvm import tirx
from tvm.script import tirx as T

KEY_BLOCK = 16  # prefill: keys per online-softmax block
NEG = -3.0e38  # "minus infinity" that stays finite (exp(NEG - NEG) is a harmless 1, never NaN)


@dataclass(frozen=True)
class AttnSpec:
    """Static description of one attention op (see the module docstring)."""

    heads: int
    kv_heads: int
    dk: int
    dv: int
    slots: int  # cache slots S: max_len, or min(window, max_len)
    causal: bool = True
    window: int | None = None
    softcap: float | None = None
    key_mask: str | None = None  # dtype of the key mask input ("float32" / "bool"), None: no mask

    @property
    def rep(self) -> int:
        return self.heads // self.kv_heads

    @property
    def ring(self) -> bool:
        """helpers/attention.ring_buffer: a window cache with exactly `window` slots."""
        return self.window is not None and self.slots == self.window

    @property
    def scale(self) -> float:
        return 1.0 / math.sqrt(self.dk)


def lanes(n: int) -> int:
    """SIMD lanes used for a reduction over a contiguous axis of length n (8 x f32 = one AVX2 / two NEON regs)."""
    return next(w for w in (8, 4, 2, 1) if n % w == 0)


def without_param(func: tirx.PrimFunc, name: str) -> tirx.PrimFunc:
    """`func` without the handle parameter `name` (an optional input the body does not read)."""
    params = [p for p in func.params if p.name != name]
    return tirx.PrimFunc(params, func.body, func.ret_type, func.attrs)


def _attrs(kind: str) -> dict[str, object]:
    return {"tirx.noalias": True, "op_pattern": 8, "livc.kernel": kind}


def _capped(spec: AttnSpec, s: tirx.PrimExpr) -> tirx.PrimExpr:
    if spec.softcap is None:
        return s
    cap = float(spec.softcap)
    return T.float32(cap) * T.tanh(s * T.float32(1.0 / cap))


def _visible(spec: AttnSpec, km: tirx.Buffer | None, key: tirx.PrimExpr, query: tirx.PrimExpr) -> tirx.PrimExpr:
    """key_mask[key] or key == query (a token always sees itself)."""
    if km is None:
        return tirx.const(True, "bool")
    flag = km[0, key] if spec.key_mask == "bool" else km[0, key] > T.float32(0.5)
    return tirx.Or(flag, key == query)


# ---- cache writes ------------------------------------------------------------------------------------------


def kv_store_decode(spec: AttnSpec) -> tirx.PrimFunc:
    """(cache_k, cache_v, k [1,1,KV,dk], v [1,1,KV,dv], pos): slot pos (ring: pos % S) <- k, v. In place."""
    kvh, s, dk, dv, ring = spec.kv_heads, spec.slots, spec.dk, spec.dv, spec.ring

    @T.prim_func
    def kv_store_decode(
        ck: T.Buffer((1, kvh, s, dk), "float32"),
        cv: T.Buffer((1, kvh, s, dv), "float32"),
        k: T.Buffer((1, 1, kvh, dk), "float32"),
        v: T.Buffer((1, 1, kvh, dv), "float32"),
        pos: T.int64,
    ):
        T.func_attr(_attrs("kv_store"))
        slot: T.int64 = T.if_then_else(ring, T.floormod(pos, s), pos)
        if slot < s:  # past the cache: the runtime rejects such a position before calling
            for h in range(kvh):
                for d in T.vectorized(dk):
                    ck[0, h, slot, d] = k[0, 0, h, d]
                for d in T.vectorized(dv):
                    cv[0, h, slot, d] = v[0, 0, h, d]

    return kv_store_decode


def kv_store_prefill(spec: AttnSpec) -> tirx.PrimFunc:
    """(cache_k, cache_v, k [1,T,KV,dk], v [1,T,KV,dv]): positions max(0, T-S)..T-1 into their slots. In place."""
    kvh, s, dk, dv, ring = spec.kv_heads, spec.slots, spec.dk, spec.dv, spec.ring

    @T.prim_func
    def kv_store_prefill(ck: T.Buffer((1, kvh, s, dk), "float32"), cv: T.Buffer((1, kvh, s, dv), "float32"),
                         k_h: T.handle, v_h: T.handle):  # fmt: skip
        T.func_attr(_attrs("kv_store"))
        t = T.int64()
        k = T.match_buffer(k_h, (1, t, kvh, dk), "float32")
        v = T.match_buffer(v_h, (1, t, kvh, dv), "float32")
        first: T.int64 = T.if_then_else(ring, T.max(t - s, T.int64(0)), T.int64(0))
        for h in T.parallel(kvh):
            for i in range(T.min(t, s + first) - first):
                for d in T.vectorized(dk):
                    ck[0, h, T.floormod(first + i, s), d] = k[0, first + i, h, d]
                for d in T.vectorized(dv):
                    cv[0, h, T.floormod(first + i, s), d] = v[0, first + i, h, d]

    return kv_store_prefill


# ---- decode ------------------------------------------------------------------------------------------------


def attention_decode(spec: AttnSpec) -> tirx.PrimFunc:
    """(q [1,1,H,dk], cache_k, cache_v, pos[, key_mask [1, N]]) -> y [1,1,H,dv] over the n = min(pos+1, S) slots."""
    h_, kvh, s, dk, dv, rep = spec.heads, spec.kv_heads, spec.slots, spec.dk, spec.dv, spec.rep
    lk = lanes(dk)
    scale = spec.scale
    masked = spec.key_mask is not None
    km_dtype = spec.key_mask or "float32"

    @T.prim_func
    def attention_decode(q: T.Buffer((1, 1, h_, dk), "float32"), ck: T.Buffer((1, kvh, s, dk), "float32"),
                         cv: T.Buffer((1, kvh, s, dv), "float32"), pos: T.int64, km_h: T.handle,
                         y: T.Buffer((1, 1, h_, dv), "float32")):  # fmt: skip
        T.func_attr(_attrs("attention_decode"))
        nk = T.int64()
        km = T.match_buffer(km_h, (1, nk), km_dtype)
        n: T.int64 = T.min(pos + T.int64(1), T.int64(s))
        for h in T.parallel(h_):
            sc = T.alloc_local((s,), "float32")
            part = T.alloc_local((lk,), "float32")
            acc = T.alloc_local((dv,), "float32")
            mx: T.float32 = T.float32(NEG)
            for j in range(n):
                for l in T.vectorized(lk):
                    part[l] = T.float32(0)
                for d0 in range(dk // lk):
                    for l in T.vectorized(lk):
                        part[l] = part[l] + q[0, 0, h, d0 * lk + l] * ck[0, h // rep, j, d0 * lk + l]
                dot: T.float32 = T.float32(0)
                for l in range(lk):
                    dot = dot + part[l]
                sc[j] = _capped(spec, dot * T.float32(scale))
                if masked:
                    key: T.int64 = pos - T.floormod(pos - j, T.int64(s))
                    sc[j] = T.if_then_else(_visible(spec, km, key, pos), sc[j], T.float32(NEG))
                mx = T.max(mx, sc[j])
            for d in T.vectorized(dv):
                acc[d] = T.float32(0)
            total: T.float32 = T.float32(0)
            for j in range(n):
                p: T.float32 = T.if_then_else(sc[j] > T.float32(NEG), T.exp(sc[j] - mx), T.float32(0))
                total = total + p
                for d in T.vectorized(dv):
                    acc[d] = acc[d] + p * cv[0, h // rep, j, d]
            for d in T.vectorized(dv):
                y[0, 0, h, d] = acc[d] / total

    return attention_decode if masked else without_param(attention_decode, "km")


# ---- prefill -----------------------------------------------------------------------------------------------


def attention_prefill(spec: AttnSpec) -> tirx.PrimFunc:
    """(q [1,T,H,dk], k [1,T,KV,dk], v [1,T,KV,dv], key_mask [1, N]) -> y [1,T,H,dv].

    One (head, row) per parallel iteration; keys lo..hi-1 (causal: up to the row, window: the last `window`)
    in blocks of KEY_BLOCK with an online softmax (running max, rescaled sum and accumulator)."""
    h_, kvh, dk, dv, rep = spec.heads, spec.kv_heads, spec.dk, spec.dv, spec.rep
    lk, b = lanes(dk), KEY_BLOCK
    scale = spec.scale
    causal, window = spec.causal, spec.window or 0
    masked = spec.key_mask is not None
    km_dtype = spec.key_mask or "float32"

    @T.prim_func
    def attention_prefill(q_h: T.handle, k_h: T.handle, v_h: T.handle, km_h: T.handle, y_h: T.handle):
        T.func_attr(_attrs("attention_prefill"))
        t = T.int64()
        nk = T.int64()
        q = T.match_buffer(q_h, (1, t, h_, dk), "float32")
        k = T.match_buffer(k_h, (1, t, kvh, dk), "float32")
        v = T.match_buffer(v_h, (1, t, kvh, dv), "float32")
        km = T.match_buffer(km_h, (1, nk), km_dtype)
        y = T.match_buffer(y_h, (1, t, h_, dv), "float32")
        for hi in T.parallel(h_ * t):
            h: T.int64 = hi // t
            i: T.int64 = T.floormod(hi, t)
            lo: T.int64 = T.if_then_else(window > 0, T.max(i - T.int64(window) + T.int64(1), T.int64(0)), T.int64(0))
            end: T.int64 = T.if_then_else(causal, i + T.int64(1), t)
            sc = T.alloc_local((b,), "float32")
            part = T.alloc_local((lk,), "float32")
            acc = T.alloc_local((dv,), "float32")
            mx: T.float32 = T.float32(NEG)
            total: T.float32 = T.float32(0)
            for d in T.vectorized(dv):
                acc[d] = T.float32(0)
            for blk in range((end - lo + T.int64(b - 1)) // T.int64(b)):
                j0: T.int64 = lo + blk * T.int64(b)
                width: T.int64 = T.min(T.int64(b), end - j0)
                bmx: T.float32 = T.float32(NEG)
                for jj in range(width):
                    for l in T.vectorized(lk):
                        part[l] = T.float32(0)
                    for d0 in range(dk // lk):
                        for l in T.vectorized(lk):
                            part[l] = part[l] + q[0, i, h, d0 * lk + l] * k[0, j0 + jj, h // rep, d0 * lk + l]
                    dot: T.float32 = T.float32(0)
                    for l in range(lk):
                        dot = dot + part[l]
                    sc[jj] = _capped(spec, dot * T.float32(scale))
                    if masked:
                        sc[jj] = T.if_then_else(_visible(spec, km, j0 + jj, i), sc[jj], T.float32(NEG))
                    bmx = T.max(bmx, sc[jj])
                new: T.float32 = T.max(mx, bmx)
                corr: T.float32 = T.exp(mx - new)
                mx = new
                total = total * corr
                for d in T.vectorized(dv):
                    acc[d] = acc[d] * corr
                for jj in range(width):
                    p: T.float32 = T.if_then_else(sc[jj] > T.float32(NEG), T.exp(sc[jj] - mx), T.float32(0))
                    total = total + p
                    for d in T.vectorized(dv):
                        acc[d] = acc[d] + p * v[0, j0 + jj, h // rep, d]
            for d in T.vectorized(dv):
                y[0, i, h, d] = acc[d] / total

    return attention_prefill if masked else without_param(attention_prefill, "km")
