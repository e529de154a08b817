"""How a generated livc module is read on a MAD task: LM logits, or MAD's auto-encoder for compression.

`AutoEncoder(backbone, d, vocab, max_len)` follows MAD's `AutoEncoder` (global_pool "last"): the
backbone's hidden state at the last position (taken at the input of its LM head, i.e. after the final
norm, with a forward hook) plus a fixed sin/cos code of each output position goes through MAD's
non-expanding decoder (RMSNorm, Linear d->d, GELU, RMSNorm, Linear d->d, GELU) and an unembedding
(RMSNorm, Linear d->vocab). The backbone's own head output is ignored (it still runs: small cost).
Differences from MAD, kept deliberately: the backbone is the candidate's (its embedding, layers and
final norm), not MAD's encoder stack without a final norm.

Both readouts return (logits [B, L, vocab], aux_loss).
Preconditions: the generated module has a `head` submodule called with the hidden states first.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LanguageModel(nn.Module):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.backbone(ids)
        return out.logits, out.aux_loss


class AutoEncoder(nn.Module):
    def __init__(self, backbone: nn.Module, d: int, vocab: int, max_len: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.decoder = nn.Sequential(
            nn.RMSNorm(d), nn.Linear(d, d), nn.GELU(), nn.RMSNorm(d), nn.Linear(d, d), nn.GELU()
        )
        self.unembed = nn.Sequential(nn.RMSNorm(d), nn.Linear(d, vocab))
        self.register_buffer("positions", sincos(max_len, d), persistent=False)
        self._hidden: list[torch.Tensor] = []
        backbone.head.register_forward_hook(self._capture)
        for m in (*self.decoder, *self.unembed):
            _init(m)

    def _capture(self, module: nn.Module, args: tuple, output: object) -> None:
        del module, output
        self._hidden.append(args[0])

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._hidden.clear()
        out = self.backbone(ids)
        last = self._hidden.pop()[:, -1]
        x = last[:, None, :] + self.positions[: ids.shape[1]]
        return self.unembed(self.decoder(x)), out.aux_loss


def sincos(length: int, d: int) -> torch.Tensor:
    """[length, d]: sin of the positions at d // 2 geometric frequencies, then their cos (zero-padded)."""
    half = d // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(half, 1))
    angle = torch.arange(length, dtype=torch.float32)[:, None] * freq[None]
    code = torch.cat([angle.sin(), angle.cos()], dim=1)
    return nn.functional.pad(code, (0, d - 2 * half))


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, std=0.02)
        nn.init.zeros_(m.bias)


def hidden_width(backbone: nn.Module, device: torch.device | str) -> int:
    """The width of the hidden states entering the LM head (one 2-token forward pass)."""
    seen: list[int] = []
    handle = backbone.head.register_forward_hook(lambda m, a, o: seen.append(a[0].shape[-1]))
    try:
        with torch.no_grad():
            backbone(torch.zeros((1, 2), dtype=torch.long, device=device))
    finally:
        handle.remove()
    return seen[0]
