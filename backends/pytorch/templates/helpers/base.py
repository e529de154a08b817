class Params(nn.Module):
    """A named group of raw parameters: Params(weight=((1024, 3), "conv")) -> `.weight`."""

    def __init__(self, **specs):
        super().__init__()
        self.inits = {}
        nested = {}
        for name, (shape, init) in specs.items():
            if "." in name:
                head, rest = name.split(".", 1)
                nested.setdefault(head, {})[rest] = (shape, init)
                continue
            setattr(self, name, nn.Parameter(torch.empty(shape)))
            self.inits[name] = init
        for head, inner in nested.items():
            setattr(self, head, Params(**inner))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        for name, init in self.inits.items():
            init_tensor(getattr(self, name), init)


@torch.no_grad()
def init_tensor(t, init):
    """Weight initialisation by role (see docs/backends.md)."""
    if init == "ones":
        t.fill_(1.0)
    elif init == "zeros":
        t.zero_()
    elif init.startswith("value="):
        t.fill_(float(init[6:]))
    elif init == "conv":  # like nn.Conv1d: U(-1/sqrt(k), 1/sqrt(k))
        bound = 1.0 / math.sqrt(t.shape[-1])
        t.uniform_(-bound, bound)
    elif init == "a_log":  # Mamba S4D-real: A = -(1..N) per channel
        t.copy_(torch.log(torch.arange(1, t.shape[-1] + 1, dtype=t.dtype)).expand_as(t))
    elif init == "poles":  # decay rates spread in (0.5, 0.99) after sigmoid
        t.copy_(torch.linspace(0.0, 4.6, t.shape[-1], dtype=t.dtype).expand_as(t))
    else:
        t.normal_(0.0, 0.02)


def linear(in_features, out_features, bias):
    layer = nn.Linear(in_features, out_features, bias=bias)
    with torch.no_grad():
        layer.weight.normal_(0.0, 0.02)
        if bias:
            layer.bias.zero_()
    return layer


class Sublayer(nn.Module):
    """Base of every generated LIV/op class: how it is wrapped in the residual stream."""

    def __init__(self, norm=None, wrap="pre_norm"):
        super().__init__()
        self.norm = norm
        self.wrap = wrap

    def residual(self, h, cache, pos, features):
        if self.wrap == "post_norm":
            return self.norm(h + self(h, cache, pos, features), cache, pos, features)
        if self.wrap == "none":
            return self(h, cache, pos, features)
        x = self.norm(h, cache, pos, features) if self.norm is not None else h
        return h + self(x, cache, pos, features)


def positions(x, pos):
    """Token positions of x [B, L, ...]: 0..L-1 in parallel/prefill, `pos` in decode."""
    if pos is None:
        return torch.arange(x.shape[1], device=x.device)
    return pos.reshape(1)


class Block(Sublayer):
    """A generated LIV/op class: knows its parameter prefix, its cache entries and its exports."""

    def __init__(self, prefix, norm=None, wrap="pre_norm", kv_owner=None, exports=()):
        super().__init__(norm, wrap)
        self.prefix = prefix
        self.kv_owner = kv_owner
        self.exports = tuple(exports)

    def state(self, cache, name):
        return None if cache is None else cache[self.prefix + "." + name]

    def kv(self, cache, name):
        if cache is None:
            return None, None
        key = self.kv_owner or self.prefix + "." + name
        return cache[key + ".k"], cache[key + ".v"]

    @staticmethod
    def key_mask(features):
        return None if features is None else features.get("key_mask")

    def export(self, features, groups):
        for name in self.exports:
            features[self.prefix + "." + name] = groups[name]


def tie(model, target, source):
    """Make parameter `target` (a dotted name) the very same tensor as `source`."""
    module_name, _, attr = target.rpartition(".")
    src_module, _, src_attr = source.rpartition(".")
    setattr(model.get_submodule(module_name), attr, getattr(model.get_submodule(src_module), src_attr))
