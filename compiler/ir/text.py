"""The textual IR: `print_model` writes a whole `ir.Model`, `parse_ir` reads it back.

`parse_ir(print_model(m)) == m` for every model (spans are not compared), and printing is
deterministic: the text is a pure function of the model. The grammar is `ir.lark` (LALR(1)).

Format decisions:
- scalars keep their Python type: ints bare (`3`), floats by `repr` (`1e-05`, `1.0`, `inf`, `nan`),
  strings double-quoted with JSON escapes, `true` / `false`, `none`;
- SSA values are `%name`, parameter ids `@id` (dots allowed); anything else is quoted (`%"a b"`);
- words (model, block and primitive names, roles, structures) are bare when they look like a name and
  are not a keyword of the grammar, quoted otherwise;
- feature records `Value("group=ssa", type)` print as `group=%ssa: [..]`; a record without `=` prints
  as a quoted string;
- section `nonlinearity` / `sparsity` are printed only when they are not "none" (the default).

Malformed text raises `IRSyntaxError(message, line, column)`; lark exceptions never escape.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from livc.compiler.ir.nodes import (
    Block,
    BlockKind,
    Budget,
    DType,
    Layer,
    Model,
    Op,
    Param,
    Recursion,
    Role,
    Scalar,
    Section,
    Share,
    Sublayer,
    TensorType,
    Value,
    Wrap,
)

__all__ = ["IRSyntaxError", "make_parser", "parse_ir", "print_model"]

_INDENT = "  "
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.]*")


class IRSyntaxError(Exception):
    """Malformed IR text, with a 1-based line and column."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"{line}:{column}: {message}")
        self.message = message
        self.line = line
        self.column = column


def make_parser(strict: bool = False) -> Lark:
    """The LALR parser of `ir.lark`, building nodes as it reduces. `strict` also proves that no two
    terminals can match the same text (slow: the tests do it once; parse_ir does not)."""
    grammar = resources.files("livc.compiler.ir").joinpath("ir.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", strict=strict, transformer=_Builder())


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return make_parser()


@lru_cache(maxsize=1)
def _keywords() -> frozenset[str]:
    return frozenset(t.pattern.value for t in _parser().terminals if t.pattern.type == "str")


# ---- printing ------------------------------------------------------------------------------


def print_model(model: Model) -> str:
    """The text form of `model`, ending with one newline."""
    return "\n".join(_model_lines(model)) + "\n"


def _scalar(value: Scalar) -> str:
    match value:
        case None:
            return "none"
        case bool():
            return "true" if value else "false"
        case int():
            return str(value)
        case float():
            return repr(value)
        case str():
            return json.dumps(value)
    raise TypeError(f"not an IR scalar: {value!r}")


def _word(text: str) -> str:
    return text if _NAME.fullmatch(text) and text not in _keywords() else json.dumps(text)


def _ref(sigil: str, text: str) -> str:
    return sigil + (text if _REF.fullmatch(text) else json.dumps(text))


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(n) for n in shape) + "]"


def _value_def(value: Value) -> str:
    return f"{_ref('%', value.name)}: {_shape(value.type.shape)}"


def _pairs(pairs: tuple[tuple[str, Scalar], ...]) -> str:
    return ", ".join(f"{_word(k)}={_scalar(v)}" for k, v in pairs)


def _indent(lines: list[str]) -> list[str]:
    return [_INDENT + line for line in lines]


def _model_lines(m: Model) -> list[str]:
    head = (
        f"model {_word(m.name)} dtype={_word(m.dtype.value)} d_model={m.d_model} vocab={m.vocab} "
        f"context={_scalar(m.context)} {{"
    )
    body = [_param(p) for p in m.params]
    body += _block_lines(m.embedding, "embedding ")
    body += [line for layer in m.layers for line in _layer_lines(layer)]
    body += _block_lines(m.final_norm, "final_norm ") if m.final_norm is not None else []
    body += _block_lines(m.head, "head ")
    body += [_recursion(m.recursion)] if m.recursion is not None else []
    body += [_share(s) for s in m.shares] + [_budget(b) for b in m.budgets]
    return [head, *_indent(body), "}"]


def _param(p: Param) -> str:
    return f"param {_ref('@', p.id)} : {_shape(p.shape)} init={_word(p.init)}"


def _layer_lines(layer: Layer) -> list[str]:
    body = [line for sub in layer.sublayers for line in _sublayer_lines(sub)]
    return [f"layer {layer.index} {{", *_indent(body), "}"]


def _sublayer_lines(sub: Sublayer) -> list[str]:
    body = _block_lines(sub.norm, "norm ") if sub.norm is not None else []
    body += _block_lines(sub.block, "")
    return [f"sublayer {_word(sub.wrap.value)} {{", *_indent(body), "}"]


def _block_lines(b: Block, lead: str) -> list[str]:
    features = f" features({', '.join(_feature(f) for f in b.features)})" if b.features else ""
    head = (
        f"{lead}{b.kind.value} {_word(b.name)}({_pairs(b.args)}) ({_value_def(b.input)}) -> "
        f"{_ref('%', b.output)}{features} {{"
    )
    body = [line for s in b.sections for line in _section_lines(s)]
    return [head, *_indent(body), "}"]


def _feature(f: Value) -> str:
    if "=" not in f.name:
        return f"{json.dumps(f.name)}: {_shape(f.type.shape)}"
    group, name = f.name.split("=", 1)
    return f"{_word(group)}={_value_def(Value(name=name, type=f.type))}"


def _section_lines(s: Section) -> list[str]:
    words = [_word(s.role.value)] + ([_word(s.structure)] if s.structure is not None else [])
    words += [f"nonlinearity={_word(s.nonlinearity)}"] if s.nonlinearity != "none" else []
    words += [f"sparsity={_word(s.sparsity)}"] if s.sparsity != "none" else []
    return [" ".join(words) + " {", *_indent([_op(op) for op in s.ops]), "}"]


def _op(op: Op) -> str:
    outputs = ", ".join(_value_def(v) for v in op.outputs) or "()"
    text = f"{outputs} = {_word(op.prim)}({', '.join(_ref('%', i) for i in op.inputs)})"
    if op.params:
        text += " {" + ", ".join(f"{_word(role)}={_ref('@', pid)}" for role, pid in op.params) + "}"
    return text + (f" [{_pairs(op.attrs)}]" if op.attrs else "")


def _recursion(r: Recursion) -> str:
    capacities = ", ".join(_scalar(c) for c in r.capacities)
    steps = ", ".join("[" + ", ".join(str(i) for i in step) + "]" for step in r.steps)
    routers = ", ".join(_ref("@", p) for p in r.router_params)
    return (
        f"recursion recursions={r.recursions} sharing={_word(r.sharing)} "
        f"router={_word(r.router)}({_pairs(r.router_args)}) "
        f"kv={_word(r.kv)} capacities=[{capacities}] steps=[{steps}] router_params=[{routers}]"
    )


def _location(loc: tuple[int, int | None]) -> str:
    return f"layers[{loc[0]}]" + (f"[{loc[1]}]" if loc[1] is not None else "")


def _share(s: Share) -> str:
    groups = ", ".join(_word(g) for g in s.groups)
    targets = ", ".join(_location(t) for t in s.targets)
    kind = s.kind if s.kind == "features" else _word(s.kind)
    return f"share {kind} [{groups}] from {_location(s.source)} to [{targets}]"


def _budget(b: Budget) -> str:
    return f"budget {_word(b.metric)}({_pairs(b.args)}) <= {_scalar(b.limit)}" + (" strict" if b.strict else "")


# ---- parsing -------------------------------------------------------------------------------


def parse_ir(text: str) -> Model:
    """Parse the text form of a model; raises `IRSyntaxError` on malformed text."""
    try:
        model = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None
    except VisitError as exc:
        if isinstance(exc.orig_exc, IRSyntaxError):
            raise exc.orig_exc from None
        raise
    except RecursionError:
        raise IRSyntaxError("nesting too deep", 1, 1) from None
    assert isinstance(model, Model)
    return model


def _syntax_error(exc: UnexpectedInput, text: str) -> IRSyntaxError:
    line, column = getattr(exc, "line", -1), getattr(exc, "column", -1)
    if line < 1:
        line, column = text.count("\n") + 1, len(text) - text.rfind("\n")
    match exc:
        case UnexpectedToken(token=Token(type="$END")) | UnexpectedEOF():
            return IRSyntaxError("unexpected end of input", line, column)
        case UnexpectedToken():
            expected = ", ".join(sorted(_describe(name) for name in exc.expected)[:8])
            return IRSyntaxError(f"unexpected {exc.token.value!r}; expected one of {expected}", line, column)
        case UnexpectedCharacters():
            return IRSyntaxError(f"unexpected character {exc.char!r}", line, column)
    return IRSyntaxError(str(exc).splitlines()[0], line, column)


def _describe(terminal: str) -> str:
    """A terminal as a reader knows it: `'('` for punctuation and keywords, the name otherwise."""
    literals = {t.name: t.pattern.value for t in _parser().terminals if t.pattern.type == "str"}
    return repr(literals[terminal]) if terminal in literals else terminal


def _fail(message: str, tok: Token) -> IRSyntaxError:
    return IRSyntaxError(message, tok.line or 1, tok.column or 1)


def _unquote(tok: Token, skip: int = 0) -> str:
    """The text of a bare token, or the decoded string of a quoted one (after `skip` sigil chars)."""
    raw = str(tok)[skip:]
    if not raw.startswith('"'):
        return raw
    try:
        value = json.loads(raw, strict=False)
    except json.JSONDecodeError as exc:
        raise _fail(f"bad string literal {raw}: {exc.msg}", tok) from None
    assert isinstance(value, str)
    return value


_CONSTANTS: dict[str, Scalar] = {
    "true": True,
    "false": False,
    "none": None,
    "inf": math.inf,
    "-inf": -math.inf,
    "nan": math.nan,
}
Pairs = tuple[tuple[Token, object], ...]
Args = tuple[tuple[str, Scalar], ...]
Loc = tuple[int, int | None]


@dataclass(frozen=True)
class _Call:
    """A `name(key=value, ...)` pair value (the MoR router and its arguments)."""

    name: str
    args: Args


@v_args(inline=True)
class _Builder(Transformer[Token, Model]):
    """Builds IR nodes while the LALR parser reduces (no parse tree is kept). Absent optional parts
    arrive as None; list rules arrive as tuples (`items`)."""

    def items(self, *xs: object) -> tuple[object, ...]:
        return xs

    def word(self, tok: Token) -> Token:
        return Token.new_borrow_pos("WORD", _unquote(tok), tok)

    def value(self, tok: Token) -> str:
        return _unquote(tok, 1)

    param_ref = value

    def number(self, tok: Token) -> int | float:
        return float(tok) if any(c in tok for c in ".eE") else int(tok)

    def string(self, tok: Token) -> str:
        return _unquote(tok)

    def constant(self, tok: Token) -> Scalar:
        return _CONSTANTS[str(tok)]

    def name_value(self, tok: Token) -> str:
        return str(tok)

    def call(self, name: Token, args: Args) -> _Call:
        return _Call(str(name), args)

    def shape(self, tok: Token) -> tuple[int, ...]:
        inner = str(tok)[1:-1].strip()
        dims = [d.strip() for d in inner.split(",")] if inner else []
        if not all(d.isdigit() for d in dims):
            raise _fail(f"malformed shape {tok}", tok)
        return tuple(int(d) for d in dims)

    def value_def(self, name: str, shape: tuple[int, ...]) -> Value:
        return Value(name=name, type=TensorType(shape=shape))

    def pair(self, key: Token, value: object) -> tuple[Token, object]:
        return key, value

    def arg(self, key: Token, value: Scalar) -> tuple[str, Scalar]:
        return str(key), value

    param_use = arg

    def block_kind(self, tok: Token) -> BlockKind:
        return BlockKind(str(tok))

    def named_feature(self, group: Token, name: str, shape: tuple[int, ...]) -> Value:
        return Value(name=f"{group}={name}", type=TensorType(shape=shape))

    def raw_feature(self, tok: Token, shape: tuple[int, ...]) -> Value:
        return Value(name=_unquote(tok), type=TensorType(shape=shape))

    def op(
        self, outputs: tuple[Value, ...], prim: Token, inputs: tuple[str, ...], params: Args | None, attrs: Args | None
    ) -> Op:
        return Op(
            prim=str(prim),
            inputs=inputs,
            outputs=outputs,
            params=params or (),  # type: ignore[arg-type]
            attrs=attrs or (),
        )

    def section(self, role: Token, structure: Token | None, pairs: Pairs, ops: tuple[Op, ...]) -> Section:
        f = _fields(pairs, role, optional=("nonlinearity", "sparsity"))
        return Section(
            role=_enum(Role, role, "section role"),
            structure=None if structure is None else str(structure),
            nonlinearity=_str(f, "nonlinearity", "none"),
            sparsity=_str(f, "sparsity", "none"),
            ops=ops,
        )

    def block(
        self,
        kind: BlockKind,
        name: Token,
        args: Args,
        block_input: Value,
        output: str,
        features: tuple[Value, ...] | None,
        sections: tuple[Section, ...],
    ) -> Block:
        return Block(
            kind=kind,
            name=str(name),
            args=args,
            input=block_input,
            sections=sections,
            output=output,
            features=features or (),
        )

    def sublayer(self, wrap: Token, norm: Block | None, block: Block) -> Sublayer:
        return Sublayer(block=block, wrap=_enum(Wrap, wrap, "sublayer wrapper"), norm=norm)

    def layer(self, index: Token, sublayers: tuple[Sublayer, ...]) -> Layer:
        return Layer(index=_index(index), sublayers=sublayers)

    def param_decl(self, pid: str, shape: tuple[int, ...], pairs: Pairs) -> Param:
        return Param(id=pid, shape=shape, init=_str(_fields(pairs, None, optional=("init",)), "init", "normal"))

    def recursion(self, keyword: Token, pairs: Pairs) -> Recursion:
        keys = ("recursions", "sharing", "router", "capacities", "kv", "steps")
        f = _fields(pairs, keyword, required=keys, optional=("router_params",))
        router, router_args = _call(f, "router")
        return Recursion(
            recursions=_int(f, "recursions"),
            sharing=_str(f, "sharing"),
            router=router,
            router_args=router_args,
            capacities=tuple(_number(f, "capacities", c) for c in _list(f, "capacities")),
            kv=_str(f, "kv"),
            steps=tuple(_ints(f, "steps", s) for s in _list(f, "steps")),
            router_params=tuple(_check_str(f, "router_params", p) for p in _list(f, "router_params")),
        )

    def share_kind(self, kind: Token) -> str:
        return str(kind)

    def features_kind(self) -> str:
        return "features"

    def location(self, layer: Token, sub: Token | None) -> Loc:
        return _index(layer), None if sub is None else _index(sub)

    def share(self, kind: str, groups: tuple[Token, ...], source: Loc, targets: tuple[Loc, ...]) -> Share:
        return Share(kind=kind, groups=tuple(str(g) for g in groups), source=source, targets=targets)

    def budget(self, metric: Token, args: Args, limit: Scalar, strict: Token | None) -> Budget:
        if isinstance(limit, bool) or not isinstance(limit, int | float):
            raise _fail(f"budget {metric}: the limit must be a number, got {_scalar(limit)}", metric)
        return Budget(metric=str(metric), args=args, limit=limit, strict=strict is not None)

    def model(
        self,
        name: Token,
        pairs: Pairs,
        params: tuple[Param, ...],
        embedding: Block,
        layers: tuple[Layer, ...],
        final_norm: Block | None,
        head: Block,
        recursion: Recursion | None,
        shares: tuple[Share, ...],
        budgets: tuple[Budget, ...],
    ) -> Model:
        f = _fields(pairs, name, required=("dtype", "d_model", "vocab"), optional=("context",))
        context = None if f.get("context", (name, None))[1] is None else _int(f, "context")
        return Model(
            name=str(name),
            dtype=_enum(DType, f["dtype"][0], "dtype", _str(f, "dtype")),
            d_model=_int(f, "d_model"),
            vocab=_int(f, "vocab"),
            embedding=embedding,
            layers=layers,
            final_norm=final_norm,
            head=head,
            params=params,
            recursion=recursion,
            shares=shares,
            budgets=budgets,
            context=context,
        )

    def start(self, model: Model) -> Model:
        return model


# ---- checked conversions for the builder ------------------------------------------------------

_Fields = dict[str, tuple[Token, object]]


def _fields(pairs: Pairs, at: Token | None, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> _Fields:
    """`key=value` pairs by key; unknown, repeated and missing keys are syntax errors (located at `at`)."""
    found: _Fields = {}
    for key, value in pairs:
        if key not in required + optional:
            raise _fail(f"unknown key '{key}' (expected {', '.join(required + optional)})", key)
        if key in found:
            raise _fail(f"key '{key}' given twice", key)
        found[str(key)] = (key, value)
    missing = [k for k in required if k not in found]
    if missing:
        raise _fail(f"missing key '{missing[0]}'", at if at is not None else pairs[0][0])
    return found


def _str(f: _Fields, key: str, default: str | None = None) -> str:
    return default if key not in f and default is not None else _check_str(f, key, f[key][1])


def _check_str(f: _Fields, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise _fail(f"'{key}' expects a name or string, got {value!r}", f[key][0])
    return value


def _call(f: _Fields, key: str) -> tuple[str, Args]:
    value = f[key][1]
    return (value.name, value.args) if isinstance(value, _Call) else (_check_str(f, key, value), ())


def _int(f: _Fields, key: str, *item: object) -> int:
    value = item[0] if item else f[key][1]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"'{key}' expects an int, got {value!r}", f[key][0])
    return value


def _number(f: _Fields, key: str, value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(f"'{key}' expects numbers, got {value!r}", f[key][0])
    return value


def _list(f: _Fields, key: str) -> tuple[object, ...]:
    value = f[key][1] if key in f else ()
    if not isinstance(value, tuple):
        raise _fail(f"'{key}' expects a [list], got {value!r}", f[key][0])
    return value


def _ints(f: _Fields, key: str, value: object) -> tuple[int, ...]:
    if not isinstance(value, tuple):
        raise _fail(f"'{key}' expects a list of [int lists], got {value!r}", f[key][0])
    return tuple(_int(f, key, v) for v in value)


def _index(tok: Token) -> int:
    if any(c in tok for c in ".eE") or tok.startswith("-"):
        raise _fail(f"expected a non-negative int, got {tok}", tok)
    return int(tok)


def _enum(kind: Any, tok: Token, what: str, value: str | None = None) -> Any:
    try:
        return kind(str(tok) if value is None else value)
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        raise _fail(f"unknown {what} '{value or tok}' (expected one of {choices})", tok) from None
