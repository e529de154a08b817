def grouped_linear(x, weight, bias, groups):
    """Block-diagonal projection: weight [out, in / groups] applied per channel group."""
    xs = x.unflatten(-1, (groups, -1))
    w = weight.unflatten(0, (groups, -1))  # [G, out / G, in / G]
    y = torch.einsum("...gi,goi->...go", xs, w).flatten(-2)
    return y + bias if bias is not None else y
