"""IR nodes. Frozen, slotted, keyword-only dataclasses; tuples not lists; spans not compared.

Shapes are per token: a value of type `TensorType((H, hd))` is `[B, L, H, hd]` in prefill and
`[B, 1, H, hd]` in decode. Parameters are referenced by id from ops and owned by `Model.params`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from livc.dsl.source import Span, span_field

ir = dataclass(frozen=True, slots=True, kw_only=True)

Scalar = int | float | bool | str | None


class DType(Enum):
    F32 = "f32"
    BF16 = "bf16"
    F16 = "f16"
    INT8 = "int8"

    @property
    def bytes(self) -> int:
        return {"f32": 4, "bf16": 2, "f16": 2, "int8": 1}[self.value]


class Role(Enum):
    FEATURIZER = "featurizer"
    TOKEN_MIX = "token_mix"
    CHANNEL_MIX = "channel_mix"
    BODY = "body"


class BlockKind(Enum):
    LIV = "liv"
    OP = "op"


class Wrap(Enum):
    PRE_NORM = "pre_norm"
    POST_NORM = "post_norm"
    NONE = "none"


@ir
class TensorType:
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    def __str__(self) -> str:
        return "[" + ", ".join(str(s) for s in self.shape) + "]"


@ir
class Param:
    id: str
    shape: tuple[int, ...]
    init: str = "normal"
    span: Span = span_field()

    @property
    def numel(self) -> int:
        return TensorType(shape=self.shape).numel


@ir
class Value:
    name: str
    type: TensorType


@ir
class Op:
    """One primitive application. `params` maps a role (weight, bias, ...) to a parameter id."""

    prim: str
    inputs: tuple[str, ...]
    outputs: tuple[Value, ...]
    params: tuple[tuple[str, str], ...] = ()
    attrs: tuple[tuple[str, Scalar], ...] = ()
    span: Span = span_field()

    def attr(self, name: str, default: Scalar = None) -> Scalar:
        return dict(self.attrs).get(name, default)

    def param(self, role: str) -> str | None:
        return dict(self.params).get(role)


@ir
class Section:
    role: Role
    structure: str | None
    nonlinearity: str = "none"
    sparsity: str = "none"
    ops: tuple[Op, ...] = ()


@ir
class Block:
    """A LIV or op instance: its sections, the value it returns, and its named feature groups."""

    kind: BlockKind
    name: str
    args: tuple[tuple[str, Scalar], ...]
    input: Value
    sections: tuple[Section, ...]
    output: str
    features: tuple[Value, ...] = ()
    span: Span = span_field()

    @property
    def ops(self) -> tuple[Op, ...]:
        return tuple(op for s in self.sections for op in s.ops)


@ir
class Sublayer:
    block: Block
    wrap: Wrap = Wrap.PRE_NORM
    norm: Block | None = None


@ir
class Layer:
    index: int
    sublayers: tuple[Sublayer, ...]


@ir
class Recursion:
    """Mixture-of-Recursions: `steps[r]` lists the layer indices of recursion step r."""

    recursions: int
    sharing: str
    router: str
    capacities: tuple[float, ...]
    kv: str
    steps: tuple[tuple[int, ...], ...]
    router_params: tuple[str, ...] = ()
    router_args: tuple[tuple[str, Scalar], ...] = ()


@ir
class Share:
    """A sharing declaration still to be applied by `expand` (`sublayer` None = the whole layer)."""

    kind: str  # featurizer | weights | features
    groups: tuple[str, ...]
    source: tuple[int, int | None]
    targets: tuple[tuple[int, int | None], ...]
    span: Span = span_field()


@ir
class Budget:
    metric: str
    args: tuple[tuple[str, Scalar], ...]
    limit: int | float
    strict: bool = False
    span: Span = span_field()


@ir
class Model:
    name: str
    dtype: DType
    d_model: int
    vocab: int
    embedding: Block
    layers: tuple[Layer, ...]
    final_norm: Block | None
    head: Block
    params: tuple[Param, ...]
    recursion: Recursion | None = None
    shares: tuple[Share, ...] = ()
    budgets: tuple[Budget, ...] = ()
    context: int | None = None
    span: Span = span_field()

    def param(self, pid: str) -> Param:
        for p in self.params:
            if p.id == pid:
                return p
        raise KeyError(pid)
