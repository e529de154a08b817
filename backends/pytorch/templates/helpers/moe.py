def moe(x, p, top_k, aux):
    """Top-k mixture of SwiGLU experts with a softmax router (weights renormalised over the top k).

    Routing gathers each expert's tokens and scatters the weighted outputs back; the Switch-style
    load-balancing loss (n * sum_e f_e * P_e) is appended to `aux`.
    """
    shape = x.shape
    flat = x.reshape(-1, shape[-1])
    probs = torch.softmax(flat.float() @ p.router.float().t(), dim=-1)
    weights, chosen = probs.topk(top_k, dim=-1)
    weights = (weights / weights.sum(-1, keepdim=True)).to(x.dtype)
    out = torch.zeros_like(flat)
    for e in range(p.router.shape[0]):
        token, slot = (chosen == e).nonzero(as_tuple=True)
        xe = flat[token]
        ye = F.linear(F.silu(F.linear(xe, p.w1[e])) * F.linear(xe, p.w3[e]), p.w2[e])
        out.index_add_(0, token, ye * weights[token, slot, None])
    if hasattr(p, "shared_w1"):
        out = out + F.linear(F.silu(F.linear(flat, p.shared_w1)) * F.linear(flat, p.shared_w3), p.shared_w2)
    if aux is not None:
        n = p.router.shape[0]
        frac = F.one_hot(chosen, n).float().sum((0, 1)) / chosen.numel()
        aux.append(n * (frac * probs.mean(0)).sum())
    return out.reshape(shape)
