"""EmitCtx: what one emitter sees while lowering one op of one block into Relax.

The driver (lower.py) makes one `Inputs` per entry function (the Relax parameters: weights, cache) and one
`EmitCtx` per block instance (prefix, IR types, value environment, GQA aliases). Emitters read values with
`value`, write them with `set`, read parameters with `param` / `weight`, and the cache with `cache_in` /
`cache_out` under the PyTorch keys (`key(name)` = prefix + "." + name, like `Block.state`; `kv_key(name)` like
`Block.kv`, honouring KV sharing). Every tensor value is f32 and carries the batch and token axes
[1, T, *per-token shape] (T = `seq`: the symbolic prompt length in prefill, 1 in decode). A TE kernel that
uses `pos` must take it as an explicit argument (`bb.emit_te(fn, x, ctx.pos)`), else MakePackedAPI fails.

Preconditions: the model is the `lower`-stage IR the PyTorch backend consumes. Non-goal: kernels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from tvm import relax, tirx

from livc.backends.tvm.errors import UNSUPPORTED, TvmError
from livc.compiler.ir.nodes import Op, TensorType

if TYPE_CHECKING:
    from livc.backends.tvm.matmul import Weight

Mode = Literal["prefill", "decode"]


@dataclass
class Inputs:
    """The Relax parameters of one entry function and the cache as it evolves (key -> newest value)."""

    params: dict[str, relax.Expr]  # non-matrix param id -> f32 var of the IR shape
    weights: dict[str, Weight]  # matrix param id -> storage-format weight (matmul.Weight)
    cache: dict[str, relax.Expr]  # cache key -> current value (input var, then each cache_out)
    features: dict[str, relax.Expr] = field(default_factory=dict)  # shared features, torch `features` keys
    feature_types: dict[str, TensorType] = field(default_factory=dict)  # their per-token types (un-repeated)


@dataclass
class EmitCtx:
    """One block instance being lowered (see the module docstring)."""

    bb: relax.BlockBuilder
    mode: Mode
    seq: tirx.PrimExpr | int  # token axis: tir int64 var "T" in prefill, 1 in decode
    pos: tirx.Var | None  # decode position (int64, from the R.Shape([pos]) argument); None in prefill
    max_len: int  # cache capacity in positions
    prefix: str  # "layers.3.0", "embedding", "head" ...
    types: dict[str, TensorType]  # IR value -> per-token type (inputs and outputs of the block)
    inputs: Inputs
    base: Callable[[Op, str], str]  # (op, role) -> parameter base ("conv" of "layers.3.0.conv.weight")
    aliases: dict[str, str] = field(default_factory=dict)  # value -> the value it stands for (GQA, tokens)
    unrepeated: dict[str, str] = field(default_factory=dict)  # repeat_heads output -> the value before repeats
    kv_owner: dict[str, str] = field(default_factory=dict)  # shared attention name -> owner cache key stem
    pos_shape: relax.Expr | None = None  # the decode R.Shape([pos]) argument itself (None in prefill)
    env: dict[str, relax.Expr] = field(default_factory=dict)

    # ---- values
    def _name(self, name: str) -> str:
        return self.aliases.get(name, name)

    def value(self, name: str) -> relax.Expr:
        """[1, T, *shape] f32 of IR value `name` (aliases resolved: GQA K/V arrive un-repeated like torch)."""
        key = self._name(name)
        if key not in self.env:
            raise TvmError(UNSUPPORTED, f"{self.prefix}: IR value %{name} is used before it is defined")
        return self.env[key]

    def type(self, name: str) -> TensorType:
        return self.types[self._name(name)]

    def kv(self, name: str) -> relax.Expr:
        """Attention K/V (and exported features) before any repeat_heads (grouped heads)."""
        return self.value(self.unrepeated.get(name, name))

    def kv_type(self, name: str) -> TensorType:
        return self.type(self.unrepeated.get(name, name))

    def set(self, name: str, expr: relax.Expr) -> None:
        self.env[name] = expr

    def full_shape(self, type_: TensorType) -> tuple[object, ...]:
        """The Relax shape of a value of per-token type `type_`: (1, seq, *shape)."""
        return (1, self.seq, *type_.shape)

    # ---- parameters
    def param(self, op: Op, role: str) -> relax.Expr:
        """A non-matrix parameter (norm weight, bias, conv taps ...) as f32 with its IR shape."""
        pid = op.param(role)
        if pid is None or pid not in self.inputs.params:
            raise TvmError(UNSUPPORTED, f"{self.prefix}: {op.prim} has no f32 parameter for role {role!r}")
        return self.inputs.params[pid]

    def has_param(self, op: Op, role: str) -> bool:
        return op.param(role) is not None

    def weight(self, op: Op, role: str = "weight") -> Weight:
        """A matrix weight in the build's storage format (matmul.Weight)."""
        pid = op.param(role)
        if pid is None or pid not in self.inputs.weights:
            raise TvmError(UNSUPPORTED, f"{self.prefix}: {op.prim} has no matrix weight for role {role!r}")
        return self.inputs.weights[pid]

    # ---- cache
    def key(self, name: str) -> str:
        """The cache key of this block's entry `name` (like torch Block.state)."""
        return f"{self.prefix}.{name}"

    def kv_key(self, name: str) -> str:
        """The cache key stem of attention `name` (add ".k" / ".v"): its owner's entry under KV sharing (like
        torch Block.kv with the per-attention `kv_owner` map), else its own."""
        return self.kv_owner.get(name, self.key(name))

    def cache_in(self, key: str) -> relax.Expr:
        """The current value of cache entry `key` (a full key: use `key()` / `kv_key()`)."""
        if key not in self.inputs.cache:
            raise TvmError(UNSUPPORTED, f"{self.prefix}: no cache entry {key!r} in the cache plan")
        return self.inputs.cache[key]

    def cache_out(self, key: str, expr: relax.Expr) -> None:
        """The new value of cache entry `key` (in-place kernels return the same buffer)."""
        if key not in self.inputs.cache:
            raise TvmError(UNSUPPORTED, f"{self.prefix}: no cache entry {key!r} in the cache plan")
        self.inputs.cache[key] = expr

    # ---- shared features
    @property
    def features(self) -> dict[str, relax.Expr]:
        return self.inputs.features


Emitter = Callable[[Op, EmitCtx], None]
