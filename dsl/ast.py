"""The .liv abstract syntax tree: frozen dataclasses, tuples, a span on every node.

Spans are excluded from equality, so `a == b` means "the same program" regardless of layout.
Comments and single blank lines between statements are AST nodes (`Comment`, `Blank`) so that the
formatter can reproduce them and `parse(format(tree)) == tree` holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from livc.dsl.source import Span, span_field

node = dataclass(frozen=True, slots=True, kw_only=True)


# ---- leaves ---------------------------------------------------------------------------------


@node
class Ident:
    name: str
    span: Span = span_field()


@node
class TypeRef:
    name: Ident
    is_list: bool = False
    optional: bool = False
    span: Span = span_field()


# ---- expressions ----------------------------------------------------------------------------


class BinOpKind(Enum):
    ADD = "+"
    SUB = "-"
    MUL = "*"
    DIV = "/"
    FLOORDIV = "//"
    MOD = "%"
    POW = "**"
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    EQ = "=="
    NE = "!="
    AND = "and"
    OR = "or"


class UnaryOpKind(Enum):
    NEG = "-"
    NOT = "not"


@node
class Number:
    """An int or float literal as written (`32K`, `1e-5`, `64MiB`); `value` is its meaning."""

    text: str
    value: int | float
    span: Span = span_field()


@node
class String:
    value: str
    span: Span = span_field()


@node
class Bool:
    value: bool
    span: Span = span_field()


@node
class NoneLit:
    span: Span = span_field()


@node
class Name:
    ident: Ident
    span: Span = span_field()


@node
class BinOp:
    op: BinOpKind
    left: Expr
    right: Expr
    span: Span = span_field()


@node
class UnaryOp:
    op: UnaryOpKind
    operand: Expr
    span: Span = span_field()


@node
class IfExpr:
    cond: Expr
    then: Expr
    orelse: Expr
    span: Span = span_field()


@node
class Arg:
    """A call argument; `name` is set for keyword arguments."""

    name: Ident | None
    value: Expr
    span: Span = span_field()


@node
class Call:
    func: Expr
    args: tuple[Arg, ...]
    span: Span = span_field()


@node
class Attribute:
    value: Expr
    attr: Ident
    span: Span = span_field()


@node
class Index:
    """`value[index]` or, with `stop`, the half-open range `value[index..stop]`."""

    value: Expr
    index: Expr
    stop: Expr | None = None
    span: Span = span_field()


@node
class ListExpr:
    elements: tuple[Expr, ...]
    span: Span = span_field()


@node
class With:
    """`sublayer with wrapper`: overrides how one sublayer is wrapped (norm / residual)."""

    value: Expr
    wrapper: Expr
    span: Span = span_field()


Expr = Number | String | Bool | NoneLit | Name | BinOp | UnaryOp | IfExpr | Call | Attribute | Index | ListExpr | With


# ---- statements -----------------------------------------------------------------------------


@node
class Comment:
    """`# text`; `trailing` comments sit at the end of the previous statement's line."""

    text: str
    trailing: bool = False
    span: Span = span_field()


@node
class Blank:
    """One (or more, collapsed) blank line between two statements."""

    span: Span = span_field()


@node
class Let:
    name: Ident
    type: TypeRef | None
    value: Expr
    span: Span = span_field()


@node
class Require:
    cond: Expr
    message: String | None
    span: Span = span_field()


@node
class Assign:
    targets: tuple[Ident, ...]
    value: Expr
    span: Span = span_field()


@node
class If:
    cond: Expr
    body: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...] = ()
    span: Span = span_field()


@node
class Return:
    value: Expr
    span: Span = span_field()


class SectionKind(Enum):
    FEATURIZER = "featurizer"
    TOKEN_MIX = "token_mix"
    CHANNEL_MIX = "channel_mix"


@node
class Section:
    """A named LIV part; `structure` declares its structure (e.g. `toeplitz`, `grouped`)."""

    kind: SectionKind
    structure: Ident | None
    body: tuple[Stmt, ...]
    span: Span = span_field()


@node
class Field:
    """`name: value` in a model body (embedding, layers, norm, final_norm, head, recursion, ...)."""

    name: Ident
    value: Expr
    span: Span = span_field()


@node
class Override:
    """`override layers[i]: layer` or `override layers[i..j]: layer` (half-open range)."""

    target: Ident
    index: Expr
    stop: Expr | None
    value: Expr
    span: Span = span_field()


class ShareKind(Enum):
    FEATURIZER = "featurizer"
    WEIGHTS = "weights"
    FEATURES = "features"


@node
class Share:
    """`share featurizer|weights|features k, v from SRC to DST, ...`."""

    kind: ShareKind
    kind_span: Span = span_field()
    groups: tuple[Ident, ...] = ()
    source: Expr
    targets: tuple[Expr, ...]
    span: Span = span_field()


@node
class BudgetItem:
    """`metric(args) <= limit`, e.g. `cache(batch = 1, seq = 32K, dtype = bf16) <= 64MiB`."""

    metric: Ident
    args: tuple[Arg, ...]
    op: BinOpKind
    limit: Expr
    span: Span = span_field()


@node
class Budget:
    items: tuple[BudgetItem | Comment | Blank, ...]
    span: Span = span_field()


Stmt = Comment | Blank | Let | Require | Assign | If | Return | Section | Field | Override | Share | Budget


# ---- items ----------------------------------------------------------------------------------


@node
class ModuleRef:
    """`std.attention` (dotted, `path` is None) or `"./blocks.liv"` (`path` set)."""

    dotted: tuple[Ident, ...] = ()
    path: String | None = None
    span: Span = span_field()

    @property
    def display(self) -> str:
        return self.path.value if self.path is not None else ".".join(p.name for p in self.dotted)


@node
class Import:
    module: ModuleRef
    alias: Ident | None
    span: Span = span_field()


@node
class ImportName:
    name: Ident
    alias: Ident | None
    span: Span = span_field()

    @property
    def bound(self) -> Ident:
        return self.alias or self.name


@node
class FromImport:
    module: ModuleRef
    names: tuple[ImportName, ...]
    span: Span = span_field()


@node
class Param:
    name: Ident
    type: TypeRef
    default: Expr | None
    span: Span = span_field()


@node
class FnDef:
    name: Ident
    params: tuple[Param, ...]
    result: TypeRef
    body: Expr
    span: Span = span_field()


class DefKind(Enum):
    LIV = "liv"
    OP = "op"
    MODEL = "model"


@node
class Def:
    """`liv`, `op` or `model` definition: a name, typed parameters and a statement body."""

    kind: DefKind
    name: Ident
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span = span_field()


@node
class ModelInst:
    """`model Small = LFM2(d = 512, n_layers = 8)`: the model `LFM2` built with other parameter values.

    `value` is what was written after `=`; the resolver requires a call of a model.
    """

    name: Ident
    value: Expr
    span: Span = span_field()


Item = Comment | Blank | Import | FromImport | Let | FnDef | Def | ModelInst


@node
class Module:
    items: tuple[Item, ...]
    span: Span = span_field()
