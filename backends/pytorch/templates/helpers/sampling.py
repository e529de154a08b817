def check_generation(input_ids, max_new_tokens, temperature, top_k, top_p):
    if input_ids.dim() != 2 or input_ids.shape[1] < 1:
        raise ValueError(f"generate: input_ids must be [batch, prompt >= 1], got {tuple(input_ids.shape)}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
    if temperature is None or isinstance(temperature, bool | str) or not temperature >= 0:
        raise ValueError(f"generate: temperature must be >= 0 (0 is greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"generate: top_k must be a positive int or None, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"generate: top_p must be in (0, 1] or None, got {top_p!r}")


def eos_ids(eos, device):
    """`eos` (None, a token id, or a list or tensor of ids) as a 1-d long tensor, or None."""
    if eos is None:
        return None
    ids = torch.as_tensor(eos, device=device)
    if ids.dtype == torch.bool or ids.is_floating_point() or ids.is_complex() or ids.numel() == 0:
        raise ValueError(f"generate: eos must be a token id or a non-empty list of ids, got {eos!r}")
    return ids.reshape(-1).long()


def next_token(logits, temperature, top_k, top_p, generator):
    """One token per row of logits [B, vocab]: the argmax at temperature 0, else a sample of
    softmax(logits / temperature) restricted to the top_k tokens and to the top_p nucleus."""
    if temperature == 0:
        return logits.argmax(-1)
    scores = logits.float()
    scores = (scores - scores.amax(-1, keepdim=True)) / temperature  # <= 0: a tiny temperature cannot overflow
    if top_k is not None:
        kth = scores.topk(min(top_k, scores.shape[-1]), dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p is not None:
        scores = nucleus(scores, top_p)
    return torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator)[:, 0]


def nucleus(scores, top_p):
    """Keep the fewest most likely tokens whose probability reaches top_p (always at least the first)."""
    ordered, order = scores.sort(dim=-1, descending=True)
    probs = torch.softmax(ordered, dim=-1)
    ordered = ordered.masked_fill(probs.cumsum(-1) - probs >= top_p, float("-inf"))
    return scores.scatter(-1, order, ordered)


def generate_tokens(model, input_ids, max_new_tokens, temperature, top_k, top_p, eos, max_len, generator):
    """init_cache + prefill(last_only) + decode_step until max_new_tokens, or until every row has produced
    an `eos` token (rows that finished early are padded with eos). Returns [B, prompt + generated]."""
    check_generation(input_ids, max_new_tokens, temperature, top_k, top_p)
    stop = eos_ids(eos, input_ids.device)
    batch, prompt = input_ids.shape
    if max_new_tokens == 0:
        return input_ids.clone()
    cache = model.init_cache(batch, prompt + max_new_tokens if max_len is None else max_len, device=input_ids.device)
    needed, capacity = prompt + max_new_tokens - 1, model.capacity(cache)
    if capacity is not None and needed > capacity:
        raise ValueError(
            f"generate: {prompt} prompt + {max_new_tokens} new tokens need max_len >= {needed}, got {capacity}"
        )
    done = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
    logits = model.prefill(input_ids, cache, last_only=True)[:, -1]
    tokens = []
    for step in range(max_new_tokens):
        token = next_token(logits, temperature, top_k, top_p, generator)
        if stop is not None:
            token = torch.where(done, stop[0], token)
            done = done | torch.isin(token, stop)
        tokens.append(token)
        if step + 1 == max_new_tokens or (stop is not None and bool(done.all())):
            break
        logits = model.decode_step(token[:, None], cache)[:, -1]
    return torch.cat([input_ids, torch.stack(tokens, dim=1)], dim=1)
