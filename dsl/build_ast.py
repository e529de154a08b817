"""lark parse tree -> AST. Every node gets a span; literal and identifier problems are reported."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lark import Token, Transformer_NonRecursive, v_args
from lark.tree import Meta

from livc.dsl import ast as A
from livc.dsl.diagnostics import DiagnosticSink, error
from livc.dsl.lexicon import MAX_NUMBER_DIGITS, identifier_problem, number_value
from livc.dsl.source import SourceFile, Span


@dataclass(frozen=True)
class _Else:
    body: tuple[A.Stmt, ...]


@dataclass(frozen=True)
class _ShareKind:
    kind: A.ShareKind
    groups: tuple[A.Ident, ...]
    span: Span


_BINOPS = {k.value: k for k in A.BinOpKind}
_SECTIONS = {k.value: k for k in A.SectionKind}
_DEF_KINDS = {"liv_def": A.DefKind.LIV, "op_def": A.DefKind.OP, "model_def": A.DefKind.MODEL}


def _present(children: list[Any]) -> list[Any]:
    return [c for c in children if c is not None]


@v_args(meta=True)
class AstBuilder(Transformer_NonRecursive):
    """Builds the AST; reports E0105 / E0106 / E0107 / E0108 / E0310 into the sink.

    Non-recursive, so a flat chain of 10,000 terms (a 10,000-deep left-leaning tree) is fine.
    `offset` is added to every lark position (for a tree parsed from a slice of the source).
    """

    def __init__(self, source: SourceFile, sink: DiagnosticSink, offset: int = 0) -> None:
        super().__init__()
        self.source = source
        self.sink = sink
        self.offset = offset

    def _span(self, meta: Meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.source, 0, 0)
        return Span(self.source, meta.start_pos + self.offset, meta.end_pos + self.offset)

    def _tok_span(self, tok: Token) -> Span:
        start = (tok.start_pos or 0) + self.offset
        end = tok.end_pos + self.offset if tok.end_pos is not None else start + len(tok)
        return Span(self.source, start, end)

    # ---- leaves ---------------------------------------------------------------------------
    def ident(self, meta: Meta, c: list[Token]) -> A.Ident:
        span = self._tok_span(c[0])
        problem = identifier_problem(str(c[0]))
        if problem is not None:
            self.sink.report(error("E0106", f"invalid identifier '{c[0]}'", span, problem))
        return A.Ident(name=str(c[0]), span=span)

    def string(self, meta: Meta, c: list[Token]) -> A.String:
        raw = str(c[0])[1:-1]
        value = re.sub(r'\\(["\\n])', lambda m: "\n" if m[1] == "n" else m[1], raw)
        return A.String(value=value, span=self._tok_span(c[0]))

    def number(self, meta: Meta, c: list[Token]) -> A.Number:
        text, span = str(c[0]), self._tok_span(c[0])
        value = number_value(text)
        if value is None and len(text) > MAX_NUMBER_DIGITS:
            self.sink.report(error("E0105", "number literal too long", span, f"more than {MAX_NUMBER_DIGITS} digits"))
            value = 0
        elif value is None:
            self.sink.report(
                error(
                    "E0105",
                    f"malformed number '{text}'",
                    span,
                    "unknown suffix or fraction",
                    help="suffixes are K M G T (x1000) and KiB MiB GiB TiB (x1024)",
                )
            )
            value = 0
        return A.Number(text=text, value=value, span=span)

    def true(self, meta: Meta, c: list[Any]) -> A.Bool:
        return A.Bool(value=True, span=self._span(meta))

    def false(self, meta: Meta, c: list[Any]) -> A.Bool:
        return A.Bool(value=False, span=self._span(meta))

    def none(self, meta: Meta, c: list[Any]) -> A.NoneLit:
        return A.NoneLit(span=self._span(meta))

    def name(self, meta: Meta, c: list[Any]) -> A.Name:
        return A.Name(ident=c[0], span=self._span(meta))

    def type_ref(self, meta: Meta, c: list[Any]) -> A.TypeRef:
        return A.TypeRef(name=c[0], optional=c[1] is not None, span=self._span(meta))

    def list_type(self, meta: Meta, c: list[Any]) -> A.TypeRef:
        return A.TypeRef(name=c[0], is_list=True, optional=c[1] is not None, span=self._span(meta))

    # ---- expressions ----------------------------------------------------------------------
    def binop(self, meta: Meta, c: list[Any]) -> A.BinOp:
        return A.BinOp(op=_BINOPS[str(c[1])], left=c[0], right=c[2], span=self._span(meta))

    compare = binop

    def pow_(self, meta: Meta, c: list[Any]) -> A.BinOp:
        return A.BinOp(op=A.BinOpKind.POW, left=c[0], right=c[2], span=self._span(meta))

    def and_(self, meta: Meta, c: list[Any]) -> A.BinOp:
        return A.BinOp(op=A.BinOpKind.AND, left=c[0], right=c[1], span=self._span(meta))

    def or_(self, meta: Meta, c: list[Any]) -> A.BinOp:
        return A.BinOp(op=A.BinOpKind.OR, left=c[0], right=c[1], span=self._span(meta))

    def not_(self, meta: Meta, c: list[Any]) -> A.UnaryOp:
        return A.UnaryOp(op=A.UnaryOpKind.NOT, operand=c[0], span=self._span(meta))

    def neg(self, meta: Meta, c: list[Any]) -> A.UnaryOp:
        return A.UnaryOp(op=A.UnaryOpKind.NEG, operand=c[0], span=self._span(meta))

    def if_expr(self, meta: Meta, c: list[Any]) -> A.IfExpr:
        return A.IfExpr(cond=c[0], then=c[1], orelse=c[2], span=self._span(meta))

    def with_(self, meta: Meta, c: list[Any]) -> A.With:
        return A.With(value=c[0], wrapper=c[1], span=self._span(meta))

    def call(self, meta: Meta, c: list[Any]) -> A.Call:
        return A.Call(func=c[0], args=c[1], span=self._span(meta))

    def attribute(self, meta: Meta, c: list[Any]) -> A.Attribute:
        return A.Attribute(value=c[0], attr=c[1], span=self._span(meta))

    def index(self, meta: Meta, c: list[Any]) -> A.Index:
        return A.Index(value=c[0], index=c[1], stop=c[3], span=self._span(meta))

    def list_(self, meta: Meta, c: list[Any]) -> A.ListExpr:
        return A.ListExpr(elements=tuple(_present(c)), span=self._span(meta))

    def kwarg(self, meta: Meta, c: list[Any]) -> A.Arg:
        return A.Arg(name=c[0], value=c[1], span=self._span(meta))

    def args(self, meta: Meta, c: list[Any]) -> tuple[A.Arg, ...]:
        out = [a if isinstance(a, A.Arg) else A.Arg(name=None, value=a, span=a.span) for a in _present(c)]
        self._check_arg_order(out)
        return tuple(out)

    def _check_arg_order(self, args: list[A.Arg]) -> None:
        seen_kw: A.Arg | None = None
        for arg in args:
            if arg.name is not None:
                seen_kw = seen_kw or arg
            elif seen_kw is not None:
                self.sink.report(
                    error(
                        "E0107",
                        "positional argument after keyword argument",
                        arg.span,
                        "positional argument",
                        help="move it before the keyword arguments",
                    )
                )

    # ---- statements -----------------------------------------------------------------------
    def let_stmt(self, meta: Meta, c: list[Any]) -> A.Let:
        return A.Let(name=c[0], type=c[1], value=c[2], span=self._span(meta))

    def require_stmt(self, meta: Meta, c: list[Any]) -> A.Require:
        return A.Require(cond=c[0], message=c[1], span=self._span(meta))

    def assign(self, meta: Meta, c: list[Any]) -> A.Assign:
        return A.Assign(targets=tuple(c[:-1]), value=c[-1], span=self._span(meta))

    def return_stmt(self, meta: Meta, c: list[Any]) -> A.Return:
        return A.Return(value=c[0], span=self._span(meta))

    def if_stmt(self, meta: Meta, c: list[Any]) -> A.If:
        orelse = c[-1].body if isinstance(c[-1], _Else) else ()
        return A.If(cond=c[0], body=tuple(_present(c[1:-1])), orelse=orelse, span=self._span(meta))

    def else_block(self, meta: Meta, c: list[Any]) -> _Else:
        return _Else(tuple(_present(c)))

    def else_if(self, meta: Meta, c: list[Any]) -> _Else:
        return _Else((c[0],))

    def featurizer(self, meta: Meta, c: list[Any]) -> A.SectionKind:
        return A.SectionKind.FEATURIZER

    def token_mix(self, meta: Meta, c: list[Any]) -> A.SectionKind:
        return A.SectionKind.TOKEN_MIX

    def channel_mix(self, meta: Meta, c: list[Any]) -> A.SectionKind:
        return A.SectionKind.CHANNEL_MIX

    def section(self, meta: Meta, c: list[Any]) -> A.Section:
        return A.Section(kind=c[0], structure=c[1], body=tuple(_present(c[2:])), span=self._span(meta))

    def field(self, meta: Meta, c: list[Any]) -> A.Field:
        return A.Field(name=c[0], value=c[1], span=self._span(meta))

    def override(self, meta: Meta, c: list[Any]) -> A.Override:
        return A.Override(target=c[0], index=c[1], stop=c[3], value=c[4], span=self._span(meta))

    def share_featurizer(self, meta: Meta, c: list[Any]) -> _ShareKind:
        return _ShareKind(A.ShareKind.FEATURIZER, (), self._span(meta))

    def share_named(self, meta: Meta, c: list[Any]) -> _ShareKind:
        self._expect_word(c[0], "weights", "`share featurizer`, `share weights` or `share features k, v`")
        return _ShareKind(A.ShareKind.WEIGHTS, (), self._span(meta))

    def share_features(self, meta: Meta, c: list[Any]) -> _ShareKind:
        self._expect_word(c[0], "features", "`share features k, v from ... to ...`")
        return _ShareKind(A.ShareKind.FEATURES, tuple(c[1:]), self._span(meta))

    def _expect_word(self, ident: A.Ident, word: str, usage: str) -> None:
        if ident.name != word:
            self.sink.report(
                error(
                    "E0310",
                    f"unknown sharing kind '{ident.name}'",
                    ident.span,
                    f"expected '{word}'",
                    help=f"write {usage}",
                )
            )

    def share(self, meta: Meta, c: list[Any]) -> A.Share:
        kind: _ShareKind = c[0]
        return A.Share(
            kind=kind.kind,
            kind_span=kind.span,
            groups=kind.groups,
            source=c[1],
            targets=tuple(c[2:]),
            span=self._span(meta),
        )

    def budget_item(self, meta: Meta, c: list[Any]) -> A.BudgetItem:
        return A.BudgetItem(metric=c[0], args=c[1] or (), op=_BINOPS[str(c[2])], limit=c[3], span=self._span(meta))

    def budget(self, meta: Meta, c: list[Any]) -> A.Budget:
        return A.Budget(items=tuple(_present(c)), span=self._span(meta))

    # ---- items ----------------------------------------------------------------------------
    def dotted(self, meta: Meta, c: list[Any]) -> A.ModuleRef:
        return A.ModuleRef(dotted=tuple(c), span=self._span(meta))

    def _module_ref(self, ref: A.ModuleRef | A.String) -> A.ModuleRef:
        return A.ModuleRef(path=ref, span=ref.span) if isinstance(ref, A.String) else ref

    def import_item(self, meta: Meta, c: list[Any]) -> A.Import:
        return A.Import(module=self._module_ref(c[0]), alias=c[1], span=self._span(meta))

    def import_name(self, meta: Meta, c: list[Any]) -> A.ImportName:
        return A.ImportName(name=c[0], alias=c[1], span=self._span(meta))

    def from_import(self, meta: Meta, c: list[Any]) -> A.FromImport:
        return A.FromImport(module=self._module_ref(c[0]), names=tuple(c[1:]), span=self._span(meta))

    def param(self, meta: Meta, c: list[Any]) -> A.Param:
        return A.Param(name=c[0], type=c[1], default=c[2], span=self._span(meta))

    def params(self, meta: Meta, c: list[Any]) -> tuple[A.Param, ...]:
        params = tuple(_present(c))
        seen_default = False
        for p in params:
            if p.default is None and seen_default:
                self.sink.report(
                    error(
                        "E0108",
                        f"parameter '{p.name.name}' has no default but follows one that has",
                        p.span,
                        "needs a default value",
                    )
                )
            seen_default = seen_default or p.default is not None
        return params

    def fn_def(self, meta: Meta, c: list[Any]) -> A.FnDef:
        return A.FnDef(name=c[0], params=c[1], result=c[2], body=c[3], span=self._span(meta))

    def _def(self, kind: A.DefKind, meta: Meta, c: list[Any]) -> A.Def:
        return A.Def(kind=kind, name=c[0], params=c[1], body=tuple(_present(c[2:])), span=self._span(meta))

    def liv_def(self, meta: Meta, c: list[Any]) -> A.Def:
        return self._def(A.DefKind.LIV, meta, c)

    def op_def(self, meta: Meta, c: list[Any]) -> A.Def:
        return self._def(A.DefKind.OP, meta, c)

    def model_def(self, meta: Meta, c: list[Any]) -> A.Def:
        return self._def(A.DefKind.MODEL, meta, c)

    def model_inst(self, meta: Meta, c: list[Any]) -> A.ModelInst:
        return A.ModelInst(name=c[0], value=c[1], span=self._span(meta))

    def start(self, meta: Meta, c: list[Any]) -> A.Module:
        return A.Module(items=tuple(c), span=Span(self.source, 0, len(self.source.text)))
