def attention(q, k, v, cache_k, cache_v, pos, causal, window, write, key_mask=None, softcap=None):
    """Softmax attention; q [B, L, H, dk], k/v [B, L, KV, d] with H a multiple of KV (GQA).

    cache_k/cache_v [B, KV, S, d] are static. S = max_len, position p in slot p; for a sliding window
    S = min(window, max_len), a ring buffer (position p in slot p % window once S == window). Prefill
    writes the prompt's last S positions, decode writes `pos` and attends over the S slots with a
    mask. `write` is False for layers that read another layer's cache (KV sharing). `key_mask`
    [B, max_len] restricts the keys (Mixture-of-Recursions recursion-wise caching); a token always
    sees itself so no row is empty.
    """
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    groups = q.shape[1] // k.shape[1]
    if cache_k is not None and pos is not None:
        if write:
            slot = (pos % window if ring_buffer(cache_k, window) else pos).reshape(1)
            cache_k.index_copy_(2, slot, k.to(cache_k.dtype))
            cache_v.index_copy_(2, slot, v.to(cache_v.dtype))
        k, v = cache_k.to(q.dtype), cache_v.to(q.dtype)  # the cache may have another dtype (init_cache(dtype=))
        mask = _cached_keys_mask(cache_k.shape[2], pos, window, key_mask, q.device)
    else:
        if cache_k is not None and write:
            store_prompt(cache_k, k, window)
            store_prompt(cache_v, v, window)
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


def ring_buffer(cache, window):
    """A sliding-window cache with `window` slots: position p lives in slot p % window."""
    return window is not None and cache.shape[2] == window


def store_prompt(cache, x, window):
    """Prefill: positions 0..L-1 of x [B, KV, L, d] into their slots (a ring keeps the last `window`)."""
    length = x.shape[2]
    if not ring_buffer(cache, window):
        cache[:, :, :length].copy_(x)
        return
    first = max(0, length - window)
    cache.index_copy_(2, torch.arange(first, length, device=x.device) % window, x[:, :, first:].to(cache.dtype))


def _cached_keys_mask(slots, pos, window, key_mask, device):
    """Decode mask [1 or B, 1, 1, slots] over the cache: slot j holds position pos - ((pos - j) mod slots)
    (negative: not written in this sequence), visible if at most `window` back and selected by key_mask."""
    keys = pos - (pos - torch.arange(slots, device=device)) % slots
    mask = keys >= 0
    if window is not None:
        mask = mask & (keys > pos - window)
    mask = mask[None, None, None, :]
    if key_mask is not None:
        mask = (mask & key_mask[:, keys.clamp(min=0)][:, None, None, :]) | (keys == pos)[None, None, None, :]
    return mask


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
