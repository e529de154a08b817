def causal_conv(x, weight, bias, state, pos):
    """Causal depthwise convolution of x [B, L, C] with weight [G, k] (G = C or filter groups).

    No state: parallel. State [B, C, k-1] and pos None: prefill (parallel, then keep the last k-1
    inputs). pos given: one decode step (window = state + x, then shift the state).
    """
    channels, k = x.shape[-1], weight.shape[-1]
    w = weight if weight.shape[0] == channels else weight.repeat_interleave(channels // weight.shape[0], dim=0)
    if pos is not None and state is not None:
        window = torch.cat((state.to(x.dtype), x.transpose(1, 2)), dim=-1)
        y = (window * w[None]).sum(-1)[:, None, :]
        state.copy_(window[:, :, 1:])
    else:
        xt = x.transpose(1, 2)
        y = F.conv1d(F.pad(xt, (k - 1, 0)), w[:, None, :], groups=channels).transpose(1, 2)
        if state is not None and k > 1:
            tail = F.pad(xt, (max(0, k - 1 - xt.shape[-1]), 0))[:, :, -(k - 1):]
            state.copy_(tail)
    return y + bias if bias is not None else y
