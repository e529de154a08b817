SSM_CHUNK = 8


def selective_scan(u, dt, b, c, a_log, d_skip, state, pos):
    """Mamba-1: h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t, y_t = C_t h_t + D u_t; A = -exp(A_log).

    u, dt [B, L, E]; b, c [B, L, N]; state [B, E, N] or None. Chunked parallel form in prefill.
    """
    a = -a_log.float().exp()  # [E, N]
    bsz, length, e = u.shape
    fresh = state is None or pos is None  # prefill starts a new sequence; decode continues the state
    h = torch.zeros(bsz, e, a.shape[-1], device=u.device, dtype=torch.float32) if fresh else state.float()
    uf, dtf, bf, cf = u.float(), dt.float(), b.float(), c.float()
    if pos is not None and state is not None:
        h = h * (dtf[:, 0, :, None] * a).exp() + (dtf[:, 0] * uf[:, 0])[..., None] * bf[:, 0, None, :]
        state.copy_(h)
        y = torch.einsum("ben,bn->be", h, cf[:, 0])[:, None]
        return (y + uf * d_skip.float()).to(u.dtype)
    ys = []
    for start in range(0, length, SSM_CHUNK):
        sl = slice(start, min(start + SSM_CHUNK, length))
        y, h = _ssm_chunk(uf[:, sl], dtf[:, sl], bf[:, sl], cf[:, sl], a, h)
        ys.append(y)
    if state is not None:
        state.copy_(h)
    return (torch.cat(ys, dim=1) + uf * d_skip.float()).to(u.dtype)


def _ssm_chunk(u, dt, b, c, a, h):
    cum = (dt[..., None] * a).cumsum(1)  # [B, C, E, N]
    inter = torch.einsum("bten,ben,btn->bte", cum.exp(), h, c)
    n = u.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool, device=u.device).tril()
    diff = (cum[:, :, None] - cum[:, None, :]).masked_fill(~causal[None, :, :, None, None], float("-inf"))
    x = dt * u  # [B, C, E]
    intra = torch.einsum("btsen,bse,bsn,btn->bte", diff.exp(), x, b, c)
    last = cum[:, -1]
    h = h * last.exp() + torch.einsum("bsen,bse,bsn->ben", (last[:, None] - cum).exp(), x, b)
    return inter + intra, h
