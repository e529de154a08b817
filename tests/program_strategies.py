"""Hypothesis strategies for whole programs written over the primitives, with identifiers that stress codegen naming.

`programs()` draws a `Program`: custom `op`s whose bodies chain every primitive and operator (linear,
grouped_linear, split, split_heads/merge_heads, repeat_heads, short_conv, causal_conv, apply_rope, rmsnorm,
layernorm, attention, linear_attention, gated_scan, selective_scan, long_conv with both filters, token_dense,
scale, moe, every activation, `+ - * /` with tensors and scalars, negation), sometimes inside `if`/`else`,
used as sublayers beside stdlib LIVs (`strategies.operators`), with an optional custom embedding, norm and head.
Every body is valid by construction: each statement is drawn from the shapes bound so far (`_Body`), and the
last value is projected back to the model width.

`hostile=True` draws every identifier — model, op, parameter, `let` and local names — from `HOSTILE_NAMES`
(Python keywords and builtins, `nn.Module` attributes, the generated runtime's helpers and classes, the names
of the generated model's attributes and methods, and names such as `w_1`/`x_2` that the compiler's own
renaming produces) as well as from plain ones. Some of those the front end rejects (keywords, `self`, `__x`,
.liv keywords, a local that shadows a primitive it calls): such a program must be rejected with diagnostics;
every program it accepts must build into a working module.

Sizes are small (d <= 32, vocab <= 24, at most 3 layers) so that a generated module runs on a CPU in
milliseconds; token_dense's `max_len` is 64 (the tests use shorter sequences).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st
from hypothesis.strategies import DrawFn
from strategies import MODULES, OpSpec, operators

from livc.backends.pytorch.names import NN_MODULE_ATTRS, block_attributes, runtime_names
from livc.compiler.ir.primitives import PRIMITIVES
from livc.dsl.lexicon import identifier_problem

Shape = tuple[int, ...]
TOKEN_DENSE_LEN = 64
_RENAMED = ("w_1", "w_2", "x_1", "x_2", "out", "out_1", "out_2", "h_1", "q_k", "norm_1", "tokens", "x")
_MODEL_ATTRS = ("embedding", "layers", "final_norm", "head", "recursion", "prefill", "decode_step", "init_cache")
_MODEL_ATTRS += ("generate", "_run", "logits", "aux", "features", "cache", "pos", "self", "cls", "__w")
_BUILTINS = ("int", "float", "len", "range", "sum", "min", "max", "print", "type", "id", "object", "super", "iter")
_BUILTINS += ("next", "map", "zip", "str", "dict", "list", "tuple", "set", "bool", "abs", "any", "all", "round")
HOSTILE_NAMES: tuple[str, ...] = tuple(
    sorted(
        set(_RENAMED + _MODEL_ATTRS + _BUILTINS + ("class", "def", "lambda", "None", "match", "if", "model"))
        | {n for n in NN_MODULE_ATTRS if not n.startswith("_") or n in ("_modules", "_parameters", "_version")}
        | set(runtime_names())
        | set(block_attributes()) - {"__init__"}
    )
)
PLAIN_NAMES = ("a", "b", "h", "w", "v", "q", "k", "g", "y", "z", "u", "mix", "Mix", "Net", "T")
# `elu_plus_one` is also a feature-map symbol; a call of it calls the primitive (it was E0202 before).
_ACTIVATIONS = ("silu", "gelu", "relu", "sigmoid", "softplus", "tanh", "exp", "sin", "logsigmoid", "elu_plus_one")


@dataclass(frozen=True)
class OpDef:
    """`op name(width: int, extra: int = 2) { let ...; statements; return ... }`."""

    name: str
    width: str
    extra: str
    lets: tuple[tuple[str, str], ...]
    body: tuple[str, ...]
    result: str

    def render(self) -> str:
        lines = [f"op {self.name}({self.width}: int, {self.extra}: int = 2) {{"]
        lines += [f"    let {n} = {v}" for n, v in self.lets] + [f"    {s}" for s in self.body]
        return "\n".join(lines + [f"    return {self.result}", "}"])


@dataclass(frozen=True)
class Program:
    name: str
    vocab_name: str
    d_name: str
    vocab: int
    d: int
    ops: tuple[OpDef, ...]
    layers: tuple[tuple[str, ...], ...]
    stdlib: tuple[OpSpec, ...] = ()
    embedding: str = "Embedding({vocab}, {d})"
    norm: str | None = "RMSNorm({d})"
    final_norm: str | None = None
    head: str = "LMHead({vocab}, {d}, tied = true)"

    @property
    def source(self) -> str:
        v, d = self.vocab_name, self.d_name
        fields = [f"embedding: {self.embedding.format(vocab=v, d=d)}"]
        fields += [f"norm: {self.norm.format(d=d)}"] if self.norm else []
        fields += ["layers: [" + ", ".join(" + ".join(s.format(d=d) for s in layer) for layer in self.layers) + "]"]
        fields += [f"final_norm: {self.final_norm.format(d=d)}"] if self.final_norm else []
        fields += [f"head: {self.head.format(vocab=v, d=d)}"]
        imports = ["from std.norms import RMSNorm, LayerNorm", "from std.embedding import Embedding, LMHead"]
        modules = sorted({o.module for o in self.stdlib})
        imports += [f"import std.{m} as std_{m}" for m in modules]
        header = f"model {self.name}({v}: int = {self.vocab}, {d}: int = {self.d}) {{"
        ops = [o.render() for o in self.ops]
        return "\n".join([*imports, "", *ops, "", header, *(f"    {f}" for f in fields), "}", ""])


# ---- bodies ------------------------------------------------------------------------------------------------------


@dataclass
class _Body:
    """A body being drawn: the tensors bound so far (name -> shape) and the statements."""

    draw: DrawFn
    names: st.SearchStrategy[str]
    width: str
    d: int
    scalars: frozenset[str]
    bound: dict[str, Shape] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    last: str = "x"

    def target(self, fresh: bool = False) -> str:
        """A name to bind: often a rebinding of a bound tensor (renaming!), else a drawn name; `fresh` (for the
        intermediates of a move, which later statements of the move still read) never rebinds."""
        if not fresh and self.bound and self.draw(st.integers(0, 3)) == 0:
            return self.draw(st.sampled_from(sorted(self.bound)))
        name = self.draw(self.names)
        name = name if name not in self.scalars else name + "_t"
        return name if not fresh or name not in self.bound else f"{name}_{len(self.lines)}"

    def bind(self, expr: str, shape: Shape, fresh: bool = False) -> str:
        name = self.target(fresh)
        self.lines.append(f"{name} = {expr}")
        self.bound[name], self.last = shape, name
        return name

    def pick(self, flat: bool | None = None) -> tuple[str, Shape]:
        options = sorted(n for n, s in self.bound.items() if flat is None or (len(s) == 1) == flat)
        name = self.draw(st.sampled_from(options))
        return name, self.bound[name]

    def flat(self) -> tuple[str, int]:
        if not any(len(s) == 1 for s in self.bound.values()):
            name, (h, hd) = self.pick(flat=False)
            return self.bind(f"merge_heads({name})", (h * hd,)), h * hd
        name, shape = self.pick(flat=True)
        return name, shape[0]

    def width_expr(self, n: int) -> str:
        """`n` as .liv text, in terms of the op's width parameter where it is a multiple of it."""
        if n == self.d:
            return self.width
        if n % self.d == 0:
            return f"{n // self.d} * {self.width}"
        return f"{self.width} // {self.d // n}" if self.d % n == 0 else str(n)


def _divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0]


def _b(flag: bool) -> str:
    return "true" if flag else "false"


def _dense(b: _Body) -> None:
    src, c = b.flat()
    out = b.draw(st.sampled_from(sorted({b.d, max(1, b.d // 2), 2 * b.d})))
    match b.draw(st.integers(0, 2)):
        case 0:
            b.bind(f"linear({src}, {b.width_expr(out)}, bias = {_b(b.draw(st.booleans()))})", (out,))
        case 1:
            g = b.draw(st.sampled_from(_divisors(_gcd(c, out))))
            b.bind(f"grouped_linear({src}, {b.width_expr(out)}, groups = {g})", (out,))
        case _:
            hidden = b.draw(st.integers(1, 12))
            experts = b.draw(st.integers(1, 4))
            top_k = b.draw(st.integers(1, experts))
            shared = b.draw(st.integers(0, 1))
            b.bind(f"moe({src}, experts = {experts}, top_k = {top_k}, hidden = {hidden}, shared = {shared})", (c,))


def _gcd(a: int, c: int) -> int:
    while c:
        a, c = c, a % c
    return a


def _pointwise(b: _Body) -> None:
    src, shape = b.pick()
    match b.draw(st.integers(0, 5)):
        case 0:
            b.bind(f"{b.draw(st.sampled_from(_ACTIVATIONS))}({src})", shape)
        case 1:
            b.bind(f"rmsnorm({src}, affine = {_b(b.draw(st.booleans()))})", shape)
        case 2:
            b.bind(f"layernorm({src}, bias = {_b(b.draw(st.booleans()))})", shape)
        case 3:
            b.bind(f"scale({src}, init = {b.draw(st.sampled_from(('0.5', '1.0', '2.0')))})", shape)
        case 4:
            same = sorted(n for n, s in b.bound.items() if s == shape)
            other = b.draw(st.sampled_from(same))
            op = b.draw(st.sampled_from(("+", "-", "*")))
            b.bind(f"{src} {op} {other}", shape)
        case _:
            expr = b.draw(st.sampled_from((f"-{src}", f"{src} * 0.5", f"1.0 + {src}", f"{src} / 2.0", f"2 * {src}")))
            b.bind(expr, shape)


def _sequence(b: _Body) -> None:
    src, c = b.flat()
    match b.draw(st.integers(0, 3)):
        case 0:
            b.bind(f"short_conv({src}, kernel = {b.draw(st.integers(1, 4))})", (c,))
        case 1:
            groups = b.draw(st.one_of(st.none(), st.sampled_from(_divisors(c))))
            extra = "" if groups is None else f", groups = {groups}"
            b.bind(f"causal_conv({src}, kernel = {b.draw(st.integers(1, 4))}{extra})", (c,))
        case 2:
            spec = b.draw(
                st.sampled_from(
                    (
                        f"implicit_filter(order = {b.draw(st.integers(2, 8))}, emb_dim = 3, inner_layers = 1)",
                        f"modal_filter(state = {b.draw(st.integers(1, 4))})",
                    )
                )
            )
            b.bind(f"long_conv({src}, {spec}, bias = {_b(b.draw(st.booleans()))})", (c,))
        case _:
            b.bind(f"token_dense({src}, max_len = {TOKEN_DENSE_LEN})", (c,))


def _heads(b: _Body, src: str, heads: int, dim: int, role: str) -> str:
    """Bind a projection of `src` split into `heads` heads of `dim`; maybe RoPE (q/k) and QK-norm."""
    name = b.bind(f"split_heads(linear({src}, {b.width_expr(heads * dim)}), {heads})", (heads, dim), fresh=True)
    if role in "qk" and dim % 2 == 0 and b.draw(st.booleans()):
        fraction = b.draw(st.sampled_from(("1.0", "0.5"))) if dim % 4 == 0 else "1.0"
        name = b.bind(f"apply_rope({name}, theta = 10000.0, fraction = {fraction})", (heads, dim), fresh=True)
    if role in "qk" and b.draw(st.integers(0, 3)) == 0:
        name = b.bind(f"rmsnorm({name})", (heads, dim), fresh=True)
    return name


def _mixer(b: _Body) -> None:
    src, _ = b.flat()
    heads = b.draw(st.sampled_from((1, 2, 4)))
    dk, dv = b.draw(st.sampled_from((2, 4, 8))), b.draw(st.sampled_from((2, 4, 8)))
    kind = b.draw(st.sampled_from(("attention", "linear_attention", "gated_scan", "selective_scan")))
    if kind == "selective_scan":
        state = b.draw(st.integers(1, 4))
        dt = b.bind(f"softplus(linear({src}, {b.width_expr(b.d)}))", (b.d,), fresh=True)
        bb = b.bind(f"linear({src}, {state})", (state,), fresh=True)
        cc = b.bind(f"linear({src}, {state})", (state,), fresh=True)
        u = b.bind(f"linear({src}, {b.width})", (b.d,), fresh=True)
        b.bind(f"selective_scan({u}, {dt}, {bb}, {cc}, state = {state})", (b.d,))
        return
    kv = b.draw(st.sampled_from(_divisors(heads))) if kind == "attention" else heads
    q, k, v = _heads(b, src, heads, dk, "q"), _heads(b, src, kv, dk, "k"), _heads(b, src, kv, dv, "v")
    if kv < heads:
        k = b.bind(f"repeat_heads({k}, {heads // kv})", (heads, dk), fresh=True)
        v = b.bind(f"repeat_heads({v}, {heads // kv})", (heads, dv), fresh=True)
    if kind == "attention":
        window = b.draw(st.sampled_from(("", ", window = 3", ", window = 1")))
        softcap = b.draw(st.sampled_from(("", ", softcap = 30.0")))
        b.bind(f"attention({q}, {k}, {v}{window}{softcap})", (heads, dv))
    elif kind == "linear_attention":
        fmap, norm = b.draw(
            st.sampled_from((("elu_plus_one", "true"), ("relu_map", "false"), ("identity_map", "false")))
        )
        b.bind(f"linear_attention({q}, {k}, {v}, feature_map = {fmap}, normalize = {norm})", (heads, dv))
    else:
        g = b.bind(f"split_heads(logsigmoid(linear({src}, {b.width_expr(heads * dk)})), {heads})", (heads, dk), True)
        b.bind(f"gated_scan({q}, {k}, {v}, {g})", (heads, dv))


def _structure(b: _Body) -> None:
    src, c = b.flat()
    splits = [p for p in (2, 3, 4) if c % p == 0]
    if splits and b.draw(st.booleans()):
        parts = b.draw(st.sampled_from(splits))
        first = b.draw(b.names)
        names = [first] + [f"{first}_p{i}" for i in range(1, parts)]
        if any(n in b.scalars for n in names):
            names = [f"s{i}" for i in range(parts)]
        b.lines.append(f"{', '.join(names)} = split({src}, {parts})")
        b.bound.update({n: (c // parts,) for n in names})
        b.last = names[0]
        return
    heads = b.draw(st.sampled_from(_divisors(c)[:3]))
    name = b.bind(f"split_heads({src}, {heads})", (heads, c // heads), fresh=True)
    if b.draw(st.booleans()):
        name = b.bind(f"repeat_heads({name}, 2)", (2 * heads, c // heads), fresh=True)
    b.bind(f"merge_heads({name})", (b.bound[name][0] * b.bound[name][1],))


def _branch(b: _Body) -> None:
    """An `if` whose branches bind the same name to the same shape (the builder takes one)."""
    src, c = b.flat()
    name = b.target()
    cond = b.draw(st.sampled_from((f"{b.width} > 4", f"{b.width} < 2", "true")))
    b.lines.append(f"if {cond} {{ {name} = linear({src}, {b.width_expr(c)}) }} else {{ {name} = scale({src}) }}")
    b.bound[name], b.last = (c,), name


_MOVES = (_dense, _pointwise, _pointwise, _sequence, _mixer, _structure, _branch)


@st.composite
def op_defs(draw: DrawFn, name: str, d: int, names: st.SearchStrategy[str]) -> OpDef:
    inputs = {"x", "tokens"}  # an int parameter named like the input is a (coded) error, E0301
    width = distinct(draw, names, {name} | inputs)
    extra = distinct(draw, names, {name, width} | inputs)
    let = distinct(draw, names, {name, width, extra} | inputs)
    body = _Body(draw, names.map(_not_primitive), width, d, frozenset({width, extra, let, name}))
    body.bound["x"] = (d,)
    for _ in range(draw(st.integers(1, 5))):
        draw(st.sampled_from(_MOVES))(body)
    last, shape = body.last, body.bound[body.last]
    if len(shape) == 2:
        last, shape = f"merge_heads({last})", (shape[0] * shape[1],)
    result = last if shape == (d,) and draw(st.booleans()) else f"linear({last}, {let} // {extra})"
    return OpDef(name, width, extra, ((let, f"{width} * {extra}"),), tuple(body.lines), result)


def distinct(draw: DrawFn, names: st.SearchStrategy[str], taken: set[str]) -> str:
    """A drawn name not in `taken` (suffixed `_n` where it is: no filter, so every draw is valid)."""
    name, n = draw(names), 1
    while (name if n == 1 else f"{name}_{n}") in taken:
        n += 1
    return name if n == 1 else f"{name}_{n}"


def _not_primitive(name: str) -> str:
    """A local never shadows a primitive that a later statement calls."""
    return name + "_t" if name in PRIMITIVES else name


# Hostile names the front end rejects (E0106: Python keywords, `self`, `__x`; .liv keywords): drawn 1 time in 200,
# so that most hostile programs get past the front end while the rejection path is still exercised.
REJECTED_NAMES = tuple(n for n in HOSTILE_NAMES if identifier_problem(n) is not None)
_ACCEPTED = tuple(n for n in HOSTILE_NAMES if identifier_problem(n) is None)


def identifiers(hostile: bool) -> st.SearchStrategy[str]:
    plain = st.sampled_from(PLAIN_NAMES)
    if not hostile:
        return plain.map(lambda n: n.lower())
    accepted = st.sampled_from(PLAIN_NAMES + _ACCEPTED)
    # 117, not 0 or 199: hypothesis favours the bounds of a range
    return st.integers(0, 199).flatmap(lambda i: st.sampled_from(REJECTED_NAMES) if i == 117 else accepted)


def _custom_io(draw: DrawFn, names: st.SearchStrategy[str], taken: set[str]) -> list[tuple[str, str, str]]:
    """Maybe a custom embedding, norm and head op: (field, op text, call template)."""
    out = []
    for field_name in ("embedding", "norm", "head"):
        if not draw(st.booleans()):
            continue
        name = distinct(draw, names, taken | set(PRIMITIVES))
        local = distinct(draw, names, {name, "vocab", "d"} | set(PRIMITIVES))
        taken.add(name)
        if field_name == "embedding":
            body, params, call = "embed(tokens, vocab, d)", "vocab: int, d: int", "({vocab}, {d})"
        elif field_name == "norm":
            body, params, call = "rmsnorm(x)", "d: int", "({d})"
        else:
            body, params, call = (
                f"lm_head(x, vocab, tied = {_b(draw(st.booleans()))})",
                "vocab: int, d: int",
                "({vocab}, {d})",
            )
        text = f"op {name}({params}) {{\n    {local} = {body}\n    return {local}\n}}"
        out.append((field_name, text, name + call))
    return out


_IMPORTED = {"RMSNorm", "LayerNorm", "Embedding", "LMHead"} | {f"std_{m}" for m in MODULES}


@st.composite
def programs(draw: DrawFn, hostile: bool = False, stdlib: bool = True) -> Program:
    """A program over the primitives (see the module docstring)."""
    names = identifiers(hostile)
    d = draw(st.sampled_from((8, 16, 24, 32)))
    model = draw(names)
    vocab_name = distinct(draw, names, {model})
    d_name = distinct(draw, names, {model, vocab_name})
    taken = {model, vocab_name, d_name} | _IMPORTED
    ops = []
    for _ in range(draw(st.integers(1, 2))):
        name = distinct(draw, names, taken | set(PRIMITIVES))
        taken.add(name)
        ops.append(draw(op_defs(name, d, names)))
    specs = tuple(draw(st.lists(operators(d), max_size=1 if stdlib else 0)))
    sublayers = [f"{o.name}({{d}})" for o in ops] + [_stdlib_call(o) for o in specs]
    order = draw(st.permutations(sublayers))
    cut = draw(st.integers(1, len(order)))
    layers = tuple(t for t in (tuple(order[:cut]), tuple(order[cut:])) if t)
    io = _custom_io(draw, names, taken)
    custom = {f: call for f, _, call in io}
    extra_ops = [_Raw(text) for _, text, _ in io]
    return Program(
        name=model,
        vocab_name=vocab_name,
        d_name=d_name,
        vocab=draw(st.integers(2, 24)),
        d=d,
        ops=(*ops, *extra_ops),  # type: ignore[arg-type]
        layers=layers,
        stdlib=specs,
        embedding=custom.get("embedding", "Embedding({vocab}, {d})"),
        norm=custom.get("norm", draw(st.sampled_from(("RMSNorm({d})", "LayerNorm({d})", None)))),
        final_norm=draw(st.sampled_from(("RMSNorm({d})", None))),
        head=custom.get("head", f"LMHead({{vocab}}, {{d}}, tied = {_b(draw(st.booleans()))})"),
    )


@dataclass(frozen=True)
class _Raw:
    text: str

    def render(self) -> str:
        return self.text


def _stdlib_call(spec: OpSpec) -> str:
    args = "".join(f", {k} = {v}" for k, v in spec.args)
    return f"std_{spec.module}.{spec.name}({{d}}{args})"


__all__ = ["HOSTILE_NAMES", "OpDef", "Program", "op_defs", "programs"]
