"""Session: run a built (or loaded) TVM model: init_cache, prefill, decode, greedy generate.

    s = Session(built, state)          # state: param id -> f32 np array (e.g. a torch state dict as numpy)
    logits = s.prefill([1, 2, 3])      # np (1, vocab): the last prompt position; the cache restarts at 0
    logits = s.decode(7)               # np (1, vocab) at the next position
    ids = s.generate([1, 2, 3], 5)     # np int64 (1, P + 5), greedy

Weights are packed once (plan.pack: matrix weights into the build's storage format) and kept on the device;
`packed` takes arrays already in storage (artifacts), in `plan.weight_inputs` order or by input name.
Preconditions: `built` has `.executable` and `.plan` (compile.Built or an artifact). Non-goals: sampling
other than greedy, batch > 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tvm
from tvm import relax

from livc.backends.tvm.errors import ARTIFACT, UNSUPPORTED, TvmError
from livc.backends.tvm.ffi_runtime import greedy
from livc.backends.tvm.plan import Plan, capacity, checked


class Session:
    def __init__(
        self,
        built: Any,
        state: Mapping[str, np.ndarray] | None = None,
        packed: Sequence[np.ndarray] | Mapping[str, np.ndarray] | None = None,
        device: Any = None,
    ) -> None:
        self.plan: Plan = built.plan
        self.decodes: bool = getattr(built, "decodes", True)
        self.device = device if device is not None else tvm.cpu()
        self.vm = relax.VirtualMachine(built.executable, self.device)
        arrays = self._arrays(state, packed)
        self.weights = [tvm.runtime.tensor(np.ascontiguousarray(a), self.device) for a in arrays]
        self.capacity = capacity(self.plan)
        self.cache: list[Any] = []
        self.pos = 0
        self.init_cache()

    def _arrays(self, state: Mapping[str, np.ndarray] | None, packed: Any) -> list[np.ndarray]:
        if (state is None) == (packed is None):
            raise TvmError(ARTIFACT, "Session: give exactly one of state (f32 by param id) or packed arrays")
        if state is not None:
            return self.plan.pack(dict(state))
        if isinstance(packed, Mapping):
            missing = [w.name for w in self.plan.weight_inputs if w.name not in packed]
            if missing:
                raise TvmError(ARTIFACT, f"weights: stored array {missing[0]} is missing")
            packed = [packed[w.name] for w in self.plan.weight_inputs]
        return checked(self.plan, packed)

    def init_cache(self) -> None:
        """A fresh zero cache at position 0 (plan.cache order, batch 1)."""
        self.cache = [tvm.runtime.tensor(np.zeros(e.shape, dtype=e.dtype), self.device) for e in self.plan.cache]
        self.pos = 0

    def _run(self, name: str, *head: Any) -> np.ndarray:
        out = self.vm[name](*head, *self.cache, *self.weights)
        self.cache = [out[i + 1] for i in range(len(self.cache))]
        return out[0].numpy()

    def prefill(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Run the prompt from position 0 on a fresh cache; the logits (1, vocab) of its last position."""
        tokens = np.asarray(ids, dtype=np.int32).reshape(1, -1)
        if tokens.shape[1] < 1:
            raise ValueError("prefill: the prompt must hold at least one token")
        if self.capacity is not None and tokens.shape[1] > self.capacity:
            raise ValueError(f"prefill of {tokens.shape[1]} tokens exceeds the cache's max_len = {self.capacity}")
        self.init_cache()
        logits = self._run("prefill", tvm.runtime.tensor(tokens, self.device))
        self.pos = tokens.shape[1]
        return logits

    def decode(self, token: int) -> np.ndarray:
        """One token at the current position; its logits (1, vocab)."""
        if not self.decodes:
            raise TvmError(
                UNSUPPORTED, "decode: the model has bidirectional attention and cannot decode token by token"
            )
        if self.capacity is not None and self.pos >= self.capacity:
            raise ValueError(f"decode at position {self.pos} is past the cache's max_len = {self.capacity}")
        tokens = tvm.runtime.tensor(np.asarray([[token]], dtype=np.int32), self.device)
        logits = self._run("decode_step", tokens, tvm.runtime.ShapeTuple([self.pos]))
        self.pos += 1
        return logits

    def generate(self, ids: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
        """Greedy: the prompt followed by n new tokens, np int64 (1, P + n)."""
        return greedy(self, ids, n)
