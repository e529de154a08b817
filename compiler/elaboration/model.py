"""The elaborated model: a backbone with every value computed — the input of IR lowering."""

from __future__ import annotations

from dataclasses import dataclass

from livc.compiler.elaboration.values import BuilderV, DType, Instance, LayerV, Value
from livc.dsl import ast as A
from livc.dsl.source import Span, span_field


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerRef:
    layer: int
    sublayer: int | None
    span: Span = span_field()

    def __str__(self) -> str:
        return f"layers[{self.layer}]" + ("" if self.sublayer is None else f"[{self.sublayer}]")


@dataclass(frozen=True, slots=True, kw_only=True)
class ShareDecl:
    kind: A.ShareKind
    groups: tuple[str, ...]
    source: LayerRef
    targets: tuple[LayerRef, ...]
    span: Span = span_field()


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetDecl:
    metric: str
    args: tuple[tuple[str, Value], ...]
    strict: bool  # `<` rather than `<=`
    limit: int | float
    span: Span = span_field()


@dataclass(frozen=True, slots=True, kw_only=True)
class MoRDecl:
    recursions: int
    sharing: str
    router: BuilderV
    capacities: tuple[float, ...]
    kv: str
    span: Span = span_field()


@dataclass(frozen=True, slots=True, kw_only=True)
class ElaboratedModel:
    name: str
    module: str
    args: tuple[tuple[str, Value], ...]
    embedding: Instance
    layers: tuple[LayerV, ...]
    norm: Instance | None
    final_norm: Instance | None
    head: Instance
    recursion: MoRDecl | None
    dtype: DType
    context: int | None
    shares: tuple[ShareDecl, ...]
    budgets: tuple[BudgetDecl, ...]
    span: Span = span_field()
