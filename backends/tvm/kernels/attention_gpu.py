"""Decode attention for GPU targets: the same function as attention.attention_decode, scheduled for a GPU.

The CPU kernel runs one work item per query head over every cached key (rebound to GPU threads it is correct
but serial: ~10 ms of a 12.6 ms LFM2-350M decode step on an H200). This one runs one work group of NT threads
per query head and walks the n = min(pos + 1, S) written slots in chunks of NT keys with an online softmax:
1. thread t scores key c*NT + t (dot product over dk, scale, softcap, ring / key-mask visibility; NEG when
   masked or past n) into shared memory;
2. every thread reads the NT scores (a broadcast read) for the chunk maximum, so all threads hold the same
   running max m and sum l; thread t then turns its score into p = exp(s - m_new) (0 when masked);
3. thread t accumulates output dims t, t + NT, ... over the chunk's p (reads of V coalesced across threads),
   after rescaling by exp(m_old - m_new).
Semantics, inputs and outputs are those of kernels/attention.py (module docstring): query head h reads KV head
h // rep, a ring holds position p in slot p % S, key_mask[key] or key == pos is visible. The result differs from
the CPU kernel only by expf vs fast_exp and the summation order (~1e-7 relative).

`decode_spec(func)` reads the AttnSpec back from the attributes the CPU kernel carries (`livc.attn`), so the GPU
schedule pass (gpu/schedules.py) swaps kernels without the lowering knowing the target.
Non-goals: split-K over several work groups per head (n up to a few thousand keys is a few chunks), tensor cores.
"""

from __future__ import annotations

from tvm import tirx
from tvm.script import tirx as T

from livc.backends.tvm.kernels.attention import NEG, AttnSpec, _capped, _visible, without_param

NT = 128  # threads per work group = keys per chunk


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
    """(q [1,1,H,dk], cache_k, cache_v, pos[, key_mask [1, N]]) -> y [1,1,H,dv], GPU-scheduled."""
    h_, kvh, s, dk, dv, rep = spec.heads, spec.kv_heads, spec.slots, spec.dk, spec.dv, spec.rep
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
        for h in T.thread_binding(h_, thread="blockIdx.x"):
            for t in T.thread_binding(nt, thread="threadIdx.x"):
                sc = T.alloc_shared((nt,), "float32")
                acc = T.alloc_local((per,), "float32")
                st = T.alloc_local((4,), "float32")  # m, l, chunk max, dot
                for e in range(per):
                    acc[e] = T.float32(0)
                st[0] = T.float32(NEG)
                st[1] = T.float32(0)
                for c in range((T.min(pos + T.int64(1), T.int64(s)) + T.int64(nt - 1)) // T.int64(nt)):
                    st[3] = T.float32(0)
                    if c * nt + t < T.min(pos + T.int64(1), T.int64(s)):
                        for d in range(dk):
                            st[3] = st[3] + q[0, 0, h, d] * ck[0, h // rep, c * nt + t, d]
                        st[3] = _capped(spec, st[3] * T.float32(scale))
                        if masked:
                            st[3] = T.if_then_else(
                                _visible(spec, km, pos - T.floormod(pos - (c * nt + t), T.int64(s)), pos),
                                st[3],
                                T.float32(NEG),
                            )
                    else:
                        st[3] = T.float32(NEG)
                    sc[t] = st[3]
                    T.tvm_storage_sync("shared")
                    st[2] = st[0]
                    for i in range(nt):
                        st[2] = T.max(st[2], sc[i])
                    T.tvm_storage_sync("shared")
                    sc[t] = T.if_then_else(st[3] > T.float32(NEG), T.exp(st[3] - st[2]), T.float32(0))
                    T.tvm_storage_sync("shared")
                    st[3] = T.exp(st[0] - st[2])  # the rescale of what was accumulated so far
                    st[1] = st[1] * st[3]
                    for e in range(per):
                        acc[e] = acc[e] * st[3]
                    for i in range(nt):
                        if c * nt + i < T.min(pos + T.int64(1), T.int64(s)):
                            st[1] = st[1] + sc[i]
                            for e in range(per):
                                if e * nt + t < dv:
                                    acc[e] = acc[e] + sc[i] * cv[0, h // rep, c * nt + i, e * nt + t]
                    st[0] = st[2]
                    T.tvm_storage_sync("shared")
                for e in range(per):
                    if e * nt + t < dv:
                        y[0, 0, h, e * nt + t] = acc[e] / st[1]

    return attention_decode if masked else without_param(attention_decode, "km")
