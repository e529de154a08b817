def rms_norm(x, weight, eps):
    """RMSNorm over the last axis, computed in float32 (as in HF LFM2/Llama)."""
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    x = x.to(dtype)
    return x * weight if weight is not None else x
