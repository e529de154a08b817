def apply_rope(x, pos, theta, fraction):
    """Rotary embedding on x [B, L, H, hd] (HF rotate_half convention), positions from `positions`."""
    hd = x.shape[-1]
    rot = int(hd * fraction)
    inv_freq = 1.0 / (theta ** (torch.arange(0, rot, 2, device=x.device, dtype=torch.float32) / rot))
    freqs = positions(x, pos).float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, :, None, :].to(x.dtype), emb.sin()[None, :, None, :].to(x.dtype)
    xr, xp = x[..., :rot], x[..., rot:]
    x1, x2 = xr[..., : rot // 2], xr[..., rot // 2 :]
    rotated = xr * cos + torch.cat((-x2, x1), dim=-1) * sin
    return torch.cat((rotated, xp), dim=-1) if rot < hd else rotated
