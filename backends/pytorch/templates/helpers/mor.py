class Recursion(nn.Module):
    """Mixture-of-Recursions over the shared layer stack.

    expert_choice: one sigmoid router per step; training (parallel forward, no cache) keeps the
    top ceil(capacity * L) of the tokens still active and adds the BCE auxiliary loss; inference
    keeps tokens whose router score exceeds 0.5 (causal, so prefill + decode equal the parallel
    forward). token_choice: one softmax router picks a depth per token; the load-balancing loss is
    added in training. Selected tokens move by h + alpha * g * (step(h) - h); the step is computed
    for every token and blended (same result as gather/scatter, not the same FLOPs).
    recursion_wise KV: attention at step r sees only the keys of tokens selected at step r
    (decode keeps a per-step validity row in the cache); kv_share reuses step 0's K/V.
    """

    def __init__(self, d, steps, kind, capacities, alpha, aux_coeff, kv, z_loss=0.0):
        super().__init__()
        self.steps, self.kind, self.capacities = steps, kind, capacities
        self.alpha, self.aux_coeff, self.kv, self.z_loss = alpha, aux_coeff, kv, z_loss
        if kind == "expert_choice":
            self.router = nn.ModuleList([Params(weight=((d,), "normal")) for _ in steps])
        else:
            self.router = Params(weight=((len(steps), d), "normal"))

    def forward(self, h, layers, cache, pos, features):
        if self.kind == "expert_choice":
            return self._expert_choice(h, layers, cache, pos, features)
        return self._token_choice(h, layers, cache, pos, features)

    def _step(self, r, h, layers, cache, pos, features, chosen):
        features["key_mask"] = self._key_mask(r, chosen, cache, pos)
        out = h
        for i in self.steps[r]:
            for sublayer in layers[i]:
                out = sublayer.residual(out, cache, pos, features)
        features["key_mask"] = None
        return out

    def _key_mask(self, r, chosen, cache, pos):
        if self.kv != "recursion_wise":
            return None
        if cache is None:
            return chosen
        valid = cache[f"recursion.{r}.valid"]
        if pos is None:
            valid[:, : chosen.shape[1]].copy_(chosen)
            return chosen
        valid.index_copy_(1, pos.reshape(1), chosen.to(valid.dtype))
        return valid > 0.5

    def _expert_choice(self, h, layers, cache, pos, features):
        active = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)
        for r in range(len(self.steps)):
            logits = h.float() @ self.router[r].weight.float()
            gate = torch.sigmoid(logits)
            if self.training and cache is None:
                k = max(1, math.ceil(self.capacities[r] * h.shape[1]))
                top = gate.masked_fill(~active, -1.0).topk(k, dim=1).indices
                chosen = torch.zeros_like(active).scatter_(1, top, True) & active
                self._aux(features, F.binary_cross_entropy_with_logits(logits, chosen.float()) * self.aux_coeff)
            else:
                chosen = active & (gate > 0.5)
            out = self._step(r, h, layers, cache, pos, features, chosen)
            weight = (chosen.float() * gate * self.alpha).to(h.dtype)[..., None]
            h = h + weight * (out - h)
            active = chosen
        return h

    def _token_choice(self, h, layers, cache, pos, features):
        logits = h.float() @ self.router.weight.float().t()
        probs = torch.softmax(logits, dim=-1)
        depth = probs.argmax(-1)
        weight = probs.max(-1).values
        if self.training and cache is None:
            n = len(self.steps)
            frac = F.one_hot(depth, n).float().mean((0, 1))
            balance = n * (frac * probs.mean((0, 1))).sum() * self.aux_coeff
            self._aux(features, balance + self.z_loss * torch.logsumexp(logits, -1).pow(2).mean())
        for r in range(len(self.steps)):
            chosen = depth >= r
            out = self._step(r, h, layers, cache, pos, features, chosen)
            g = torch.where(depth == r, weight * self.alpha, torch.ones_like(weight))
            h = h + (chosen.float() * g).to(h.dtype)[..., None] * (out - h)
        return h

    @staticmethod
    def _aux(features, loss):
        if features.get("aux") is not None:
            features["aux"].append(loss)
