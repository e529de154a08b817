def feature_map(x, kind):
    if kind == "elu_plus_one":
        return F.elu(x) + 1.0
    if kind == "relu_map":
        return F.relu(x)
    return x


def linear_attention(q, k, v, kind, normalize, state, norm_state, pos):
    """Causal linear attention o_t = phi(q_t) S_t (/ phi(q_t) z_t), S_t = sum phi(k_s)^T v_s."""
    q, k = feature_map(q, kind), feature_map(k, kind)
    zeros = torch.zeros_like(k)
    o = gated_scan(q, k, v, zeros, state, pos)
    if not normalize:
        return o
    den = gated_scan(q, k, torch.ones_like(v[..., :1]), zeros, norm_state, pos)
    return o / (den + 1e-6)
