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

The kernels are already scheduled: decode parallel over heads, vectorised over head_dim (dot products in
8-lane partial sums, the exp loop vectorised through `fast_exp`); prefill takes K transposed [1, KV, dk, T],
runs parallel over (KV head, block of positions) with the rep query heads of that KV head in one tile, scores
as a small GEMM vectorised over a block of keys, online softmax over key blocks. They carry `livc.kernel`,
`livc.scheduled` and `op_pattern` 8 (opaque: never fused, never rescheduled by schedules.py).
Non-goals: batch > 1, non-f32 caches, a parallel split over keys in decode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tvm import tirx
from tvm.script import tirx as T

KEY_BLOCK = 16  # prefill: keys per online-softmax block (two AVX2 / four NEON f32 vectors)
ROW_TILE = 32  # prefill: query rows (heads of one KV group x positions) sharing each loaded key block
VEC = 8  # f32 lanes of the vectorised exp loops
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


def spec_attrs(spec: AttnSpec) -> dict[str, object]:
    """The spec as function attributes (ints / floats / strings), read back by `decode_spec`."""
    return {
        "livc.attn": [spec.heads, spec.kv_heads, spec.dk, spec.dv, spec.slots, int(spec.causal)],
        "livc.attn_window": -1 if spec.window is None else spec.window,
        "livc.attn_softcap": -1.0 if spec.softcap is None else float(spec.softcap),
        "livc.attn_mask": spec.key_mask or "",
    }


def lanes(n: int) -> int:
    """SIMD lanes used for a reduction over a contiguous axis of length n (8 x f32 = one AVX2 / two NEON regs)."""
    return next(w for w in (8, 4, 2, 1) if n % w == 0)


def without_param(func: tirx.PrimFunc, name: str) -> tirx.PrimFunc:
    """`func` without the handle parameter `name` (an optional input the body does not read)."""
    params = [p for p in func.params if p.name != name]
    return tirx.PrimFunc(params, func.body, func.ret_type, func.attrs)


def _attrs(kind: str) -> dict[str, object]:
    return {"tirx.noalias": True, "op_pattern": 8, "livc.kernel": kind, "livc.scheduled": True}


def fast_exp(x: tirx.PrimExpr) -> tirx.PrimExpr:
    """exp(x) in f32 as plain arithmetic (Cephes expf: 2^n times a degree-7 polynomial, relative error ~1e-7),
    so that loops over it vectorise: LLVM has no vector expf here and calls libm once per lane otherwise.
    Inputs are clamped to [-87.3, 88.3] (below: ~1e-38, never 0; callers select 0 for masked keys)."""
    x = T.max(T.min(x, T.float32(88.3)), T.float32(-87.3))
    n = T.floor(x * T.float32(1.44269504088896341) + T.float32(0.5))
    r = x - n * T.float32(0.693359375) - n * T.float32(-2.12194440e-4)
    p = T.float32(1.9875691500e-4)
    for c in (1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1):
        p = p * r + T.float32(c)
    p = p * r * r + r + T.float32(1.0)
    scale = tirx.reinterpret("float32", tirx.shift_left(n.astype("int32") + 127, tirx.const(23, "int32")))
    return p * scale


def _capped(spec: AttnSpec, s: tirx.PrimExpr) -> tirx.PrimExpr:
    if spec.softcap is None:
        return s
    cap = float(spec.softcap)
    return T.float32(cap) * T.tanh(s * T.float32(1.0 / cap))


def _visible(spec: AttnSpec, km: tirx.Buffer | None, key: tirx.PrimExpr, query: tirx.PrimExpr) -> tirx.PrimExpr:
    """key_mask[key] or key == query (a token always sees itself)."""
    if km is None or spec.key_mask is None:
        return tirx.const(True, "bool")
    flag = km[0, key] if spec.key_mask == "bool" else km[0, key] > T.float32(0.5)
    return tirx.Or(flag, key == query)


# ---- cache writes ------------------------------------------------------------------------------------------


def kv_store_decode(spec: AttnSpec) -> tirx.PrimFunc:
    """(cache_k, cache_v, k [1,1,KV,dk], v [1,1,KV,dv], pos): slot pos (ring: pos % S) <- k, v. In place."""
    kvh, s, dk, dv, ring = spec.kv_heads, spec.slots, spec.dk, spec.dv, spec.ring

    @T.prim_func(private=True)  # no global symbol: Relax names each added copy
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

    @T.prim_func(private=True)  # no global symbol: Relax names each added copy
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
    padded = (s + VEC - 1) // VEC * VEC
    scale = spec.scale
    masked = spec.key_mask is not None
    km_dtype = spec.key_mask or "float32"

    @T.prim_func(private=True)  # no global symbol: Relax names each added copy
    def attention_decode(q: T.Buffer((1, 1, h_, dk), "float32"), ck: T.Buffer((1, kvh, s, dk), "float32"),
                         cv: T.Buffer((1, kvh, s, dv), "float32"), pos: T.int64, km_h: T.handle,
                         y: T.Buffer((1, 1, h_, dv), "float32")):  # fmt: skip
        T.func_attr(_attrs("attention_decode") | spec_attrs(spec))
        nk = T.int64()
        km = T.match_buffer(km_h, (1, nk), km_dtype)
        n: T.int64 = T.min(pos + T.int64(1), T.int64(s))
        for h in T.parallel(h_):
            sc = T.alloc_local((padded,), "float32")
            part = T.alloc_local((lk,), "float32")
            acc = T.alloc_local((dv,), "float32")
            mx: T.float32 = T.float32(NEG)
            for j in range(n):
                for ln in T.vectorized(lk):
                    part[ln] = T.float32(0)
                for d0 in range(dk // lk):
                    for ln in T.vectorized(lk):
                        part[ln] = part[ln] + q[0, 0, h, d0 * lk + ln] * ck[0, h // rep, j, d0 * lk + ln]
                dot: T.float32 = T.float32(0)
                for ln in range(lk):
                    dot = dot + part[ln]
                sc[j] = _capped(spec, dot * T.float32(scale))
                if masked:
                    key: T.int64 = pos - T.floormod(pos - j, T.int64(s))
                    sc[j] = T.if_then_else(_visible(spec, km, key, pos), sc[j], T.float32(NEG))
                mx = T.max(mx, sc[j])
            for j0 in range((n + T.int64(VEC - 1)) // T.int64(VEC)):
                for ln in T.vectorized(T.int64(VEC)):
                    sc[j0 * VEC + ln] = T.if_then_else(
                        tirx.And(j0 * VEC + ln < n, sc[j0 * VEC + ln] > T.float32(NEG)),
                        fast_exp(sc[j0 * VEC + ln] - mx),
                        T.float32(0),
                    )
            for d in T.vectorized(dv):
                acc[d] = T.float32(0)
            total: T.float32 = T.float32(0)
            for j in range(n):
                total = total + sc[j]
                for d in T.vectorized(dv):
                    acc[d] = acc[d] + sc[j] * cv[0, h // rep, j, d]
            for d in T.vectorized(dv):
                y[0, 0, h, d] = acc[d] / total

    return attention_decode if masked else without_param(attention_decode, "km")


# ---- prefill -----------------------------------------------------------------------------------------------


def _key_range(spec: AttnSpec, first_row: tirx.PrimExpr, rows_end: tirx.PrimExpr, t: tirx.PrimExpr):  # noqa: ANN202
    """Keys any of the rows first_row..rows_end-1 may see: [lo, end)."""
    lo = T.max(first_row - T.int64(spec.window - 1), T.int64(0)) if spec.window else T.int64(0)
    return lo, (rows_end if spec.causal else t)


def _visible_prefill(spec: AttnSpec, km: tirx.Buffer | None, i: tirx.PrimExpr, j: tirx.PrimExpr) -> tirx.PrimExpr:
    ok = tirx.const(True, "bool")
    if spec.causal:
        ok = tirx.And(ok, j <= i)
    if spec.window:
        ok = tirx.And(ok, j > i - T.int64(spec.window))
    return tirx.And(ok, _visible(spec, km, j, i))


def attention_prefill(spec: AttnSpec) -> tirx.PrimFunc:
    """(q [1,T,H,dk], k^T [1,KV,dk,T], v [1,T,KV,dv][, key_mask [1, N]]) -> y [1,T,H,dv].

    K comes transposed (the caller permutes it once) so that scores vectorise over keys. Parallel over (KV
    head, block of bq positions); a tile holds the R = rep * bq query rows (the rep query heads of that KV
    head at those positions, R >= ROW_TILE). Keys go in blocks of KEY_BLOCK: the R x KEY_BLOCK scores are a
    small GEMM vectorised over keys, then masked (causal, window, key_mask) and folded into an online softmax
    (running max, rescaled sum and accumulator, vectorised over dv)."""
    kvh, dk, dv, rep = spec.kv_heads, spec.dk, spec.dv, spec.rep
    bq, bk = max(1, ROW_TILE // rep), KEY_BLOCK
    rt = rep * bq
    scale = spec.scale
    masked = spec.key_mask is not None
    km_dtype = spec.key_mask or "float32"
    h_ = spec.heads

    @T.prim_func(private=True)  # no global symbol: Relax names each added copy
    def attention_prefill(q_h: T.handle, kt_h: T.handle, v_h: T.handle, km_h: T.handle, y_h: T.handle):
        T.func_attr(_attrs("attention_prefill"))
        t = T.int64()
        nk = T.int64()
        q = T.match_buffer(q_h, (1, t, h_, dk), "float32")
        kt = T.match_buffer(kt_h, (1, kvh, dk, t), "float32")
        v = T.match_buffer(v_h, (1, t, kvh, dv), "float32")
        km = T.match_buffer(km_h, (1, nk), km_dtype)
        y = T.match_buffer(y_h, (1, t, h_, dv), "float32")
        nb: T.int64 = (t + T.int64(bq - 1)) // T.int64(bq)
        for cb in T.parallel(kvh * nb):
            c: T.int64 = cb // nb
            i0: T.int64 = T.floormod(cb, nb) * T.int64(bq)
            rows: T.int64 = T.min(T.int64(bq), t - i0)
            qs = T.alloc_local((rt, dk), "float32")
            sc = T.alloc_local((rt, bk), "float32")
            acc = T.alloc_local((rt, dv), "float32")
            mx = T.alloc_local((rt,), "float32")
            total = T.alloc_local((rt,), "float32")
            for r in range(T.int64(rt)):
                for d in T.vectorized(dk):
                    qs[r, d] = T.if_then_else(
                        r % bq < rows, q[0, T.min(i0 + r % bq, t - 1), c * rep + r // bq, d], T.float32(0)
                    )
                for d in T.vectorized(dv):
                    acc[r, d] = T.float32(0)
                mx[r] = T.float32(NEG)
                total[r] = T.float32(0)
            lo, end = _key_range(spec, i0, i0 + rows, t)
            for blk in range((end - lo + T.int64(bk - 1)) // T.int64(bk)):
                j0: T.int64 = lo + blk * T.int64(bk)
                width: T.int64 = T.min(T.int64(bk), end - j0)
                for r in range(T.int64(rt)):
                    for jj in T.vectorized(bk):
                        sc[r, jj] = T.float32(0)
                    if width == T.int64(bk):  # a full block: contiguous vector loads of kt
                        for d in range(dk):
                            for jj in T.vectorized(bk):
                                sc[r, jj] = sc[r, jj] + qs[r, d] * kt[0, c, d, j0 + jj]
                    else:
                        for d in range(dk):
                            for jj in T.vectorized(T.int64(bk)):
                                sc[r, jj] = sc[r, jj] + qs[r, d] * T.if_then_else(
                                    jj < width, kt[0, c, d, T.min(j0 + jj, t - 1)], T.float32(0)
                                )
                for r in range(T.int64(rt)):
                    for jj in T.vectorized(T.int64(bk)):
                        sc[r, jj] = T.if_then_else(
                            tirx.And(jj < width, _visible_prefill(spec, km, i0 + r % bq, j0 + jj)),
                            _capped(spec, sc[r, jj] * T.float32(scale)),
                            T.float32(NEG),
                        )
                    bmx: T.float32 = T.float32(NEG)
                    for jj in range(bk):
                        bmx = T.max(bmx, sc[r, jj])
                    new: T.float32 = T.max(mx[r], bmx)
                    corr: T.float32 = fast_exp(mx[r] - new)
                    mx[r] = new
                    for jj in T.vectorized(bk):
                        sc[r, jj] = T.if_then_else(sc[r, jj] > T.float32(NEG), fast_exp(sc[r, jj] - new), T.float32(0))
                    bsum: T.float32 = T.float32(0)
                    for jj in range(bk):
                        bsum = bsum + sc[r, jj]
                    total[r] = total[r] * corr + bsum
                    for d in T.vectorized(dv):
                        acc[r, d] = acc[r, d] * corr
                    for jj in range(width):
                        for d in T.vectorized(dv):
                            acc[r, d] = acc[r, d] + sc[r, jj] * v[0, j0 + jj, c, d]
            for r in range(T.int64(rt)):
                if r % bq < rows:
                    for d in T.vectorized(dv):
                        y[0, i0 + r % bq, c * rep + r // bq, d] = acc[r, d] / total[r]

    return attention_prefill if masked else without_param(attention_prefill, "km")
