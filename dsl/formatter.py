"""The canonical .liv formatter behind `livc fmt`: AST -> text.

What: `format_module` prints a `Module` in the house style (4-space indentation, one statement per
line, `{` on the header line and `}` on its own line, spaces around binary operators and around `=`
in keyword arguments and parameter defaults, minimal parentheses from the grammar's precedence).
`Comment` and `Blank` nodes are reproduced where they sit, so `parse_text(format_module(m)) == m`
for every module the parser can produce, and formatting is idempotent.

Line breaking: a statement whose line would exceed `MAX_WIDTH` columns has its widest top-level
bracketed list (call arguments, list elements, parameters) broken one item per line with a trailing
comma, items indented one level deeper and the closing bracket back at the statement's indentation;
the lines before and after the break are laid out the same way, recursively.

Preconditions: the module is one the parser could produce (e.g. a trailing comment follows a
statement, a keyword argument never precedes a positional one). Non-goals: preserving the original
layout of expressions, comments inside expressions (the parser hoists them in front of their
statement), or more than one blank line in a row (the AST keeps at most one).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from livc.dsl import ast as A
from livc.dsl.parser import parse_text

INDENT = "    "
MAX_WIDTH = 100


# ---- layout: text parts with breakable groups -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Group:
    """A bracketed, comma-separated list that may be broken one item per line."""

    open: str
    items: tuple[Parts, ...]
    close: str


Part = str | Group
Parts = tuple[Part, ...]


def flat(parts: Parts) -> str:
    """The parts on one line."""
    return "".join(_flat_part(part) for part in parts)


def _flat_part(part: Part) -> str:
    match part:
        case Group(open=open_, items=items, close=close):
            return open_ + ", ".join(flat(item) for item in items) + close
        case str():
            return part


def layout(parts: Parts, depth: int) -> list[str]:
    """Lines for `parts` at indentation `depth`, breaking the widest top-level group if too long."""
    line = INDENT * depth + flat(parts)
    breakable = [i for i, part in enumerate(parts) if isinstance(part, Group) and part.items]
    if len(line) <= MAX_WIDTH or not breakable:
        return [line]
    at = max(breakable, key=lambda i: len(_flat_part(parts[i])))
    return _broken(parts[:at], parts[at], parts[at + 1 :], depth)


def _broken(head: Parts, group: Part, tail: Parts, depth: int) -> list[str]:
    assert isinstance(group, Group)
    lines = layout((*head, group.open), depth)
    for item in group.items:
        lines.extend(layout((*item, ","), depth + 1))
    return lines + layout((group.close, *tail), depth)


def _joined(items: list[Parts], sep: str = ", ") -> Parts:
    out: list[Part] = []
    for i, item in enumerate(items):
        out.extend((sep, *item) if i else item)
    return tuple(out)


# ---- expressions --------------------------------------------------------------------------------


class Prec(IntEnum):
    """Binding strength, loosest first, following the grammar's expression levels."""

    TERNARY = 1
    OR = 2
    AND = 3
    NOT = 4
    COMPARE = 5
    SUM = 6
    PRODUCT = 7
    UNARY = 8
    POWER = 9
    WITH = 10
    POSTFIX = 11
    ATOM = 12


_K = A.BinOpKind
_BINOP_PREC = {
    _K.OR: Prec.OR, _K.AND: Prec.AND,
    _K.LT: Prec.COMPARE, _K.LE: Prec.COMPARE, _K.GT: Prec.COMPARE,
    _K.GE: Prec.COMPARE, _K.EQ: Prec.COMPARE, _K.NE: Prec.COMPARE,
    _K.ADD: Prec.SUM, _K.SUB: Prec.SUM,
    _K.MUL: Prec.PRODUCT, _K.DIV: Prec.PRODUCT, _K.FLOORDIV: Prec.PRODUCT, _K.MOD: Prec.PRODUCT,
    _K.POW: Prec.POWER,
}  # fmt: skip


def precedence(e: A.Expr) -> Prec:
    """The grammar level at which `e` parses without parentheses."""
    match e:
        case A.With():
            return Prec.WITH
        case A.IfExpr():
            return Prec.TERNARY
        case A.BinOp(op=op):
            return _BINOP_PREC[op]
        case A.UnaryOp(op=A.UnaryOpKind.NOT):
            return Prec.NOT
        case A.UnaryOp():
            return Prec.UNARY
        case A.Call() | A.Attribute() | A.Index():
            return Prec.POSTFIX
    return Prec.ATOM


def _operand_levels(op: A.BinOpKind) -> tuple[Prec, Prec]:
    """The levels a binary operator's left and right operands must have."""
    prec = _BINOP_PREC[op]
    match prec:
        case Prec.COMPARE:  # non-associative
            return Prec.SUM, Prec.SUM
        case Prec.POWER:  # right-associative: wrapped ** unary
            return Prec.WITH, Prec.UNARY
    return prec, Prec(prec + 1)


def operand(e: A.Expr, level: Prec) -> Parts:
    """`e` where the grammar expects `level`, parenthesised if it binds more loosely."""
    parts = expr(e)
    return parts if precedence(e) >= level else ("(", *parts, ")")


def quote(value: str) -> str:
    """A string literal: `\\`, `"` and newlines escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def expr(e: A.Expr) -> Parts:
    """Parts for an expression at the loosest level (`expr` in the grammar)."""
    match e:
        case A.Number() | A.String() | A.Bool() | A.NoneLit() | A.Name():
            return (_literal(e),)
        case A.BinOp():
            return _binop(e)
        case A.UnaryOp():
            return _unary(e)
        case A.IfExpr() | A.With():
            return _conditional(e)
        case A.Call() | A.Attribute() | A.Index() | A.ListExpr():
            return _postfix(e)


def _literal(e: A.Number | A.String | A.Bool | A.NoneLit | A.Name) -> str:
    match e:
        case A.Number(text=text):
            return text
        case A.String(value=value):
            return quote(value)
        case A.Bool(value=value):
            return "true" if value else "false"
        case A.NoneLit():
            return "none"
        case A.Name(ident=ident):
            return ident.name


def _binop(e: A.BinOp) -> Parts:
    """A left-leaning chain `a + b - c ...` is laid out without recursing per term."""
    chain = [e]
    while isinstance(chain[-1].left, A.BinOp) and precedence(chain[-1].left) >= _operand_levels(chain[-1].op)[0]:
        chain.append(chain[-1].left)
    parts: list[Part] = list(operand(chain[-1].left, _operand_levels(chain[-1].op)[0]))
    for node in reversed(chain):
        parts += [f" {node.op.value} ", *operand(node.right, _operand_levels(node.op)[1])]
    return tuple(parts)


def _unary(e: A.UnaryOp) -> Parts:
    match e.op:
        case A.UnaryOpKind.NOT:
            return ("not ", *operand(e.operand, Prec.NOT))
        case A.UnaryOpKind.NEG:
            return ("-", *operand(e.operand, Prec.UNARY))


def _conditional(e: A.IfExpr | A.With) -> Parts:
    match e:
        case A.IfExpr(cond=cond, then=then, orelse=orelse):
            return ("if ", *operand(cond, Prec.OR), " then ", *expr(then), " else ", *operand(orelse, Prec.TERNARY))
        case A.With(value=value, wrapper=wrapper):
            return (*operand(value, Prec.POSTFIX), " with ", *operand(wrapper, Prec.POSTFIX))


def _postfix(e: A.Call | A.Attribute | A.Index | A.ListExpr) -> Parts:
    match e:
        case A.Call(func=func, args=args):
            return (*operand(func, Prec.POSTFIX), args_group(args))
        case A.Attribute(value=value, attr=attr):
            return (*operand(value, Prec.POSTFIX), "." + attr.name)
        case A.Index(value=value, index=index, stop=stop):
            return (*operand(value, Prec.POSTFIX), "[", *_range(index, stop), "]")
        case A.ListExpr(elements=elements):
            return (Group("[", tuple(expr(x) for x in elements), "]"),)


def _range(index: A.Expr, stop: A.Expr | None) -> Parts:
    return expr(index) if stop is None else (*expr(index), "..", *expr(stop))


def args_group(args: tuple[A.Arg, ...]) -> Group:
    return Group("(", tuple(_arg(a) for a in args), ")")


def _arg(arg: A.Arg) -> Parts:
    return expr(arg.value) if arg.name is None else (f"{arg.name.name} = ", *expr(arg.value))


# ---- statements and items -----------------------------------------------------------------------


def _type(t: A.TypeRef) -> str:
    name = f"[{t.name.name}]" if t.is_list else t.name.name
    return name + "?" if t.optional else name


def _params(params: tuple[A.Param, ...]) -> Group:
    return Group("(", tuple(_param(p) for p in params), ")")


def _param(p: A.Param) -> Parts:
    head = f"{p.name.name}: {_type(p.type)}"
    return (head,) if p.default is None else (head + " = ", *expr(p.default))


def _module_ref(ref: A.ModuleRef) -> str:
    return quote(ref.path.value) if ref.path is not None else ".".join(p.name for p in ref.dotted)


def _alias(name: str, alias: A.Ident | None) -> str:
    return name if alias is None else f"{name} as {alias.name}"


def _import_line(node: A.Import | A.FromImport) -> str:
    match node:
        case A.Import(module=module, alias=alias):
            return "import " + _alias(_module_ref(module), alias)
        case A.FromImport(module=module, names=names):
            listed = ", ".join(_alias(n.name.name, n.alias) for n in names)
            return f"from {_module_ref(module)} import {listed}"


def _share_kind(node: A.Share) -> str:
    match node.kind:
        case A.ShareKind.FEATURES:
            return "features " + ", ".join(g.name for g in node.groups)
    return node.kind.value


def _share(node: A.Share) -> Parts:
    targets = _joined([operand(t, Prec.POSTFIX) for t in node.targets])
    return (f"share {_share_kind(node)} from ", *operand(node.source, Prec.POSTFIX), " to ", *targets)


def _let(node: A.Let) -> Parts:
    typed = "" if node.type is None else f": {_type(node.type)}"
    return (f"let {node.name.name}{typed} = ", *expr(node.value))


def _require(node: A.Require) -> Parts:
    message = () if node.message is None else (", " + quote(node.message.value),)
    return ("require ", *expr(node.cond), *message)


def _override(node: A.Override) -> Parts:
    return (f"override {node.target.name}[", *_range(node.index, node.stop), "]: ", *expr(node.value))


def _budget_item(node: A.BudgetItem) -> Parts:
    args = (args_group(node.args),) if node.args else ()
    return (node.metric.name, *args, f" {node.op.value} ", *expr(node.limit))


def _fn(node: A.FnDef) -> Parts:
    return (f"fn {node.name.name}", _params(node.params), f" -> {_type(node.result)} = ", *expr(node.body))


def _model_inst(node: A.ModelInst) -> Parts:
    return (f"model {node.name.name} = ", *operand(node.value, Prec.POSTFIX))


SimpleStmt = (
    A.Let | A.Require | A.Assign | A.Return | A.Field | A.Override | A.Share | A.BudgetItem | A.FnDef | A.ModelInst
)


def _simple(node: SimpleStmt) -> Parts:
    """Parts of a statement that is a single (breakable) line."""
    match node:
        case A.Let():
            return _let(node)
        case A.Require():
            return _require(node)
        case A.Assign(targets=targets, value=value):
            return (", ".join(t.name for t in targets) + " = ", *expr(value))
        case A.Return(value=value):
            return ("return ", *expr(value))
        case A.Field(name=name, value=value):
            return (f"{name.name}: ", *expr(value))
        case A.Override():
            return _override(node)
        case A.Share():
            return _share(node)
        case A.BudgetItem():
            return _budget_item(node)
        case A.FnDef():
            return _fn(node)
        case A.ModelInst():
            return _model_inst(node)


Element = A.Item | A.Stmt | A.BudgetItem


def _block(head: Parts, body: tuple[Element, ...], depth: int) -> list[str]:
    """`head {`, the body one level deeper, `}`."""
    return layout((*head, " {"), depth) + _body(body, depth + 1) + [INDENT * depth + "}"]


def _if(node: A.If, depth: int, keyword: str = "if ") -> list[str]:
    head = layout((keyword, *expr(node.cond), " {"), depth)
    return head + _body(node.body, depth + 1) + _else(node.orelse, depth)


def _else(orelse: tuple[A.Stmt, ...], depth: int) -> list[str]:
    close = INDENT * depth + "}"
    match orelse:
        case ():
            return [close]
        case (A.If() as nested,):
            return _if(nested, depth, "} else if ")
    return [close + " else {", *_body(orelse, depth + 1), close]


def _section_head(node: A.Section) -> Parts:
    return (node.kind.value if node.structure is None else f"{node.kind.value} {node.structure.name}",)


def _element(node: Element, depth: int) -> list[str]:
    """The lines of one item, statement or budget item (a trailing comment is handled by `_body`)."""
    match node:
        case A.Comment(text=text):
            return [INDENT * depth + "#" + text]
        case A.Blank():
            return [""]
        case A.Import() | A.FromImport():
            return [INDENT * depth + _import_line(node)]
        case A.Def(kind=kind, name=name, params=params, body=body):
            return _block((f"{kind.value} {name.name}", _params(params)), body, depth)
        case A.Section():
            return _block(_section_head(node), node.body, depth)
        case A.Budget(items=items):
            return _block(("budget",), items, depth)
        case A.If():
            return _if(node, depth)
    return layout(_simple(node), depth)


def _attaches(element: Element, previous: Element | None) -> bool:
    """Whether `element` is a trailing comment that can go at the end of the previous line."""
    match element, previous:
        case A.Comment(trailing=True), A.Comment() | A.Blank() | None:
            return False
        case A.Comment(trailing=True), _:
            return True
    return False


def _body(elements: tuple[Element, ...], depth: int) -> list[str]:
    lines: list[str] = []
    previous: Element | None = None
    for element in elements:
        if _attaches(element, previous):
            assert isinstance(element, A.Comment)
            lines[-1] += "  #" + element.text
        else:
            lines.extend(_element(element, depth))
        previous = element
    return lines


# ---- API ----------------------------------------------------------------------------------------


def format_module(module: A.Module) -> str:
    """The canonical text of `module`; ends with exactly one newline."""
    return "\n".join(_body(module.items, 0)) + "\n"


def format_text(text: str, name: str = "<string>") -> str:
    """Parse `text` (raising `CompileError` on syntax errors) and return its canonical form."""
    return format_module(parse_text(text, name))


__all__ = ["format_module", "format_text", "MAX_WIDTH"]
