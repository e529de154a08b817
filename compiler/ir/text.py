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

__all__ = ["IRSyntaxError", "parse_ir", "print_model"]

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


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = resources.files("livc.compiler.ir").joinpath("ir.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", strict=True, transformer=_Builder())


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
    head = (f"model {_word(m.name)} dtype={_word(m.dtype.value)} d_model={m.d_model} vocab={m.vocab} "
            f"context={_scalar(m.context)} {{")
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
    head = (f"{lead}{b.kind.value} {_word(b.name)}({_pairs(b.args)}) ({_value_def(b.input)}) -> "
            f"{_ref('%', b.output)}{features} {{")
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
    return (f"recursion recursions={r.recursions} sharing={_word(r.sharing)} router={_word(r.router)} "
            f"kv={_word(r.kv)} capacities=[{capacities}] steps=[{steps}] router_params=[{routers}]")


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
            expected = ", ".join(sorted(exc.expected)[:8])
            return IRSyntaxError(f"unexpected {exc.token.value!r}; expected one of {expected}", line, column)
        case UnexpectedCharacters():
            return IRSyntaxError(f"unexpected character {exc.char!r}", line, column)
    return IRSyntaxError(str(exc).splitlines()[0], line, column)


def _fail(message: str, tok: Token) -> IRSyntaxError:
    return IRSyntaxError(message, tok.line or 1, tok.column or 1)


def _unquote(tok: Token, skip: int = 0) -> str:
    """The text of a bare token, or the decoded string of a quoted one (after `skip` sigil chars)."""
    raw = str(tok)[skip:]
    if not raw.startswith('"'):
        return raw
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _fail(f"bad string escape: {exc.msg}", tok) from None
    assert isinstance(value, str)
    return value


@dataclass(frozen=True)
class _Slot:
    """A model-level block and the keyword that introduced it (embedding, final_norm, head)."""

    name: str
    block: Block


@dataclass(frozen=True)
class _Features:
    values: tuple[Value, ...]


@dataclass(frozen=True)
class _OpParams:
    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _OpAttrs:
    items: tuple[tuple[str, Scalar], ...]


_STRICT = object()


@v_args(inline=True)
class _Builder(Transformer[Token, Model]):
    """Builds IR nodes while the LALR parser reduces (no parse tree is kept)."""

    # ---- leaves ----------------------------------------------------------------------------
    def word(self, tok: Token) -> Token:
        return Token.new_borrow_pos("WORD", _unquote(tok), tok)

    def value(self, tok: Token) -> str:
        return _unquote(tok, 1)

    def param_ref(self, tok: Token) -> str:
        return _unquote(tok, 1)

    def number(self, tok: Token) -> int | float:
        return float(tok) if any(c in tok for c in ".eE") else int(tok)

    def string(self, tok: Token) -> str:
        return _unquote(tok)

    def true(self) -> bool:
        return True

    def false(self) -> bool:
        return False

    def none(self) -> None:
        return None

    def inf(self) -> float:
        return float("inf")

    def minus_inf(self) -> float:
        return float("-inf")

    def nan(self) -> float:
        return float("nan")

    def name_value(self, tok: Token) -> str:
        return str(tok)

    def list_value(self, *items: object) -> list[object]:
        return list(items)

    def shape(self, tok: Token) -> tuple[int, ...]:
        inner = str(tok)[1:-1].strip()
        dims = [d.strip() for d in inner.split(",")] if inner else []
        if not all(dims):
            raise _fail(f"malformed shape {tok}", tok)
        return tuple(int(d) for d in dims)

    def value_def(self, name: str, shape: tuple[int, ...]) -> Value:
        return Value(name=name, type=TensorType(shape=shape))

    def pair(self, key: Token, value: object) -> tuple[Token, object]:
        return key, value

    def arg(self, key: Token, value: Scalar) -> tuple[str, Scalar]:
        return str(key), value

    def args(self, *items: tuple[str, Scalar]) -> tuple[tuple[str, Scalar], ...]:
        return items

    # ---- blocks ----------------------------------------------------------------------------
    def block_kind(self, tok: Token) -> BlockKind:
        return BlockKind(str(tok))

    def named_feature(self, group: Token, name: str, shape: tuple[int, ...]) -> Value:
        return Value(name=f"{group}={name}", type=TensorType(shape=shape))

    def raw_feature(self, tok: Token, shape: tuple[int, ...]) -> Value:
        return Value(name=_unquote(tok), type=TensorType(shape=shape))

    def features(self, *values: Value) -> _Features:
        return _Features(values)

    def outputs(self, *values: Value) -> tuple[Value, ...]:
        return values

    def operands(self, *names: str) -> tuple[str, ...]:
        return names

    def param_use(self, role: Token, pid: str) -> tuple[str, str]:
        return str(role), pid

    def op_params(self, *items: tuple[str, str]) -> _OpParams:
        return _OpParams(items)

    def op_attrs(self, *items: tuple[str, Scalar]) -> _OpAttrs:
        return _OpAttrs(items)

    def op(self, outputs: tuple[Value, ...], prim: Token, inputs: tuple[str, ...], *rest: Any) -> Op:
        params = next((r.items for r in rest if isinstance(r, _OpParams)), ())
        attrs = next((r.items for r in rest if isinstance(r, _OpAttrs)), ())
        return Op(prim=str(prim), inputs=inputs, outputs=outputs, params=params, attrs=attrs)

    def section(self, role: Token, *rest: Any) -> Section:
        structure = str(rest[0]) if rest and isinstance(rest[0], Token) else None
        fields = _fields([r for r in rest if isinstance(r, tuple)], role, optional=("nonlinearity", "sparsity"))
        return Section(role=_enum(Role, role, "section role"), structure=structure,
                       nonlinearity=_str(fields, "nonlinearity", "none"), sparsity=_str(fields, "sparsity", "none"),
                       ops=tuple(r for r in rest if isinstance(r, Op)))

    def block(self, kind: BlockKind, name: Token, args: tuple[tuple[str, Scalar], ...], input: Value, output: str,
              *rest: Any) -> Block:
        features = next((r.values for r in rest if isinstance(r, _Features)), ())
        return Block(kind=kind, name=str(name), args=args, input=input, output=output,
                     sections=tuple(r for r in rest if isinstance(r, Section)), features=features)

    # ---- model structure -------------------------------------------------------------------
    def sub_norm(self, block: Block) -> _Slot:
        return _Slot("norm", block)

    def sublayer(self, wrap: Token, *rest: Any) -> Sublayer:
        norm = rest[0].block if isinstance(rest[0], _Slot) else None
        return Sublayer(block=rest[-1], wrap=_enum(Wrap, wrap, "sublayer wrapper"), norm=norm)

    def layer(self, index: Token, *sublayers: Sublayer) -> Layer:
        return Layer(index=_dim(index), sublayers=sublayers)

    def embedding(self, block: Block) -> _Slot:
        return _Slot("embedding", block)

    def final_norm(self, block: Block) -> _Slot:
        return _Slot("final_norm", block)

    def head(self, block: Block) -> _Slot:
        return _Slot("head", block)

    def param_decl(self, pid: str, shape: tuple[int, ...], *pairs: tuple[Token, object]) -> Param:
        fields = _fields(list(pairs), None, optional=("init",))
        return Param(id=pid, shape=shape, init=_str(fields, "init", "normal"))

    def recursion(self, *pairs: tuple[Token, object]) -> Recursion:
        keys = ("recursions", "sharing", "router", "capacities", "kv", "steps")
        f = _fields(list(pairs), None, required=keys, optional=("router_params",))
        return Recursion(recursions=_int(f, "recursions"), sharing=_str(f, "sharing"), router=_str(f, "router"),
                         capacities=tuple(_number(f, "capacities", c) for c in _list(f, "capacities")),
                         kv=_str(f, "kv"), steps=tuple(_int_tuple(f, "steps", s) for s in _list(f, "steps")),
                         router_params=tuple(_str_item(f, "router_params", p) for p in _list(f, "router_params")))

    def share_kind(self, kind: Token) -> str:
        return str(kind)

    def features_kind(self) -> str:
        return "features"

    def words(self, *items: Token) -> tuple[str, ...]:
        return tuple(str(w) for w in items)

    def location(self, layer: Token, sub: Token | None = None) -> tuple[int, int | None]:
        return _dim(layer), _dim(sub) if sub is not None else None

    def locations(self, *items: tuple[int, int | None]) -> tuple[tuple[int, int | None], ...]:
        return items

    def share(self, kind: str, groups: tuple[str, ...], source: tuple[int, int | None],
              targets: tuple[tuple[int, int | None], ...]) -> Share:
        return Share(kind=kind, groups=groups, source=source, targets=targets)

    def strict(self) -> object:
        return _STRICT

    def budget(self, metric: Token, args: tuple[tuple[str, Scalar], ...], limit: Scalar, *strict: object) -> Budget:
        if isinstance(limit, bool) or not isinstance(limit, int | float):
            raise _fail(f"budget {metric}: the limit must be a number, got {_scalar(limit)}", metric)
        return Budget(metric=str(metric), args=args, limit=limit, strict=bool(strict))

    def model(self, name: Token, *rest: Any) -> Model:
        f = _fields([r for r in rest if isinstance(r, tuple)], name, required=("dtype", "d_model", "vocab"),
                    optional=("context",))
        slots = {r.name: r.block for r in rest if isinstance(r, _Slot)}
        recursion = next((r for r in rest if isinstance(r, Recursion)), None)
        context = _int(f, "context") if f.get("context", (name, None))[1] is not None else None
        return Model(name=str(name), dtype=_enum(DType, _key(f, "dtype"), "dtype", _str(f, "dtype")),
                     d_model=_int(f, "d_model"), vocab=_int(f, "vocab"), embedding=slots["embedding"],
                     layers=tuple(r for r in rest if isinstance(r, Layer)), final_norm=slots.get("final_norm"),
                     head=slots["head"], params=tuple(r for r in rest if isinstance(r, Param)), recursion=recursion,
                     shares=tuple(r for r in rest if isinstance(r, Share)),
                     budgets=tuple(r for r in rest if isinstance(r, Budget)), context=context)

    def start(self, model: Model) -> Model:
        return model


# ---- checked conversions for the builder ------------------------------------------------------

_Fields = dict[str, tuple[Token, object]]


def _fields(pairs: list[tuple[Token, object]], at: Token | None, required: tuple[str, ...] = (),
            optional: tuple[str, ...] = ()) -> _Fields:
    """`key=value` pairs by key; unknown, repeated and missing keys are syntax errors."""
    found: _Fields = {}
    for key, value in pairs:
        if key not in required + optional:
            raise _fail(f"unknown key '{key}' (expected {', '.join(required + optional)})", key)
        if key in found:
            raise _fail(f"key '{key}' given twice", key)
        found[str(key)] = (key, value)
    missing = [k for k in required if k not in found]
    if missing:
        where = at if at is not None else pairs[-1][0] if pairs else Token("NAME", "", line=1, column=1)
        raise _fail(f"missing key '{missing[0]}'", where)
    return found


def _key(f: _Fields, key: str) -> Token:
    return f[key][0]


def _str(f: _Fields, key: str, default: str | None = None) -> str:
    if key not in f and default is not None:
        return default
    return _str_item(f, key, f[key][1])


def _str_item(f: _Fields, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise _fail(f"'{key}' expects a name or string, got {value!r}", _key(f, key))
    return value


def _int(f: _Fields, key: str, value: object = _STRICT) -> int:
    value = f[key][1] if value is _STRICT else value
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"'{key}' expects an int, got {value!r}", _key(f, key))
    return value


def _number(f: _Fields, key: str, value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(f"'{key}' expects numbers, got {value!r}", _key(f, key))
    return value


def _list(f: _Fields, key: str) -> list[object]:
    value = f[key][1] if key in f else []
    if not isinstance(value, list):
        raise _fail(f"'{key}' expects a [list], got {value!r}", _key(f, key))
    return value


def _int_tuple(f: _Fields, key: str, value: object) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise _fail(f"'{key}' expects a list of [int lists], got {value!r}", _key(f, key))
    return tuple(_int(f, key, v) for v in value)


def _dim(tok: Token) -> int:
    if any(c in tok for c in ".eE") or tok.startswith("-"):
        raise _fail(f"expected a non-negative int, got {tok}", tok)
    return int(tok)


def _enum(kind: Any, tok: Token, what: str, value: str | None = None) -> Any:
    try:
        return kind(str(tok) if value is None else value)
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        raise _fail(f"unknown {what} '{value or tok}' (expected one of {choices})", tok) from None
