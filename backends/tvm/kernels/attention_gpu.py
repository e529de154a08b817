"""Decode attention for GPU targets: the same function as attention.attention_decode, scheduled for a GPU.

The CPU kernel runs one work item per query head over every cached key (rebound to GPU threads it is correct
but serial: ~10 ms of a 12.6 ms LFM2-350M decode step on an H200). This one is split-K ("flash decoding"):
1. one work group of NT threads per (query head, partition of NT cache slots): thread t scores slot p*NT + t
   (dot product over dk, scale, softcap, ring / key-mask visibility; NEG when masked or at/after n =
   min(pos + 1, S)) into shared memory; every thread reads the NT scores for the partition maximum m_p; thread
   t turns its score into exp(s - m_p) (0 when masked); thread t then sums output dims t, t + NT, ... over the
   partition (V reads coalesced across threads) and the partition's (acc, m_p, l_p) go to a global scratch
   [H, S / NT, dv + 2];
2. one work group per query head combines the partitions: y = sum_p e^(m_p - M) acc_p / sum_p e^(m_p - M) l_p.
Partitions past n write m_p = NEG, l_p = 0 and weigh nothing.
Semantics, inputs and outputs are those of kernels/attention.py (module docstring): query head h reads KV head
h // rep, a ring holds position p in slot p % S, key_mask[key] or key == pos is visible. The result differs from
the CPU kernel only by expf vs fast_exp and the summation order (~1e-7 relative).

`decode_spec(func)` reads the AttnSpec back from the attributes the CPU kernel carries (`livc.attn`), so the GPU
schedule pass (gpu/schedules.py) swaps kernels without the lowering knowing the target.
Non-goals: tensor cores, sharing K/V loads between the rep query heads of a KV head (they come from L2).
"""

from __future__ import annotations

from tvm import tirx
from tvm.script import tirx as T

from livc.backends.tvm.kernels.attention import NEG, AttnSpec, _capped, _visible, without_param

NT = 64  # threads per work group = keys per partition


def decode_spec(func: tirx.PrimFunc) -> AttnSpec | None:
    attrs = func.attrs
    if attrs is None or "livc.attn" not in attrs or attrs.get("livc.kernel") != "attention_decode":
        return None
    heads, kv_heads, dk, dv, slots, causal = (int(x) for x in attrs["livc.attn"])
    window = int(attrs["livc.attn_window"])
    softcap = float(attrs["livc.attn_softcap"])
    mask = str(attrs["livc.attn_mask"])
    return AttnSpec(
        heads, kv_heads, dk, dv, slots, bool(causal), None if window < 0 else window,
        None if softcap < 0 else softcap, mask or None,
    )  # fmt: skip


def attention_decode_gpu(spec: AttnSpec, nt: int = NT) -> tirx.PrimFunc:
    """(q [1,1,H,dk], cache_k, cache_v, pos[, key_mask [1, N]]) -> y [1,1,H,dv], GPU-scheduled (two kernels)."""
    h_, kvh, s, dk, dv, rep = spec.heads, spec.kv_heads, spec.slots, spec.dk, spec.dv, spec.rep
    parts = (s + nt - 1) // nt
    per = (dv + nt - 1) // nt
    scale = spec.scale
    masked = spec.key_mask is not None
    km_dtype = spec.key_mask or "float32"

    @T.prim_func(private=True)
    def attention_decode(q: T.Buffer((1, 1, h_, dk), "float32"), ck: T.Buffer((1, kvh, s, dk), "float32"),
                         cv: T.Buffer((1, kvh, s, dv), "float32"), pos: T.int64, km_h: T.handle,
                         y: T.Buffer((1, 1, h_, dv), "float32")):  # fmt: skip
        T.func_attr({"tirx.noalias": True, "op_pattern": 8, "livc.kernel": "attention_decode_gpu",
                     "tirx.is_scheduled": True})  # fmt: skip
        nk = T.int64()
        km = T.match_buffer(km_h, (1, nk), km_dtype)
        part = T.alloc_buffer((h_, parts, dv + 2), "float32")  # per partition: acc[dv], max, sum
        for h in T.thread_binding(T.int64(h_), thread="blockIdx.y"):
            for p in T.thread_binding(T.int64(parts), thread="blockIdx.x"):
                for t in T.thread_binding(T.int64(nt), thread="threadIdx.x"):
                    sc = T.alloc_shared((nt,), "float32")
                    st = T.alloc_local((3,), "float32")  # score, partition max, partition sum
                    acc = T.alloc_local((1,), "float32")
                    st[0] = T.float32(NEG)
                    if p * nt + t < T.min(pos + T.int64(1), T.int64(s)):
                        st[0] = T.float32(0)
                        for d in range(T.int64(dk)):
                            st[0] = st[0] + q[0, 0, h, d] * ck[0, h // rep, p * nt + t, d]
                        st[0] = _capped(spec, st[0] * T.float32(scale))
                        if masked:
                            st[0] = T.if_then_else(
                                _visible(spec, km, pos - T.floormod(pos - (p * nt + t), T.int64(s)), pos),
                                st[0],
                                T.float32(NEG),
                            )
                    sc[t] = st[0]
                    T.tvm_storage_sync("shared")
                    st[1] = T.float32(NEG)
                    for i in range(T.int64(nt)):
                        st[1] = T.max(st[1], sc[i])
                    T.tvm_storage_sync("shared")
                    sc[t] = T.if_then_else(st[0] > T.float32(NEG), T.exp(st[0] - st[1]), T.float32(0))
                    T.tvm_storage_sync("shared")
                    st[2] = T.float32(0)
                    for i in range(T.int64(nt)):
                        st[2] = st[2] + sc[i]
                    for e in range(T.int64(per)):
                        if e * nt + t < dv:
                            acc[0] = T.float32(0)
                            for i in range(T.int64(nt)):
                                if p * nt + i < T.min(pos + T.int64(1), T.int64(s)):
                                    acc[0] = acc[0] + sc[i] * cv[0, h // rep, p * nt + i, e * nt + t]
                            part[h, p, e * nt + t] = acc[0]
                    if t == 0:
                        part[h, p, dv] = st[1]
                        part[h, p, dv + 1] = st[2]
        for h in T.thread_binding(T.int64(h_), thread="blockIdx.x"):
            for t in T.thread_binding(T.int64(nt), thread="threadIdx.x"):
                tot = T.alloc_local((3,), "float32")  # max, sum, weight
                acc = T.alloc_local((1,), "float32")
                tot[0] = T.float32(NEG)
                for p in range(T.int64(parts)):
                    tot[0] = T.max(tot[0], part[h, p, dv])
                tot[1] = T.float32(0)
                for p in range(T.int64(parts)):
                    tot[1] = tot[1] + T.exp(part[h, p, dv] - tot[0]) * part[h, p, dv + 1]
                for e in range(T.int64(per)):
                    if e * nt + t < dv:
                        acc[0] = T.float32(0)
                        for p in range(T.int64(parts)):
                            acc[0] = acc[0] + T.exp(part[h, p, dv] - tot[0]) * part[h, p, e * nt + t]
                        y[0, 0, h, e * nt + t] = acc[0] / tot[1]

    return attention_decode if masked else without_param(attention_decode, "km")
