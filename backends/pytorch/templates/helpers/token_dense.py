def token_dense(x, weight, history, pos):
    """y_t = sum_{s<=t} W[t, s] x_s with a learned W [max_len, max_len] (dense token mixing)."""
    if pos is not None and history is not None:
        history.index_copy_(2, pos.reshape(1), x.transpose(1, 2).to(history.dtype))
        keys = torch.arange(history.shape[-1], device=x.device)
        row = weight[pos.reshape(())][: history.shape[-1]] * (keys <= pos)
        return torch.einsum("bcs,s->bc", history.to(x.dtype), row.to(x.dtype))[:, None]
    length = x.shape[1]
    if history is not None:
        history[:, :, :length].copy_(x.transpose(1, 2))
    return torch.einsum("ts,bsc->btc", weight[:length, :length].tril().to(x.dtype), x)
