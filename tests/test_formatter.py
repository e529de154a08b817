"""The canonical formatter (`livc fmt`): round trip, idempotence, layout.

Properties, over every `.liv` file under examples/ and stdlib/, the hand-written `FIXTURES` below
(together they use every grammar construct) and random ASTs from `tests/ast_strategies.py`:
  - round trip: `parse(format(parse(src))) == parse(src)` and `parse(format(m)) == m`;
  - idempotence: `format(format(x)) == format(x)`;
  - shape: ends with exactly one newline, no trailing whitespace, no tabs.
Golden cases pin the style: precedence and parentheses, comments, blank lines, line breaking.
Regression tests for parser/trivia bugs found while writing the formatter are at the end.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livc.dsl import ast as A
from livc.dsl.diagnostics import CompileError
from livc.dsl.formatter import MAX_WIDTH, format_module, format_text
from livc.dsl.parser import parse_text

sys.path.insert(0, str(Path(__file__).parent))
from ast_strategies import defs, expressions, modules  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LIV_FILES = sorted([*ROOT.glob("examples/**/*.liv"), *ROOT.glob("stdlib/**/*.liv")])


def check_round_trip(src: str, name: str = "<test>") -> str:
    """Assert the properties for one source text; returns its canonical form."""
    module = parse_text(src, name)
    out = format_module(module)
    assert parse_text(out, name) == module, out
    assert format_text(out, name) == out
    check_shape(out)
    return out


def check_shape(out: str) -> None:
    assert out.endswith("\n") and not out.endswith("\n\n"), repr(out[-20:])
    for line in out.splitlines():
        assert line == line.rstrip(), repr(line)
        assert "\t" not in line


# ---- fixtures: every grammar construct ------------------------------------------------------------

IMPORTS = """\
# Imports of every form.
import std.attention
import std.attention as attn  # trailing comment on an import
from std.attention import GQA
from std.attention import GQA, MHA as Multi, SWA
import "./blocks.liv" as blocks
import "../shared/x.liv"
from "./blocks.liv" import MyLiv as Mine, Other
"""

LET_FN = """\
let vocab = 65536
let width: int = 32K
let ratio: float = 1e-5
let maybe: int? = none
let caps: [float] = [1.0, 0.667, 0.333]
let caps2: [float]? = [1_000, 64MiB, 6.5, 1.5M, 2E+3]
let message = "quote \\" backslash \\\\ newline \\n # not a comment"
let flag = true and not false or (none == none) != d
fn ffn_width(d: int, multiple: int = 256, ratio: float = 2 / 3) -> int = ceil_div(int(d * ratio), multiple) * multiple
fn pick(a: int, b: bool = false) -> int = if b then a else if a > 3 then a // 2 else -a ** 2 % 7
fn noargs() -> [int]? = []
"""

LIV = """\
liv GatedShortConv(d: int, kernel: int = 3, bias: bool = false, mode: symbol = causal) {
    require kernel >= 1, "kernel length must be at least 1"
    require d % 2 == 0
    let half = d // 2
    featurizer {
        b, c, v = split(linear(x, 3 * d, bias = bias), 3)
        let n: int = kernel - 1
    }
    token_mix toeplitz {
        if kernel == 1 {
            y = c * b * v
        } else if kernel < 4 {
            # short kernels
            y = c * causal_conv(b * v, kernel)
            require n >= 0
        } else {
            y = c * long_conv(b * v, kernel, mode = mode)
            if bias {
                y = y + 1
            }
        }
    }
    channel_mix dense {
        return linear(y, d, bias = bias)
    }
}

liv NoStructure(d: int) {
    featurizer {
        q = linear(x, d)
    }
    token_mix {
        y = q
    }
    channel_mix {
        return y
    }
}

liv Empty() {
}
"""

OP = """\
op RMSNorm(d: int, eps: float = 1e-5) {
    return rmsnorm(x, eps = eps)
}
op Embedding(vocab: int, d: int) {
    let scale = d ** 0.5
    out = embed(tokens, vocab, d)
    if scale > 1 {
        return out * scale
    }
    return out
}
op Nothing() {
}
"""

MODEL = """\
model LFM2_350M(vocab: int = 65536, d: int = 1024, depth: int = 16) {
    let ffn = lfm2_ffn_width(6656)
    let conv = GatedShortConv(d, kernel = 3) + SwiGLU(d, ffn)
    let attn = GQA(d, heads = 16, kv_heads = 8, qk_norm = true, rope_theta = 1M) + SwiGLU(d, ffn)
    let wrapped = GQA(d, heads = 8) with post_norm(LayerNorm(d))
    let bare = (Mixer(d) with no_residual()) + SwiGLU(d, ffn) with pre_norm(RMSNorm(d))
    require depth > 2, "too shallow"

    embedding: Embedding(vocab, d)
    norm: RMSNorm(d, eps = 1e-5)
    layers: [conv, conv, attn] + 4 * [conv, attn, conv] + [wrapped]
    override layers[0]: GatedShortConv(d) + SwiGLU(d, ffn)
    override layers[4..8]: attn
    override layers[depth - 1]: bare
    share featurizer from layers[2][0] to layers[6][0], layers[10][0]
    share features k, v from layers[2][0] to layers[5][0]
    share weights from layers[1] to layers[3]
    recursion: mor(recursions = 3, sharing = middle_cycle, router = token_choice(balance_loss = 0.1, z_loss = 1e-5))
    final_norm: RMSNorm(d, eps = 1e-5)
    head: LMHead(vocab, d, tied = true)
    context: 128000
    dtype: bf16

    budget {
        params <= 360M
        non_embedding_params < 300M
        cache(batch = 1, seq = 32K, dtype = bf16) <= 64MiB
        flops_per_token(seq = 4K) <= 1G
        prefill_flops(batch = 1, seq = 2K) <= 2 * 1T
    }
}

model Small = LFM2_350M(d = 512, depth = 8)  # an instance with other parameters
model Tiny = std.models.Base(256)
"""

COMMENTS = """\
# Leading comment at the top of the file.
#no space after the hash
#   several spaces

# After a blank line.
let a = 1  # trailing
let b = [
    1,  # inside a list: hoisted in front of the statement
    2,
    # own line inside a list
    3,
]


let c = f(a,  # inside a call
          b)
liv A(d: int,  # inside the parameter list
      k: int = 2) {  # after the brace
    # leading, inside a liv
    featurizer {  # after a section brace
        q = linear(x, d)  # trailing in a section

        # after a blank line in a section
        k = linear(x, d)
        # at the end of a section
    }

    # between sections
    token_mix dense {
        if k > 1 {  # after an if brace
            y = q * k  # trailing in an if
        } else {
            # leading in an else
            y = q
            # at the end of an else
        }
    }  # trailing after a section
    channel_mix dense {
        return y
    }
    # at the end of a liv
}  # trailing after a liv
fn f(a: int  # inside a fn header
     ) -> int = a
op P() {
    if a # inside an if condition
       > 1 {
        x = 1
    } else  # between else and if
    if b {
        x = 2
    } else {
        if c {
            x = 3
        }  # trailing after a nested if
    }  # trailing after an if chain
    return x
}
model M(d: int = 8) {
    override layers[0  # inside an override
    ]: A(d)
    share weights from layers[0] to  # inside a share
        layers[1]
    budget {
        # leading in a budget
        params <= 1M  # trailing in a budget
        cache(batch = 1,  # inside budget arguments
              seq = 4K) <= 1MiB
        # at the end of a budget
    }
    layers: [
        A(d),  # one
        A(d),  # two
    ]
}
# Final comment.
"""

PRECEDENCE = """\
let p1 = (a - b) - c
let p2 = a - (b - c)
let p3 = (a < b) == c
let p4 = (-a) ** b
let p5 = -a ** b
let p6 = a ** (b ** c)
let p7 = (a ** b) ** c
let p8 = (a + b) * (c - d) / (e // f) % (g ** h)
let p9 = not (a and b) or (not c and not d)
let p10 = (a or b) and (c or d)
let p11 = f(if a then b else c) + (if a then b else c)
let p12 = (if a then b else c).attr[0](1)
let p13 = if (if a then b else c) then (x with y) else (z with w)
let p14 = [a with b, (a with b).c, f(a with b)]
let p15 = -(-a) - -b * --c
let p16 = (not a) == b
let p17 = not a == b
let p18 = ([a, b] + [c])[1..2]
let p19 = ((a)) + (((b)))
let p20 = x[a + 1..b * 2]
let p21 = 2 ** -1
let p22 = a * (b * c)
let p23 = if a then b else if c then d else e
let p24 = if a then (if b then c else d) else e
let p25 = (a.b)(c)[d].e
let p26 = "s".len(1.5.x)
"""

LONG = """\
model Long(vocab: int = 65536, d: int = 1024, heads: int = 16, kv_heads: int = 8, rope_theta: float = 1M) {
    let attention_layer = GQA(d, heads = heads, kv_heads = kv_heads, qk_norm = true, rope_theta = rope_theta) + SwiGLU(d, 4608)
    layers: [conv, conv, attn, conv, conv, attn, conv, conv, attn, conv, attn, conv, attn, conv]
    recursion: mor(recursions = 3, sharing = middle_cycle, router = expert_choice(capacities = [1.0, 0.667, 0.333], alpha = 0.1, aux_loss = 0.001), kv = recursion_wise)
    budget {
        cache(batch = 1, seq = 32K, dtype = bf16, some_very_long_argument_name = another_very_long_value_name) <= 64MiB
    }
}
"""  # noqa: E501 (long on purpose)

FIXTURES = {
    "imports": IMPORTS,
    "let_fn": LET_FN,
    "liv": LIV,
    "op": OP,
    "model": MODEL,
    "comments": COMMENTS,
    "precedence": PRECEDENCE,
    "long": LONG,
    "empty": "",
    "only_comment": "# nothing else\n",
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_round_trips(name: str) -> None:
    check_round_trip(FIXTURES[name], name)


@pytest.mark.parametrize("path", LIV_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_file_round_trips(path: Path) -> None:
    check_round_trip(path.read_text(encoding="utf-8"), str(path))


def test_fixtures_cover_every_node_type() -> None:
    """Every AST node class, operator and section/share/def kind occurs in some fixture."""
    seen: set[object] = set()
    for src in FIXTURES.values():
        _collect(parse_text(src), seen)
    expected: set[object] = {*_node_classes(), *A.BinOpKind, *A.UnaryOpKind, *A.SectionKind, *A.ShareKind, *A.DefKind}
    assert expected - seen == set()


def _node_classes() -> set[type]:
    return {obj for obj in vars(A).values() if isinstance(obj, type) and hasattr(obj, "__dataclass_fields__")}


def _collect(node: object, seen: set[object]) -> None:
    if isinstance(node, tuple):
        for child in node:
            _collect(child, seen)
    elif hasattr(node, "__dataclass_fields__"):
        seen.add(type(node))
        for name in node.__dataclass_fields__:
            _collect(getattr(node, name), seen)
    elif isinstance(node, A.BinOpKind | A.UnaryOpKind | A.SectionKind | A.ShareKind | A.DefKind):
        seen.add(node)


# ---- golden cases: the style ----------------------------------------------------------------------

PRECEDENCE_CASES = [
    ("(a - b) - c", "a - b - c"),
    ("a - (b - c)", "a - (b - c)"),
    ("(a < b) == c", "(a < b) == c"),
    ("a < (b == c)", "a < (b == c)"),
    ("(-a) ** b", "(-a) ** b"),
    ("-(a ** b)", "-a ** b"),
    ("a ** (b ** c)", "a ** b ** c"),
    ("(a ** b) ** c", "(a ** b) ** c"),
    ("a ** (-b)", "a ** -b"),
    ("(a * b) + (c * d)", "a * b + c * d"),
    ("a * (b + c)", "a * (b + c)"),
    ("a / (b * c)", "a / (b * c)"),
    ("(not a) and b", "not a and b"),
    ("not (a and b)", "not (a and b)"),
    ("not (a == b)", "not a == b"),
    ("(not a) == b", "(not a) == b"),
    ("a or (b and c)", "a or b and c"),
    ("(a or b) and c", "(a or b) and c"),
    ("a or (b or c)", "a or (b or c)"),
    ("-(a + b)", "-(a + b)"),
    ("-(-a)", "--a"),
    ("(if a then b else c) + 1", "(if a then b else c) + 1"),
    ("f(if a then b else c)", "f(if a then b else c)"),
    ("if a then b else (if c then d else e)", "if a then b else if c then d else e"),
    ("if (if a then b else c) then d else e", "if (if a then b else c) then d else e"),
    ("if a then (b with c) else d", "if a then b with c else d"),
    ("if a then b else (c with d)", "if a then b else c with d"),
    ("(if a then b else c) with d", "(if a then b else c) with d"),
    ("(a with b) + c", "a with b + c"),
    ("a with (b + c)", "a with (b + c)"),
    ("(a + b) with c", "(a + b) with c"),
    ("-(a with b)", "-a with b"),
    ("(-a) with b", "(-a) with b"),
    ("(a with b) ** 2", "a with b ** 2"),
    ("[(a with b)]", "[a with b]"),
    ("(a with b).c", "(a with b).c"),
    ("(a + b).c", "(a + b).c"),
    ("(a + b)[c..d + 1]", "(a + b)[c..d + 1]"),
    ("(f)(x)(y)", "f(x)(y)"),
    ("(-1).x", "(-1).x"),
    ('f(a,b,key=v,other="s")', 'f(a, b, key = v, other = "s")'),
    ("[ ]", "[]"),
    ("[1,2,]", "[1, 2]"),
]


@pytest.mark.parametrize(("src", "expected"), PRECEDENCE_CASES)
def test_minimal_parentheses(src: str, expected: str) -> None:
    assert format_text(f"let v = {src}") == f"let v = {expected}\n"


def test_canonical_layout() -> None:
    src = (
        'import std.attention as attn\nfrom "./b.liv" import X as Y,Z\n'
        "liv A(d:int,k:int?=none,w:[float]=[1.0]){featurizer{a,b=split(x,2)}token_mix toeplitz{y=a}"
        "channel_mix dense{if d>1{return y}else{if d>0{return b}else{return a}}}}"
        "\n\n\n\nmodel M(d:int=2){layers:4*[A(d)]\nbudget{params<=1M cache(batch=1)<=2MiB}}\nfn f()->int=1\n"
    )
    assert format_text(src) == (
        "import std.attention as attn\n"
        'from "./b.liv" import X as Y, Z\n'
        "liv A(d: int, k: int? = none, w: [float] = [1.0]) {\n"
        "    featurizer {\n"
        "        a, b = split(x, 2)\n"
        "    }\n"
        "    token_mix toeplitz {\n"
        "        y = a\n"
        "    }\n"
        "    channel_mix dense {\n"
        "        if d > 1 {\n"
        "            return y\n"
        "        } else if d > 0 {\n"
        "            return b\n"
        "        } else {\n"
        "            return a\n"
        "        }\n"
        "    }\n"
        "}\n"
        "\n"
        "model M(d: int = 2) {\n"
        "    layers: 4 * [A(d)]\n"
        "    budget {\n"
        "        params <= 1M\n"
        "        cache(batch = 1) <= 2MiB\n"
        "    }\n"
        "}\n"
        "fn f() -> int = 1\n"
    )


def test_comments_and_blank_lines() -> None:
    src = (
        "#top\nlet a = 1 # t\n\n\n# lead\nlet b = [1, # inside\n 2]\n"
        "op O() {   # brace\n  x = 1\n\n  # end\n}   #  after\n"
    )
    assert format_text(src) == (
        "#top\n"
        "let a = 1  # t\n"
        "\n"
        "# lead\n"
        "# inside\n"
        "let b = [1, 2]\n"
        "op O() {\n"
        "    # brace\n"
        "    x = 1\n"
        "\n"
        "    # end\n"
        "}  #  after\n"
    )


def test_empty_inputs() -> None:
    assert format_text("") == "\n"
    assert format_text("\n\n  # c  \n\n") == "# c\n"
    assert format_text("op O(){}") == "op O() {\n}\n"


def test_strings_are_re_escaped() -> None:
    module = A.Module(items=(A.Let(name=A.Ident(name="s"), type=None, value=A.String(value='a"b\\c\nd#e')),))
    assert format_module(module) == 'let s = "a\\"b\\\\c\\nd#e"\n'
    assert parse_text(format_module(module)) == module


def test_long_lines_break_outermost_widest_group() -> None:
    out = check_round_trip(LONG)
    assert out == (
        "model Long(\n"
        "    vocab: int = 65536,\n"
        "    d: int = 1024,\n"
        "    heads: int = 16,\n"
        "    kv_heads: int = 8,\n"
        "    rope_theta: float = 1M,\n"
        ") {\n"
        "    let attention_layer = GQA(\n"
        "        d,\n"
        "        heads = heads,\n"
        "        kv_heads = kv_heads,\n"
        "        qk_norm = true,\n"
        "        rope_theta = rope_theta,\n"
        "    ) + SwiGLU(d, 4608)\n"
        "    layers: [conv, conv, attn, conv, conv, attn, conv, conv, attn, conv, attn, conv, attn, conv]\n"
        "    recursion: mor(\n"
        "        recursions = 3,\n"
        "        sharing = middle_cycle,\n"
        "        router = expert_choice(capacities = [1.0, 0.667, 0.333], alpha = 0.1, aux_loss = 0.001),\n"
        "        kv = recursion_wise,\n"
        "    )\n"
        "    budget {\n"
        "        cache(\n"
        "            batch = 1,\n"
        "            seq = 32K,\n"
        "            dtype = bf16,\n"
        "            some_very_long_argument_name = another_very_long_value_name,\n"
        "        ) <= 64MiB\n"
        "    }\n"
        "}\n"
    )


def test_breaking_recurses_into_items_and_tails() -> None:
    inner = ", ".join(f"argument_{i} = value_{i}" for i in range(8))
    src = f"let v = outer(first, inner({inner}), [{', '.join(f'element_{i}' for i in range(14))}]) + tail(x)\n"
    out = check_round_trip(src)
    assert out.splitlines()[:3] == ["let v = outer(", "    first,", "    inner("]
    assert "        argument_0 = value_0," in out.splitlines()
    assert out.endswith(") + tail(x)\n")
    assert all(len(line) <= MAX_WIDTH for line in out.splitlines())


def test_unbreakable_long_lines_are_left_alone() -> None:
    name = "n" * 60
    src = f"from {name} import {name}, {name}\nlet v = {name} + {name}\n"
    assert format_text(src) == src


def test_syntax_errors_raise_compile_error() -> None:
    with pytest.raises(CompileError):
        format_text("let = 1")
    with pytest.raises(CompileError):
        format_text("let v = a < b < c")


# ---- random ASTs ----------------------------------------------------------------------------------


def check_module(module: A.Module) -> None:
    out = format_module(module)
    reparsed = parse_text(out)
    assert reparsed == module, out
    assert format_module(reparsed) == out  # idempotence: format(parse(format(m))) == format(m)
    check_shape(out)


@settings(max_examples=300, deadline=None)
@given(modules())
def test_random_modules_round_trip(module: A.Module) -> None:
    check_module(module)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(A.DefKind).flatmap(defs))
def test_random_definitions_round_trip(definition: A.Def) -> None:
    check_module(A.Module(items=(definition,)))


@settings(max_examples=300, deadline=None)
@given(expressions(max_leaves=16))
def test_random_expressions_round_trip(value: A.Expr) -> None:
    check_module(A.Module(items=(A.Let(name=A.Ident(name="v"), type=None, value=value),)))


# ---- regressions for parser/trivia bugs found while writing the formatter ------------------------


def test_string_with_backslash_then_n_round_trips() -> None:
    module = A.Module(items=(A.Let(name=A.Ident(name="s"), type=None, value=A.String(value="a\\nb")),))
    assert parse_text(format_module(module)) == module


def test_brackets_in_strings_and_comments_are_not_nesting() -> None:
    check_round_trip("# " + "(" * 201 + '\nlet v = "' + "[" * 201 + '"\n')


def test_comment_at_end_of_if_body_stays_there() -> None:
    src = "op O() {\n    if c {\n        x = 1  # t\n        # end\n    } else {\n        y = 2\n    }\n}\n"
    assert format_text(src) == src


def test_else_block_with_only_comments_is_kept() -> None:
    src = "op O() {\n    if c {\n        x = 1\n    } else {\n        # nothing yet\n    }\n}\n"
    assert format_text(src) == src
