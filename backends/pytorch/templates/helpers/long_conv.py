FILTER_LEN = 2048  # positions are normalised by this fixed length so prefill and decode agree


def implicit_filter(p, length, channels, emb_dim, decay_fast, decay_slow, device):
    """Hyena filter h [length, C]: PE(t) -> Linear -> sin -> (Linear -> sin)* -> Linear -> decay window."""
    t = torch.arange(length, device=device, dtype=torch.float32)[:, None] / FILTER_LEN
    bands = (emb_dim - 1) // 2
    freqs = torch.linspace(1e-4, max(bands - 1, 1e-4), max(bands, 1), device=device)[None, :bands]
    z = torch.cat([t, torch.cos(2 * math.pi * freqs * t), torch.sin(2 * math.pi * freqs * t)], dim=-1)
    w = p.filter_freq.float()
    hid = torch.sin(w * F.linear(z, p.filter_in.weight.float(), p.filter_in.bias.float()))
    i = 0
    while hasattr(p, f"filter_{i}"):
        layer = getattr(p, f"filter_{i}")
        hid = torch.sin(w * F.linear(hid, layer.weight.float(), layer.bias.float()))
        i += 1
    h = F.linear(hid, p.filter_out.weight.float())
    deltas = torch.linspace(math.log(1e-2) / decay_slow, math.log(1e-2) / decay_fast, channels, device=device)
    return h * torch.exp(-t * deltas.abs())


def modal_filter(p, length, device):
    """Hyena-LI filter h[t, c] = sum_s residue[c, s] * r[c, s]^t with r = sigmoid(poles) in (0, 1)."""
    r = torch.sigmoid(p.poles.float())
    t = torch.arange(length, device=device, dtype=torch.float32)
    return torch.einsum("cs,tcs->tc", p.residues.float(), torch.exp(t[:, None, None] * torch.log(r)[None]))


def fft_conv(u, h):
    """Causal convolution of u [B, L, C] with h [L, C] via FFT of size 2L."""
    length = u.shape[1]
    uf = torch.fft.rfft(u.float(), n=2 * length, dim=1)
    hf = torch.fft.rfft(h, n=2 * length, dim=0)
    return torch.fft.irfft(uf * hf[None], n=2 * length, dim=1)[:, :length]


def long_conv(u, p, spec, bias, history, pos):
    """Long convolution with an implicit (`spec["kind"]`) filter plus a per-channel skip term.

    Modal filters keep a recurrent state [B, C, S]; implicit filters keep the input history [B, C, max_len].
    """
    if spec["kind"] == "modal_filter":
        y = _modal(u, p, history, pos)
    else:
        y = _implicit(u, p, spec, history, pos)
    y = y + u.float() * p.skip.float()
    if bias is not None:
        y = y + bias.float()
    return y.to(u.dtype)


def _implicit(u, p, spec, history, pos):
    channels = u.shape[-1]
    if pos is not None and history is not None:
        history.index_copy_(2, pos.reshape(1), u.transpose(1, 2).to(history.dtype))
        length = history.shape[-1]
        h = implicit_filter(p, length, channels, spec["emb_dim"], spec["decay_fast"], spec["decay_slow"], u.device)
        lag = pos - torch.arange(length, device=u.device)
        taps = h[lag.clamp(min=0)] * (lag >= 0)[:, None]  # [max_len, C]
        return torch.einsum("bcs,sc->bc", history.float(), taps)[:, None]
    h = implicit_filter(p, u.shape[1], channels, spec["emb_dim"], spec["decay_fast"], spec["decay_slow"], u.device)
    if history is not None:
        history[:, :, : u.shape[1]].copy_(u.transpose(1, 2))
    return fft_conv(u, h)


def _modal(u, p, state, pos):
    if pos is not None and state is not None:
        r = torch.sigmoid(p.poles.float())
        s = state.float() * r[None] + u[:, 0].float()[..., None]
        state.copy_(s)
        return torch.einsum("bcs,cs->bc", s, p.residues.float())[:, None]
    y = fft_conv(u, modal_filter(p, u.shape[1], u.device))
    if state is not None:
        r = torch.sigmoid(p.poles.float())
        steps = torch.arange(u.shape[1] - 1, -1, -1, device=u.device, dtype=torch.float32)
        weights = torch.exp(steps[:, None, None] * torch.log(r)[None])  # r^(L-1-s)
        state.copy_(torch.einsum("bsc,scm->bcm", u.float(), weights))
    return y
