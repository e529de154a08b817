"""Values produced by evaluating .liv expressions during elaboration.

Scalars are plain Python `int | float | bool | str | None`. Everything else is a frozen dataclass.
`POISON` stands for the result of an expression that already produced an error: operations on it
silently yield `POISON` again, so one mistake reports one diagnostic (no cascades).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from livc.dsl import ast as A
from livc.dsl.source import Span, span_field


class _Poison:
    _instance: _Poison | None = None

    def __new__(cls) -> _Poison:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "POISON"


POISON = _Poison()


@dataclass(frozen=True, slots=True)
class DType:
    name: str


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str


@dataclass(frozen=True, slots=True)
class ListV:
    items: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class TupleV:
    """Several tensors at once (the result of `split`), only for destructuring assignment."""

    items: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class TensorV:
    """A tensor inside a LIV/op body; shapes are checked by the compiler's type checker, not here."""

    name: str


@dataclass(frozen=True, slots=True)
class DefRef:
    """A reference to a `liv`, `op`, `model` or `fn` definition in a loaded module."""

    module: str
    node: A.Def | A.FnDef = field(compare=False)
    name: str


@dataclass(frozen=True, slots=True)
class BuiltinRef:
    name: str


@dataclass(frozen=True, slots=True)
class NamespaceV:
    module: str


@dataclass(frozen=True, slots=True)
class Instance:
    """A `liv` or `op` applied to fully evaluated arguments (identity = definition + arguments)."""

    definition: DefRef
    args: tuple[tuple[str, Value], ...]
    span: Span = span_field()

    @property
    def name(self) -> str:
        return self.definition.name

    def arg(self, name: str) -> Value:
        return dict(self.args)[name]


@dataclass(frozen=True, slots=True)
class BuilderV:
    """A builtin configuration value: implicit_filter(...), pre_norm(...), mor(...), expert_choice(...)."""

    name: str
    args: tuple[tuple[str, Value], ...]
    span: Span = span_field()

    def arg(self, name: str) -> Value:
        return dict(self.args)[name]


@dataclass(frozen=True, slots=True)
class Sublayer:
    """One residual branch of a layer: an instance and how it is wrapped (None = the model default)."""

    op: Instance
    wrapper: BuilderV | None = None


@dataclass(frozen=True, slots=True)
class LayerV:
    sublayers: tuple[Sublayer, ...]


Value = (
    int
    | float
    | bool
    | str
    | None
    | _Poison
    | DType
    | Symbol
    | ListV
    | TupleV
    | TensorV
    | DefRef
    | BuiltinRef
    | NamespaceV
    | Instance
    | BuilderV
    | Sublayer
    | LayerV
)


def type_name(value: Value) -> str:
    """A short human name for the kind of a value, for diagnostics."""
    match value:
        case bool():
            return "bool"
        case int():
            return "int"
        case float():
            return "float"
        case str():
            return "string"
        case None:
            return "none"
        case Instance():
            return f"{value.definition.node.kind.value if isinstance(value.definition.node, A.Def) else 'fn'} instance"
        case LayerV():
            return "layer"
        case DefRef():
            return "definition"
    kind = getattr(type(value), "KIND_NAME", None)  # values defined above this module (the IR builder's TRef)
    return kind if isinstance(kind, str) else type(value).__name__.removesuffix("V").lower()


def article(noun: str) -> str:
    """`an int`, `a float`."""
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"
