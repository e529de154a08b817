"""Hypothesis strategies for random .liv ASTs that are valid by construction (no filter / assume).

`modules()` draws a whole `Module`; `expressions()` an expression of any kind with random nesting.
The trees are syntactically valid, i.e. exactly the trees `parse_text` can return (with spans left at
their defaults, which equality ignores):

- identifiers come from a safe alphabet and are never keywords (`identifier_problem` is None);
- number literals are valid texts and carry `number_value(text)`;
- call arguments put positionals before keywords (E0107), parameters put defaults last (E0108);
- statements appear only where the grammar allows them (sections in `liv`, budgets in `model`, ...);
- `Blank` is never first or last in a block and never follows a `Blank`; a trailing `Comment` only
  follows a statement; an `if` with an `else` has a body that is empty or ends with a statement (the
  parser assigns comments after the last statement of the body to the `else` block) and an `else`
  block holding at least one statement.

Strings avoid a backslash followed by `n` and strings/comments avoid opening brackets: both hit
parser limitations documented in `tests/test_formatter.py`.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from functools import cache

from hypothesis import strategies as st

from livc.dsl import ast as A
from livc.dsl.lexicon import BYTE_SUFFIXES, COUNT_SUFFIXES, LIV_KEYWORDS, PYTHON_WORDS, identifier_problem, number_value

Strategy = st.SearchStrategy
MAX_EXPR_LEAVES = 4

# ---- leaves -------------------------------------------------------------------------------------

_FIRST = string.ascii_letters + "_"
_REST = string.ascii_letters + string.digits + "_"
_TRICKY = LIV_KEYWORDS | PYTHON_WORDS | {"features", "weights", "K", "MiB", "e5", "E1", "x", "tokens", "_", "_1"}
_COMMON = {"a", "b", "d", "x1", "layers", "GQA", "norm", "q_proj", "Mixer2", "n" * 40, "L" + "o" * 63}


def _safe_name(name: str) -> str:
    safe = name if identifier_problem(name) is None else "x" + name
    assert identifier_problem(safe) is None, safe
    return safe


@cache
def names() -> Strategy[str]:
    """Identifiers: a pool of common and keyword-like names (made safe), or random short ones."""
    pool = st.sampled_from(sorted({_safe_name(n) for n in _TRICKY | _COMMON}))
    random = st.builds(str.__add__, st.sampled_from(_FIRST), st.text(_REST, max_size=5)).map(_safe_name)
    return st.one_of(pool, random)


@cache
def idents() -> Strategy[A.Ident]:
    return names().map(lambda name: A.Ident(name=name))


@cache
def _int_text() -> Strategy[str]:
    return st.lists(st.text(string.digits, min_size=1, max_size=3), min_size=1, max_size=3).map("_".join)


@cache
def _float_text() -> Strategy[str]:
    fraction = st.text(string.digits, min_size=1, max_size=3).map(".".__add__)
    exponent = st.builds(
        lambda e, sign, digits: e + sign + digits,
        st.sampled_from("eE"),
        st.sampled_from(["", "+", "-"]),
        st.text(string.digits, min_size=1, max_size=2),
    )
    tail = st.one_of(fraction, exponent, st.builds(str.__add__, fraction, exponent))
    return st.builds(str.__add__, _int_text(), tail)


@cache
def number_texts() -> Strategy[str]:
    """Valid literal texts: ints with optional count/byte suffix, floats, and whole suffixed floats."""
    suffix = st.sampled_from(["", *COUNT_SUFFIXES, *BYTE_SUFFIXES])
    suffixed_int = st.builds(str.__add__, _int_text(), suffix)
    return st.one_of(suffixed_int, _float_text(), st.sampled_from(["1.5M", "0.5K", "2.5KiB", "1e3K", "6.5"]))


def _number(text: str) -> A.Number:
    value = number_value(text)
    assert value is not None, text
    return A.Number(text=text, value=value)


@cache
def numbers() -> Strategy[A.Number]:
    return number_texts().map(_number)


_TEXT_CHARS = "".join(c for c in string.printable if c not in "([{\n\r\t\x0b\x0c") + "éλ→ü"


_STRING_POOL = ["", "kernel length must be at least 1", 'say "hi"', "back\\slash", "two\nlines", "# no comment", "é→"]
_COMMENT_POOL = ["", " comment", "#", " -> 4608", "x = 1  # nested", "   indented", " ünïcode λ", "!"]


@cache
def strings() -> Strategy[A.String]:
    random = st.text(_TEXT_CHARS + '\n"\\', max_size=8).map(lambda s: s.replace("\\n", "\\ n"))
    return st.one_of(st.sampled_from(_STRING_POOL), random).map(lambda value: A.String(value=value))


@cache
def comments(trailing: bool = False) -> Strategy[A.Comment]:
    random = st.text(_TEXT_CHARS + "#", max_size=12).map(str.rstrip)
    return st.one_of(st.sampled_from(_COMMENT_POOL), random).map(lambda t: A.Comment(text=t, trailing=trailing))


@cache
def _leaves() -> Strategy[A.Expr]:
    return st.one_of(
        idents().map(lambda i: A.Name(ident=i)),
        numbers(),
        strings(),
        st.booleans().map(lambda b: A.Bool(value=b)),
        st.just(A.NoneLit()),
    )


# ---- expressions --------------------------------------------------------------------------------


def call_args(values: Strategy[A.Expr]) -> Strategy[tuple[A.Arg, ...]]:
    """Positional arguments first, then keyword arguments."""
    positional = st.lists(values.map(lambda v: A.Arg(name=None, value=v)), max_size=3)
    keyword = st.lists(st.builds(A.Arg, name=idents(), value=values), max_size=3)
    return st.builds(lambda p, k: tuple(p + k), positional, keyword)


def _compound(children: Strategy[A.Expr]) -> Strategy[A.Expr]:
    return st.one_of(
        st.builds(A.BinOp, op=st.sampled_from(A.BinOpKind), left=children, right=children),
        st.builds(A.UnaryOp, op=st.sampled_from(A.UnaryOpKind), operand=children),
        st.builds(A.IfExpr, cond=children, then=children, orelse=children),
        st.builds(A.With, value=children, wrapper=children),
        st.builds(A.Call, func=children, args=call_args(children)),
        st.builds(A.Attribute, value=children, attr=idents()),
        st.builds(A.Index, value=children, index=children, stop=st.none() | children),
        st.builds(A.ListExpr, elements=st.lists(children, max_size=4).map(tuple)),
    )


@cache
def expressions(max_leaves: int = MAX_EXPR_LEAVES) -> Strategy[A.Expr]:
    return st.recursive(_leaves(), _compound, max_leaves=max_leaves)


# ---- blocks: comments and blank lines in legal positions ----------------------------------------


@st.composite
def blocks(
    draw: st.DrawFn, elements: Strategy, max_entries: int = 3, *, min_real: int = 0, end_real: bool = False
) -> tuple:
    """A statement list with leading/trailing comments and blank lines where the parser puts them.

    `min_real`: at least this many non-comment elements; `end_real`: the last element is not a comment.
    """
    out: list = []
    for _ in range(draw(st.integers(0, max_entries))):
        if out and not isinstance(out[-1], A.Blank) and draw(st.integers(0, 4)) == 0:
            out.append(A.Blank())
        if draw(st.integers(0, 3)) == 0:
            out.append(draw(comments()))
            continue
        out.append(draw(elements))
        if draw(st.integers(0, 3)) == 0:
            out.append(draw(comments(trailing=True)))
    real = sum(not isinstance(e, A.Comment | A.Blank) for e in out)
    out.extend(draw(elements) for _ in range(max(0, min_real - real)))
    if end_real and out and isinstance(out[-1], A.Comment):
        out.append(draw(elements))
    return tuple(out)


# ---- statements ---------------------------------------------------------------------------------


@cache
def type_refs() -> Strategy[A.TypeRef]:
    return st.builds(A.TypeRef, name=idents(), is_list=st.booleans(), optional=st.booleans())


@cache
def lets() -> Strategy[A.Let]:
    return st.builds(A.Let, name=idents(), type=st.none() | type_refs(), value=expressions())


@cache
def requires() -> Strategy[A.Require]:
    return st.builds(A.Require, cond=expressions(), message=st.none() | strings())


@cache
def _simple_stmts() -> Strategy[A.Stmt]:
    return st.one_of(
        lets(),
        requires(),
        st.builds(A.Assign, targets=st.lists(idents(), min_size=1, max_size=3).map(tuple), value=expressions()),
        st.builds(A.Return, value=expressions()),
    )


@st.composite
def ifs(draw: st.DrawFn, depth: int) -> A.If:
    """`if` / `else if` / `else` with bodies nested at most `depth` levels."""
    stmt, size = stmts(depth - 1), depth + 1
    choice = draw(st.integers(0, 2 if depth > 1 else 1))
    if choice == 0:
        return A.If(cond=draw(expressions()), body=draw(blocks(stmt, size)))
    orelse = draw(blocks(stmt, size, min_real=1)) if choice == 1 else (draw(ifs(depth - 1)),)
    return A.If(cond=draw(expressions()), body=draw(blocks(stmt, size, end_real=True)), orelse=orelse)


@cache
def stmts(depth: int = 2) -> Strategy[A.Stmt]:
    """A statement of an `op`, section or `if` body."""
    if depth <= 0:
        return _simple_stmts()
    return st.one_of(_simple_stmts(), ifs(depth), ifs(depth))  # one in three is an `if`


@cache
def sections() -> Strategy[A.Section]:
    return st.builds(
        A.Section, kind=st.sampled_from(A.SectionKind), structure=st.none() | idents(), body=blocks(stmts())
    )


@cache
def _liv_stmts() -> Strategy[A.Stmt]:
    return st.one_of(lets(), requires(), sections(), sections())


@cache
def shares() -> Strategy[A.Share]:
    kind = st.sampled_from(A.ShareKind)
    groups = st.lists(idents(), min_size=1, max_size=3).map(tuple)
    return st.builds(
        lambda k, g, src, dst: A.Share(kind=k, groups=g if k is A.ShareKind.FEATURES else (), source=src, targets=dst),
        kind,
        groups,
        expressions(3),
        st.lists(expressions(3), min_size=1, max_size=3).map(tuple),
    )


_CMP = [A.BinOpKind.LT, A.BinOpKind.LE, A.BinOpKind.GT, A.BinOpKind.GE, A.BinOpKind.EQ, A.BinOpKind.NE]


@cache
def budgets() -> Strategy[A.Budget]:
    item = st.builds(
        A.BudgetItem, metric=idents(), args=call_args(expressions(3)), op=st.sampled_from(_CMP), limit=expressions()
    )
    return st.builds(A.Budget, items=blocks(item))


@cache
def _model_stmts() -> Strategy[A.Stmt]:
    return st.one_of(
        lets(),
        requires(),
        st.builds(A.Field, name=idents(), value=expressions()),
        st.builds(
            A.Override, target=idents(), index=expressions(3), stop=st.none() | expressions(3), value=expressions()
        ),
        shares(),
        budgets(),
    )


# ---- items --------------------------------------------------------------------------------------


@cache
def params() -> Strategy[tuple[A.Param, ...]]:
    """Parameters without defaults first, then parameters with defaults."""
    plain = st.lists(st.builds(A.Param, name=idents(), type=type_refs(), default=st.none()), max_size=2)
    defaulted = st.lists(st.builds(A.Param, name=idents(), type=type_refs(), default=expressions(3)), max_size=3)
    return st.builds(lambda p, d: tuple(p + d), plain, defaulted)


_DEF_BODIES: dict[A.DefKind, Callable[[], Strategy[A.Stmt]]] = {
    A.DefKind.LIV: _liv_stmts,
    A.DefKind.OP: stmts,
    A.DefKind.MODEL: _model_stmts,
}


@cache
def defs(kind: A.DefKind) -> Strategy[A.Def]:
    return st.builds(A.Def, kind=st.just(kind), name=idents(), params=params(), body=blocks(_DEF_BODIES[kind]()))


@cache
def module_refs() -> Strategy[A.ModuleRef]:
    dotted = st.lists(idents(), min_size=1, max_size=3).map(lambda parts: A.ModuleRef(dotted=tuple(parts)))
    return st.one_of(dotted, strings().map(lambda s: A.ModuleRef(path=s)))


@cache
def imports() -> Strategy[A.Import | A.FromImport]:
    alias = st.none() | idents()
    name = st.builds(A.ImportName, name=idents(), alias=alias)
    return st.one_of(
        st.builds(A.Import, module=module_refs(), alias=alias),
        st.builds(A.FromImport, module=module_refs(), names=st.lists(name, min_size=1, max_size=3).map(tuple)),
    )


@cache
def fn_defs() -> Strategy[A.FnDef]:
    return st.builds(A.FnDef, name=idents(), params=params(), result=type_refs(), body=expressions())


@cache
def model_insts() -> Strategy[A.ModelInst]:
    return st.builds(A.ModelInst, name=idents(), value=expressions())


@cache
def items() -> Strategy[A.Item]:
    return st.one_of(imports(), lets(), fn_defs(), model_insts(), *(defs(kind) for kind in A.DefKind))


@cache
def modules(max_items: int = 4) -> Strategy[A.Module]:
    return blocks(items(), max_items).map(lambda elements: A.Module(items=elements))
