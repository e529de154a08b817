def attention(q, k, v, cache_k, cache_v, pos, causal, window, write, key_mask=None, softcap=None):
    """Softmax attention; q [B, L, H, dk], k/v [B, L, KV, d] with H a multiple of KV (GQA).

    cache_k/cache_v [B, KV, max_len, d] are static: prefill writes positions 0..L-1, decode writes
    `pos` and attends over the cache with a mask. `write` is False for layers that read another
    layer's cache (KV sharing). `key_mask` [B, keys] restricts the keys (Mixture-of-Recursions
    recursion-wise caching); a token always sees itself so no row is empty.
    """
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    groups = q.shape[1] // k.shape[1]
    if cache_k is not None and pos is not None:
        if write:
            cache_k.index_copy_(2, pos.reshape(1), k)
            cache_v.index_copy_(2, pos.reshape(1), v)
        keys = torch.arange(cache_k.shape[2], device=q.device)
        mask = keys <= pos
        if window is not None:
            mask = mask & (keys > pos - window)
        k, v = cache_k, cache_v
        mask = mask[None, None, None, :]
        if key_mask is not None:
            mask = (mask & key_mask[:, None, None, :]) | (keys == pos)[None, None, None, :]
    else:
        if cache_k is not None and write:
            cache_k[:, :, : k.shape[2]].copy_(k)
            cache_v[:, :, : v.shape[2]].copy_(v)
        mask = None
        if window is not None or not causal:
            i = torch.arange(q.shape[2], device=q.device)[:, None]
            j = torch.arange(k.shape[2], device=q.device)[None, :]
            mask = (j <= i) if causal else torch.ones_like(j <= i)
            if window is not None:
                mask = mask & (j > i - window)
        if key_mask is not None:
            i = torch.arange(q.shape[2], device=q.device)[:, None]
            j = torch.arange(k.shape[2], device=q.device)[None, :]
            base = mask if mask is not None else (j <= i) if causal else torch.ones_like(j <= i)
            mask = (base[None, None] & key_mask[:, None, None, :]) | (i == j)[None, None]
    if softcap is not None:
        return _softcapped(q, k, v, mask, causal, softcap, groups).transpose(1, 2)
    is_causal = causal and mask is None and q.shape[2] > 1
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, enable_gqa=groups > 1)
    return y.transpose(1, 2)


def _softcapped(q, k, v, mask, causal, cap, groups):
    """Attention with logit soft-capping (scores -> cap * tanh(scores / cap)), written out explicitly."""
    if groups > 1:
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    scores = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
    scores = cap * torch.tanh(scores / cap)
    if mask is None and causal:
        i = torch.arange(q.shape[2], device=q.device)[:, None]
        mask = torch.arange(k.shape[2], device=q.device)[None, :] <= i
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return (torch.softmax(scores, dim=-1) @ v.float()).to(q.dtype)
