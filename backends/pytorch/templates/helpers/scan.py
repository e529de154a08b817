SCAN_CHUNK = 16


def gated_scan(q, k, v, log_decay, state, pos):
    """S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t; o_t = q_t S_t, per head.

    q, k, log_decay [B, L, H, dk]; v [B, L, H, dv]; state [B, H, dk, dv] or None. Prefill and
    training use a chunked parallel form (a loop over L / SCAN_CHUNK chunks, not over tokens).
    """
    b, length, h, dk = k.shape
    fresh = state is None or pos is None  # prefill starts a new sequence; decode continues the state
    s = torch.zeros(b, h, dk, v.shape[-1], device=q.device, dtype=torch.float32) if fresh else state.float()
    if pos is not None and state is not None:
        s = s * log_decay[:, 0].float().exp()[..., None] + k[:, 0].float()[..., None] * v[:, 0].float()[:, :, None, :]
        state.copy_(s)
        return torch.einsum("bhd,bhde->bhe", q[:, 0].float(), s)[:, None].to(q.dtype)
    outs = []
    for start in range(0, length, SCAN_CHUNK):
        sl = slice(start, min(start + SCAN_CHUNK, length))
        o, s = _chunk(q[:, sl].float(), k[:, sl].float(), v[:, sl].float(), log_decay[:, sl].float(), s)
        outs.append(o)
    if state is not None:
        state.copy_(s)
    return torch.cat(outs, dim=1).to(q.dtype)


def _chunk(q, k, v, g, s):
    """One chunk: inter-chunk contribution from state s plus the causal intra-chunk part."""
    cum = g.cumsum(1)  # [B, C, H, dk], log decay from the chunk start, inclusive
    inter = torch.einsum("bthd,bhde->bthe", q * cum.exp(), s)
    diff = cum[:, :, None] - cum[:, None, :]  # [B, t, s, H, dk]
    c = q.shape[1]
    causal = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()
    diff = diff.masked_fill(~causal[None, :, :, None, None], float("-inf"))
    scores = torch.einsum("bthd,bshd,btshd->bhts", q, k, diff.exp())
    intra = torch.einsum("bhts,bshe->bthe", scores, v)
    last = cum[:, -1]  # [B, H, dk]
    carry = (last[:, None] - cum).exp()  # decay from each step to the chunk end
    s = s * last.exp()[..., None] + torch.einsum("bshd,bshe->bhde", k * carry, v)
    return inter + intra, s
