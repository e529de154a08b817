"""Fuzz the .liv front end: whatever the text, parsing and checking end in a clean result.

The property: `parse_source` returns a `Module` or None and never raises; a None result comes with an
error; every diagnostic has a registered code and spans inside its file, and renders as text and as
JSON without raising. The same holds for the whole checker, `livc.compiler.check.check_text`.

Inputs come from hypothesis strategies:
  (a) `token_soup`: random text over an alphabet biased to .liv tokens, often after a valid prefix
      so that the parser gets deep into the grammar;
  (b) `mutated_programs`: real programs (every .liv file under stdlib/ and examples/ at test time, the
      ```liv blocks of docs/language.md and `SEED_PROGRAM` below) cut into token-sized pieces and
      mutated: slices deleted, duplicated, swapped, spliced from another seed; numbers and names
      replaced; characters replaced; truncation; deep nesting, long identifiers, hostile characters
      and stray quotes injected (`mutated_whole_programs` mutates whole files only lightly, so that
      the checker's later phases see them);
  (c) `hostile_programs`: deep nesting, long identifiers, huge numbers, control and non-ASCII
      characters placed in small valid contexts.
The default run checks 10,000 inputs on the parser and 1,200 on the checker (`CI_EXAMPLES`), in about
two and a half minutes on two cores; `pytest -m slow tests/test_fuzz.py` runs 200,000 more on the
parser and 20,000 on the checker. Runs are derandomized, so a failure reproduces on every machine.

Known bugs (`KNOWN_BUGS`) have explicit regression inputs in `REGRESSION_INPUTS`, marked
xfail(strict=True) while the bug is known; the random fuzzers tolerate exactly those exceptions (and
count them as hypothesis events) so that they keep looking for new ones. Once a bug is fixed, delete
its entry from `KNOWN_BUGS`: its regression inputs then become ordinary passing tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy

from livc.compiler.check import check_text
from livc.compiler.ir.primitives import (
    BUDGET_METRICS,
    BUILDERS,
    CHANNEL_STRUCTURES,
    DTYPES,
    MODEL_FIELDS,
    PRIMITIVES,
    SCALAR_FUNCTIONS,
    SYMBOLS,
    TOKEN_STRUCTURES,
)
from livc.dsl import ast as A
from livc.dsl.codes import CODES
from livc.dsl.diagnostics import Diagnostic, DiagnosticSink
from livc.dsl.lexicon import LIV_KEYWORDS
from livc.dsl.parser import parse_source
from livc.dsl.render import render_all_text, render_json
from livc.dsl.source import SourceFile, Span

ROOT = Path(__file__).resolve().parents[1]
CI_EXAMPLES = {"soup": 3500, "mutated": 4500, "hostile": 2000, "check": 1000, "check_whole": 200}  # 11,200 inputs
SLOW_EXAMPLES = 200_000
_FUZZ_SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
}


# ---- the property ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownBug:
    """A reported, not yet fixed front-end bug, the exceptions that are that bug, and where it shows."""

    summary: str
    matches: Callable[[Exception], bool]
    fronts: frozenset[str] = frozenset({"parse", "check"})


KNOWN_BUGS: dict[str, KnownBug] = {}  # all fuzz findings so far are fixed; see REGRESSION_INPUTS


def known_bug(exc: Exception, front: str) -> str | None:
    return next((name for name, bug in KNOWN_BUGS.items() if front in bug.fronts and bug.matches(exc)), None)


def check_span(span: Span, source: SourceFile | None) -> None:
    """Inside its file; inside the parsed file itself when `source` is given."""
    assert source is None or span.source is source, f"span in {span.source.name!r}, not in the parsed file"
    assert 0 <= span.start <= span.end <= len(span.source.text), (span.source.name, span.start, span.end)


def check_diagnostics(diags: tuple[Diagnostic, ...], source: SourceFile | None) -> None:
    """Registered codes, spans inside the text, and both renderings work and agree."""
    for diag in diags:
        assert diag.code in CODES, diag.code
        for label in (diag.primary, *diag.secondary):
            check_span(label.span, source)
    text = render_all_text(diags)
    assert all(f"[{d.code}]" in text for d in diags)
    payload = json.loads(render_json(diags))
    assert [d["code"] for d in payload["diagnostics"]] == [d.code for d in diags]


def parse_checked(text: str) -> tuple[A.Module | None, tuple[Diagnostic, ...]]:
    """Parse `text` and check the property; any exception propagates."""
    source = SourceFile("fuzz.liv", text)
    sink = DiagnosticSink()
    module = parse_source(source, sink)
    assert module is None or isinstance(module, A.Module), type(module)
    assert module is not None or sink.has_errors, "parse failed without reporting an error"
    diags = tuple(sink.items)
    check_diagnostics(diags, source)
    return module, diags


def check_checked(text: str) -> tuple[Diagnostic, ...]:
    """Run the whole semantic checker on `text` and check the property; any exception propagates."""
    diags = check_text(text, "fuzz.liv")
    assert isinstance(diags, tuple)
    for diag in diags:
        for label in (diag.primary, *diag.secondary):
            assert label.span.source.name != "fuzz.liv" or label.span.source.text == text
    check_diagnostics(diags, None)
    return diags


FRONTS: dict[str, Callable[[str], object]] = {"parse": parse_checked, "check": check_checked}


def check_front_end(text: str, front: str = "parse") -> None:
    """The fuzzers' property: like `parse_checked`/`check_checked`, but a known bug is counted, not failed."""
    try:
        FRONTS[front](text)
    except Exception as exc:
        name = known_bug(exc, front)
        if name is None:
            raise
        event(f"known bug: {name}")


# ---- seeds ----------------------------------------------------------------------------------

SEED_PROGRAM = """\
# A seed program that exercises every construct of the grammar.
import std.attention
import std.attention as attn
import "./blocks.liv" as blocks
from std.norms import RMSNorm, LayerNorm as LN
from "./ffn.liv" import SwiGLU

let width = 1_024
let eps: float = 1e-5
let ratio: float = 6.5
let sizes: [int] = [1, 2, 3,]

fn ffn_width(hidden: int, multiple: int = 256) -> int = round_up(int(2 * hidden / 3 * 1.0), multiple)
fn pick(a: int, b: int?, flag: bool = true) -> int = if flag and not (a < 0) or false then a else -a ** 2 // 3 % 5

liv GatedShortConv(d: int, kernel: int = 3, bias: bool = false, theta: float = 10_000.0) {
    require kernel >= 1, "kernel length must be at least 1"
    require d % 2 == 0
    let inner = 3 * d
    featurizer {
        b, c, v = split(linear(x, inner, bias = bias), 3)
    }
    token_mix toeplitz {
        y = c * causal_conv(b * v, kernel)   # gated short convolution
    }
    channel_mix dense {
        if d > 4K {
            out = linear(y, d)
        } else if d != 0 {
            out = linear(y, d, bias = bias)
        } else {
            out = y
        }
        return out
    }
}

liv GQA(d: int, n_heads: int = 8, kv_heads: int = 2, window: int? = none, mask: symbol = causal) {
    let hd = d // n_heads
    featurizer {
        q = rope(heads(linear(x, d), n_heads), theta = 1M)
        k = repeat_heads(heads(linear(x, kv_heads * hd), kv_heads), n_heads // kv_heads)
        v = heads(linear(x, kv_heads * hd), kv_heads)
    }
    token_mix low_rank {
        y = attention(q, k, v, mask = mask, window = window)
    }
    channel_mix grouped {
        return linear(merge_heads(y), d)
    }
}

op RMS(d: int, eps: float = 1e-5) {
    return rmsnorm(x, eps = eps)
}

op Embedding(vocab: int, d: int) {
    return embed(tokens, vocab, d)
}

model Tiny(vocab: int = 65536, d: int = 1024, dt: dtype = bf16) {
    let ffn = ffn_width(6656)
    let conv = GatedShortConv(d, kernel = 3) + SwiGLU(d, ffn)
    let gqa = (GQA(d, n_heads = 16, kv_heads = 8) with post_norm(LN(d))) + (SwiGLU(d, ffn) with pre_norm(RMS(d)))
    let plain = GQA(d) with no_residual()
    require len([conv, gqa]) == 2, "two layer kinds"

    embedding: Embedding(vocab, d)
    norm: RMS(d, eps = 1e-5)
    layers: [conv] + 3 * [gqa, conv, conv] + [attn.GQA(d), blocks.Block(d), plain]
    final_norm: RMS(d)
    head: LMHead(vocab, d, tied = true)
    context: 128000
    dtype: dt
    recursion: mor(recursions = 3, sharing = middle_cycle,
                   router = expert_choice(capacities = [1.0, 0.667, 0.333], alpha = 0.1, aux_loss = 0.001),
                   kv = recursion_wise)

    override layers[0]: GatedShortConv(d) + SwiGLU(d, ffn)
    override layers[4..8]: gqa
    share featurizer from layers[2][0] to layers[6][0], layers[10][0]
    share features k, v from layers[2][0] to layers[5][0]
    share weights from layers[1] to layers[3]

    budget {
        params <= 360M
        non_embedding_params < 300M
        cache(batch = 1, seq = 32K, dtype = bf16) <= 64MiB
        flops_per_token(seq = 4K) <= 1G
        prefill_flops(batch = 1, seq = 2K) <= 2T
    }
}
"""

_LIV_BLOCK = re.compile(r"^```liv[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_ITEM_START = re.compile(r"^(?=(?:import|from|let|fn|liv|op|model)\b)", re.MULTILINE)
_TOKEN = re.compile(
    r'"[^"\n]*"?|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|[0-9](?:[eE][+-]|[0-9A-Za-z_.])*|\*\*|//|->|\.\.|[<>=!]=|\s+|.',
    re.DOTALL,
)


def seed_texts() -> list[str]:
    """Every .liv program the repository has right now, plus the embedded seed."""
    files = sorted((ROOT / "stdlib").rglob("*.liv")) + sorted((ROOT / "examples").rglob("*.liv"))
    texts = [SEED_PROGRAM, *(p.read_text(encoding="utf-8") for p in files)]
    doc = ROOT / "docs" / "language.md"
    if doc.exists():
        texts.extend(_LIV_BLOCK.findall(doc.read_text(encoding="utf-8")))
    return texts


def split_items(text: str) -> tuple[str, ...]:
    """Top-level items (each starting at a keyword in column 1), text between them included."""
    cuts = [m.start() for m in _ITEM_START.finditer(text)]
    bounds = [0, *[c for c in cuts if c > 0], len(text)]
    return tuple(text[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a)


def tokenize(text: str) -> list[str]:
    """A lossless split into token-sized pieces: `"".join(tokenize(t)) == t`."""
    return _TOKEN.findall(text)


SEED_ITEMS: tuple[tuple[str, ...], ...] = tuple(items for items in map(split_items, seed_texts()) if items)


# ---- vocabulary -----------------------------------------------------------------------------

KEYWORDS = sorted(LIV_KEYWORDS)
BUILTIN_NAMES = sorted(set(PRIMITIVES) | set(BUILDERS) | set(SCALAR_FUNCTIONS))
CONSTANT_NAMES = sorted(
    set(DTYPES)
    | set(SYMBOLS)
    | set(TOKEN_STRUCTURES)
    | set(CHANNEL_STRUCTURES)
    | set(MODEL_FIELDS)
    | set(BUDGET_METRICS)
    | {"int", "float", "bool", "dtype", "symbol", "weights", "features"}
)
PLAIN_NAMES = ["x", "tokens", "d", "a", "b", "y", "GQA", "SwiGLU", "std", "_", "class", "__x", "self", "match", "A1"]
OPERATORS = [
    "+",
    "-",
    "*",
    "/",
    "//",
    "%",
    "**",
    "<",
    "<=",
    ">",
    ">=",
    "==",
    "!=",
    "=",
    "->",
    "..",
    ".",
    ",",
    ":",
    "?",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "!",
    "&",
    ";",
    "@",
]
QUOTES = ['"', '"abc"', '"./blocks.liv"', '"a\\nb"', '"\\""', '"\\q"', "'", '""']
COMMENTS = ["#", "# note", "#((((", '# "', "#\r"]
SEPARATORS = ["", " ", " ", "\n", "\t", "\r\n", "\n\n", "  "]
HOSTILE_CHARS = "\x00\x01\x07\x08\x0b\x0c\x1b\x7f\x85\xa0\xe9\u00df\u0394\u200b\u2028\u2029\ufeff\ufffd\U0001f600"
NESTINGS = [
    ("(", ")"),
    ("[", "]"),
    ("{", "}"),
    ("f(", ")"),
    ("[a, ", "]"),
    ("-", ""),
    ("not ", ""),
    ("a.", ""),
    ("2 ** ", ""),
    ("1 + ", ""),
    ("a * ", ""),
    ("if a then 1 else ", ""),
    ("-a(", ")"),
    ("if a { ", " }"),
    ("f(k = ", ")"),
    ("a[", "]"),
    ("(a with ", ")"),
]
DEPTHS: SearchStrategy[int] = st.sampled_from([1, 2, 3, 10, 50, 100, 199, 200, 201, 245, 250, 300, 490, 500, 700, 1000])
PREFIXES = [
    "",
    "",
    "let x = ",
    "fn f(a: int) -> int = ",
    "liv A(d: int) {\n  featurizer {\n    y = ",
    "liv A(d: int) {\n  token_mix ",
    "op N(d: int) {\n  return ",
    "model M(d: int = 1) {\n  layers: ",
    "model M() {\n  budget {\n    ",
    "model M() {\n  share ",
    "model M() {\n  override layers[",
    "import ",
    "from std.x import ",
    "liv A() { channel_mix dense { if ",
]

NUMBERS: SearchStrategy[str] = st.builds(
    lambda whole, frac, exp, suffix: whole + frac + exp + suffix,
    st.sampled_from(["0", "1", "3", "42", "1_000", "1__0", "007", "65536", "9" * 30]),
    st.sampled_from(["", "", ".5", ".0", ".", ".25"]),
    st.sampled_from(["", "", "e5", "e-5", "E+3", "e", "e400"]),
    st.sampled_from(["", "", "K", "M", "G", "T", "KiB", "MiB", "GiB", "TiB", "k", "Ki", "B", "x", "_"]),
)
TOKENS: SearchStrategy[str] = st.one_of(
    st.sampled_from(KEYWORDS),
    st.sampled_from(BUILTIN_NAMES),
    st.sampled_from(CONSTANT_NAMES),
    st.sampled_from(PLAIN_NAMES),
    st.sampled_from(OPERATORS),
    st.sampled_from(OPERATORS),
    NUMBERS,
    st.sampled_from(QUOTES),
    st.sampled_from(COMMENTS),
    st.text(max_size=2),
)


# ---- (a) token soup -------------------------------------------------------------------------


@st.composite
def token_soup(draw: DrawFn) -> str:
    """Random token sequences, often after a valid prefix."""
    prefix = draw(st.sampled_from(PREFIXES))
    pairs = draw(st.lists(st.tuples(TOKENS, st.sampled_from(SEPARATORS)), max_size=60))
    return prefix + "".join(tok + sep for tok, sep in pairs)


# ---- (b) mutated seed programs --------------------------------------------------------------

Mutation = Callable[[DrawFn, list[str]], list[str]]


def _index(draw: DrawFn, tokens: list[str]) -> int:
    return draw(st.integers(0, len(tokens)))


def _slice(draw: DrawFn, tokens: list[str]) -> tuple[int, int]:
    start = _index(draw, tokens)
    return start, min(len(tokens), start + draw(st.integers(1, 6)))


def delete_slice(draw: DrawFn, tokens: list[str]) -> list[str]:
    start, stop = _slice(draw, tokens)
    return tokens[:start] + tokens[stop:]


def duplicate_slice(draw: DrawFn, tokens: list[str]) -> list[str]:
    start, stop = _slice(draw, tokens)
    return tokens[:stop] + tokens[start:stop] + tokens[stop:]


def swap_slices(draw: DrawFn, tokens: list[str]) -> list[str]:
    a0, a1 = _slice(draw, tokens)
    b0, b1 = _slice(draw, tokens[a1:])
    b0, b1 = a1 + b0, a1 + b1
    return tokens[:a0] + tokens[b0:b1] + tokens[a1:b0] + tokens[a0:a1] + tokens[b1:]


def insert_token(draw: DrawFn, tokens: list[str]) -> list[str]:
    at = _index(draw, tokens)
    return tokens[:at] + [draw(TOKENS), draw(st.sampled_from(SEPARATORS))] + tokens[at:]


def splice_seed(draw: DrawFn, tokens: list[str]) -> list[str]:
    """Insert a few tokens of another seed item (a crossover)."""
    donor = tokenize(draw(st.sampled_from(draw(st.sampled_from(SEED_ITEMS)))))
    start, stop = _slice(draw, donor)
    at = _index(draw, tokens)
    return tokens[:at] + donor[start:stop] + tokens[at:]


def replace_chars(draw: DrawFn, tokens: list[str]) -> list[str]:
    text = list("".join(tokens))
    for _ in range(draw(st.integers(1, 4))):
        if text:
            text[draw(st.integers(0, len(text) - 1))] = draw(
                st.sampled_from('(){}[]"#=,:.+-*/<>?!_aZ09 \n' + HOSTILE_CHARS)
            )
    return tokenize("".join(text))


def truncate(draw: DrawFn, tokens: list[str]) -> list[str]:
    text = "".join(tokens)
    return tokenize(text[: draw(st.integers(0, len(text)))])


def inject_nesting(draw: DrawFn, tokens: list[str]) -> list[str]:
    opener, closer = draw(st.sampled_from(NESTINGS))
    depth = draw(DEPTHS)
    inner = draw(st.sampled_from(["a", "1", "", "x * 2"]))
    closing = closer * depth if draw(st.booleans()) else closer * draw(st.integers(0, depth))
    at = _index(draw, tokens)
    return tokens[:at] + [opener * depth + inner + closing] + tokens[at:]


def long_identifier(draw: DrawFn, tokens: list[str]) -> list[str]:
    name = draw(st.sampled_from(["a", "_", "Z9", "__"])) * draw(st.integers(30, 3000))
    names = [i for i, tok in enumerate(tokens) if re.fullmatch(r"[A-Za-z_]\w*", tok)]
    if not names:
        return tokens + [name]
    at = names[draw(st.integers(0, len(names) - 1))]
    return tokens[:at] + [name] + tokens[at + 1 :]


def insert_hostile(draw: DrawFn, tokens: list[str]) -> list[str]:
    at = _index(draw, tokens)
    return tokens[:at] + [draw(st.text(alphabet=HOSTILE_CHARS, min_size=1, max_size=4))] + tokens[at:]


def stray_quote(draw: DrawFn, tokens: list[str]) -> list[str]:
    at = _index(draw, tokens)
    return tokens[:at] + [draw(st.sampled_from(['"', '"\\', "\"'", '"#']))] + tokens[at:]


def _replace_matching(draw: DrawFn, tokens: list[str], pattern: str, new: SearchStrategy[str]) -> list[str]:
    where = [i for i, tok in enumerate(tokens) if re.fullmatch(pattern, tok)]
    if not where:
        return tokens
    at = where[draw(st.integers(0, len(where) - 1))]
    return tokens[:at] + [draw(new)] + tokens[at + 1 :]


def replace_number(draw: DrawFn, tokens: list[str]) -> list[str]:
    """Keeps the syntax, changes a value: zero, negative, huge, fractional widths reach the checker."""
    values = st.one_of(NUMBERS, st.sampled_from(["0", "(-1)", "(0 - 3)", "1e9", "3.5", "1T", "0.0", "2 ** 70"]))
    return _replace_matching(draw, tokens, r"[0-9].*", values)


def replace_name(draw: DrawFn, tokens: list[str]) -> list[str]:
    """Keeps the syntax, changes a name: undefined names, keywords, builtins in odd places."""
    names = st.one_of(
        st.sampled_from(BUILTIN_NAMES),
        st.sampled_from(CONSTANT_NAMES),
        st.sampled_from(PLAIN_NAMES),
        st.sampled_from(KEYWORDS),
    )
    return _replace_matching(draw, tokens, r"[A-Za-z_][A-Za-z0-9_]*", names)


MUTATIONS: tuple[Mutation, ...] = (
    replace_number,
    replace_name,
    delete_slice,
    duplicate_slice,
    swap_slices,
    insert_token,
    splice_seed,
    replace_chars,
    truncate,
    inject_nesting,
    long_identifier,
    insert_hostile,
    stray_quote,
)


@st.composite
def seed_window(draw: DrawFn) -> str:
    """One to four consecutive top-level items of a seed (whole small files, bounded work per input)."""
    items = draw(st.sampled_from(SEED_ITEMS))
    start = draw(st.integers(0, len(items) - 1))
    return "".join(items[start : start + draw(st.integers(1, 4))])


@st.composite
def mutated_programs(draw: DrawFn) -> str:
    tokens = tokenize(draw(seed_window()))
    for _ in range(draw(st.integers(1, 4))):
        tokens = draw(st.sampled_from(MUTATIONS))(draw, tokens)
    return "".join(tokens)


# ---- (c) hostile payloads in small contexts -------------------------------------------------

CONTEXTS = [
    "@",
    "let x = @",
    "fn f(a: int) -> int = @",
    "op N() { return @ }",
    "model M(d: int = 1) { layers: @ }",
    "liv A(d: int) { featurizer { y = @ } channel_mix dense { return y } }",
    "import @",
    "from @ import a",
    "model M() { budget { params <= @ } }",
    "let @ = 1",
    "liv @(d: int) { }",
    'let s = "@"',
    "# @\nlet a = 1",
    "op N() { if a { @ } else { return 1 } }",
    "model M() { share features @ from a to b }",
    "import std.@",
    "from std.@ import a",
    'import "@" as m',
    'from "./@.liv" import a',
]


@st.composite
def nesting_payload(draw: DrawFn) -> str:
    return "".join(inject_nesting(draw, []))


DEEP_CHAINS: SearchStrategy[str] = st.builds(
    lambda chain, depth: chain * depth + "a",
    st.sampled_from(["-", "not ", "a.", "a ** ", "a + ", "a or ", "if a then 1 else ", "a[0]."]),
    st.sampled_from([250, 500, 1000, 3000]),
)
PAYLOADS: SearchStrategy[str] = st.one_of(
    nesting_payload(),
    DEEP_CHAINS,
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "_", "A", "__", "a1"]), st.integers(1, 5000)),
    st.builds(
        lambda d, n, s: d * n + s,
        st.sampled_from(["1", "9", "0"]),
        st.integers(1, 6000),
        st.sampled_from(["", ".5", "K", "e5", "KiB"]),
    ),
    st.text(alphabet=HOSTILE_CHARS + "\"'\\#\n", max_size=20),
    st.text(max_size=20),
    token_soup(),
)


@st.composite
def hostile_programs(draw: DrawFn) -> str:
    context = draw(st.sampled_from(CONTEXTS))
    return context.replace("@", draw(PAYLOADS))


SEMANTIC_MUTATIONS: tuple[Mutation, ...] = (replace_number, replace_name, delete_slice, duplicate_slice, splice_seed)


@st.composite
def mutated_whole_programs(draw: DrawFn) -> str:
    """Whole seed files with one or two mostly syntax-preserving mutations: they reach the checker's later phases."""
    tokens = tokenize("".join(draw(st.sampled_from(SEED_ITEMS))))
    for _ in range(draw(st.integers(1, 2))):
        tokens = draw(st.sampled_from(SEMANTIC_MUTATIONS))(draw, tokens)
    return "".join(tokens)


ANY_INPUT: SearchStrategy[str] = st.one_of(token_soup(), mutated_programs(), hostile_programs())


# ---- tests ----------------------------------------------------------------------------------


def test_tokenize_is_lossless() -> None:
    for text in seed_texts():
        assert "".join(tokenize(text)) == text
        assert "".join(split_items(text)) == text


def test_seed_program_parses_cleanly() -> None:
    module, diags = parse_checked(SEED_PROGRAM)
    assert module is not None and diags == ()


@settings(max_examples=CI_EXAMPLES["soup"], **_FUZZ_SETTINGS)
@given(token_soup())
def test_fuzz_token_soup(text: str) -> None:
    check_front_end(text)


@settings(max_examples=CI_EXAMPLES["mutated"], **_FUZZ_SETTINGS)
@given(mutated_programs())
def test_fuzz_mutated_programs(text: str) -> None:
    check_front_end(text)


@settings(max_examples=CI_EXAMPLES["hostile"], **_FUZZ_SETTINGS)
@given(hostile_programs())
def test_fuzz_hostile_programs(text: str) -> None:
    check_front_end(text)


@settings(max_examples=CI_EXAMPLES["check"], **_FUZZ_SETTINGS)
@given(ANY_INPUT)
def test_fuzz_checker(text: str) -> None:
    check_front_end(text, "check")


@settings(max_examples=CI_EXAMPLES["check_whole"], **_FUZZ_SETTINGS)
@given(mutated_whole_programs())
def test_fuzz_checker_whole_programs(text: str) -> None:
    check_front_end(text, "check")


@pytest.mark.slow
@settings(max_examples=SLOW_EXAMPLES, **_FUZZ_SETTINGS)
@given(ANY_INPUT)
def test_fuzz_front_end_long(text: str) -> None:
    """The long run: `pytest -m slow tests/test_fuzz.py`."""
    check_front_end(text)


@pytest.mark.slow
@settings(max_examples=SLOW_EXAMPLES // 10, **_FUZZ_SETTINGS)
@given(st.one_of(ANY_INPUT, mutated_whole_programs()))
def test_fuzz_checker_long(text: str) -> None:
    check_front_end(text, "check")


# ---- explicit regressions -------------------------------------------------------------------

# (id, input, the known bug it shows, if any)
REGRESSION_INPUTS: list[tuple[str, str, str | None]] = [
    ("empty", "", None),
    ("only-comment", "#", None),
    ("lone-quote", '"', None),
    ("unterminated-import-path", 'import "', None),
    ("bad-escape", 'let x = "\\q"', None),
    ("nul", "let x = \x00", None),
    ("non-ascii-identifier", "let \u00e9 = 1", None),
    ("crlf", "let x = 1\r\nlet y = 2\r", None),
    ("bad-number-suffixes", "let x = 1.5Q + 1e + 1.0001K + 1e9999999999999K", None),
    ("bracket-limit", "let x = " + "(" * 201 + "1" + ")" * 201, None),
    ("long-identifier", "let " + "a" * 5000 + " = 1", None),
    ("deep-negation", "let x = " + "-" * 1000 + "1", "deep-tree-recursion"),
    ("deep-not", "let x = " + "not " * 1000 + "true", "deep-tree-recursion"),
    ("long-attribute-chain", "let x = a" + ".b" * 1000, "deep-tree-recursion"),
    ("long-power-chain", "let x = 2" + " ** 2" * 1000, "deep-tree-recursion"),
    ("long-sum", "let x = 1" + " + 1" * 1000, "deep-tree-recursion"),
    ("long-index-chain", "let x = f" + "[0]" * 1000, "deep-tree-recursion"),
    ("long-if-chain", "let x = " + "if a then 1 else " * 1000 + "1", "deep-tree-recursion"),
    ("long-else-if-chain", "op A() { if a { } " + "else if a { } " * 500 + "}", "deep-tree-recursion"),
    ("deep-within-bracket-limit", "let x = " + "-a(" * 200 + ")" * 200, "deep-tree-recursion"),
    ("comment-brackets-bypass", "# " + ")" * 400 + "\nlet x = " + "a(" * 350 + ")" * 350, None),
    ("long-std-module-name", "import std." + "a" * 300, "std-name-too-long"),
    ("long-std-module-name-from", "from std." + "a" * 300 + " import GQA", "std-name-too-long"),
    ("nul-in-import-path", 'import "\x00" as q', "nul-in-import-path"),
    ("nul-in-from-import-path", 'from "./a\x00.liv" import b', "nul-in-import-path"),
    ("huge-int-literal", "let x = 1" + "0" * 5000, "huge-int-literal"),
    ("huge-int-literal-suffixed", "let x = 1" + "0" * 5000 + "K", "huge-int-literal"),
]


def regressions(front: str) -> list[object]:
    """REGRESSION_INPUTS as pytest params, xfail(strict) where a known bug shows in this front end."""
    params = []
    for name, text, bug in REGRESSION_INPUTS:
        known = KNOWN_BUGS.get(bug or "")
        marks = [pytest.mark.xfail(strict=True, reason=known.summary)] if known and front in known.fronts else []
        params.append(pytest.param(text, id=name, marks=marks))
    return params


@pytest.mark.parametrize("text", regressions("parse"))
def test_regression_parse(text: str) -> None:
    parse_checked(text)


@pytest.mark.parametrize("text", regressions("check"))
def test_regression_check(text: str) -> None:
    check_checked(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("# " + "(" * 201 + "\nlet x = 1", id="brackets-in-comment"),
        pytest.param('let x = "' + "[" * 201 + '"', id="brackets-in-string"),
    ],
)
def test_brackets_in_trivia_do_not_count_as_nesting(text: str) -> None:
    module, diags = parse_checked(text)
    assert module is not None and diags == ()
