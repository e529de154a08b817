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
        self.kv_owner = dict(kv_owner or {})  # attention output -> the owner's cache key stem (KV sharing)
        self.exports = tuple(exports)

    def train(self, mode=True):
        """nn.Module.train without `self.training = mode`, which fails when a parameter group is registered
        under the key `training` (parameter ids keep the names written in the .liv source)."""
        self.__dict__["training"] = mode
        for module in self.children():
            module.train(mode)
        return self

    def state(self, cache, name):
        return None if cache is None else cache[self.prefix + "." + name]

    def kv(self, cache, name):
        """The K/V cache of attention `name`: its own, or under KV sharing the owner's entry it reads."""
        if cache is None:
            return None, None
        key = self.kv_owner.get(name, self.prefix + "." + name)
        return cache[key + ".k"], cache[key + ".v"]

    @staticmethod
    def key_mask(features):
        return None if features is None else features.get("key_mask")

    def export(self, features, groups):
        for name in self.exports:
            features[self.prefix + "." + name] = groups[name]


def tie(model, target, source):
    """Make parameter `target` (a dotted state-dict name) the very same tensor as `source`.

    Modules are looked up in `_modules` (not by attribute): a block may register a parameter group under a
    key that is also an `nn.Module` attribute, such as `forward`."""
    *path, attr = target.split(".")
    *src_path, src_attr = source.split(".")
    setattr(_submodule(model, path), attr, getattr(_submodule(model, src_path), src_attr))


def _submodule(model, path):
    for key in path:
        model = model._modules[key]
    return model


class Output(NamedTuple):
    """What `forward` returns for every model: logits [B, L, vocab] and the routers' auxiliary loss
    (a 0-dim float32 tensor: the sum of the MoE / Mixture-of-Recursions losses, 0 for a model without routers)."""

    logits: torch.Tensor
    aux_loss: torch.Tensor


def total_aux_loss(losses, logits):
    return torch.stack(losses).sum() if losses else logits.new_zeros((), dtype=torch.float32)


def cache_placement(model, dtype, device):
    """init_cache's defaults: the dtype and device of the model's parameters."""
    param = next(model.parameters())
    return (param.dtype if dtype is None else dtype), (param.device if device is None else device)


def check_cache_size(batch, max_len, limit=None):
    for name, value in (("batch", batch), ("max_len", max_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"init_cache: {name} must be a positive int, got {value!r}")
    if limit is not None and max_len > limit:
        raise ValueError(f"init_cache: max_len {max_len} exceeds the dense token-mixing size {limit}")


def cache_capacity(cache, axes):
    """Positions a cache holds: the size of its position-indexed entries (`axes`: key, axis, window), or None
    when none bounds it (every state has a fixed size and every sliding-window ring has `window` slots)."""
    sizes = [cache[key].shape[axis] for key, axis, window in axes if window is None or cache[key].shape[axis] < window]
    return min(sizes) if sizes else None


def check_prompt(length, capacity):
    if length < 1:
        raise ValueError("prefill: the prompt must hold at least one token")
    if capacity is not None and length > capacity:
        raise ValueError(
            f"prefill of {length} tokens exceeds the cache's max_len = {capacity} positions; "
            f"allocate it with init_cache(batch, max_len >= {length})"
        )


def check_batch(where, tokens, cache):
    """The tokens' batch must be the cache's (a batch-1 prompt into a batch-2 cache would silently broadcast)."""
    sizes = {t.shape[0] for key, t in cache.items() if key != "pos"}
    if sizes and sizes != {tokens.shape[0]}:
        raise ValueError(
            f"{where}: {tokens.shape[0]} sequence(s) but the cache was allocated for batch {min(sizes)}; "
            f"allocate it with init_cache({tokens.shape[0]}, max_len)"
        )


def check_position(cache, capacity):
    """decode_step past max_len raises. Checked in eager mode only: reading `pos` under torch.compile or
    torch.export would break the graph (there, a full cache makes the cache write fail instead)."""
    if capacity is None or torch.compiler.is_compiling():
        return
    position = int(cache["pos"])
    if position >= capacity:
        raise ValueError(
            f"decode_step at position {position} is past the cache's max_len = {capacity} positions "
            f"(0..{capacity - 1}); allocate it with init_cache(batch, max_len > {position})"
        )
