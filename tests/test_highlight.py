"""The pygments lexer for .liv, and the language reference (docs/language.md) that uses it.

Lexer: a sample program comes out with the expected token types; the token stream reproduces the
text; no `.liv` file in stdlib/ or examples/ (nor any ```liv block of the docs) produces an Error
token; the `pygments.lexers` entry point resolves; `highlight_terminal` only adds ANSI escapes.

Docs: every complete ```liv block of docs/language.md parses (```liv fragment blocks are pieces of
programs and are only lexed), and the reference mentions every keyword, primitive, builder,
symbol, dtype, model field, budget metric and diagnostic code that the compiler knows.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import (
    Comment,
    Error,
    Keyword,
    Name,
    Number,
    Operator,
    String,
    Whitespace,
    _TokenType,
)

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
from livc.dsl.codes import CODES
from livc.dsl.highlight import LivLexer, highlight_terminal
from livc.dsl.lexicon import LIV_KEYWORDS
from livc.dsl.parser import parse_text

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "language.md"
LIV_FILES = sorted((ROOT / "stdlib").rglob("*.liv")) + sorted((ROOT / "examples").rglob("*.liv"))
_FENCE = re.compile(r"^```(liv\b[^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

SAMPLE = """\
# sample
import std.attention as attn
from "./blocks.liv" import Block

let eps: float = 1e-5
fn width(d: int, m: int = 256) -> int = round_up(int(2 * d / 3), m) // 1 ** 2

liv Conv(d: int, kernel: int = 3, window: int? = none) {
    require kernel >= 1 and not false, "kernel length must be at least 1"
    featurizer {
        b, c, v = split(linear(x, 3 * d, bias = true), 3)
    }
    token_mix toeplitz {
        y = c * causal_conv(b * v, kernel)
    }
    channel_mix dense {
        return linear(y, d)
    }
}

op Embedding(vocab: int, d: int) {
    return embed(tokens, vocab, d)
}

model M(d: int = 1024, dt: dtype = bf16) {
    layers: 4 * [Conv(d) + attn.GQA(d, mask = causal) with post_norm(Norm(d))]
    override layers[0..2]: Conv(d)
    share features k, v from layers[1][0] to layers[3][0]
    budget {
        params <= 360M
        cache(batch = 1, seq = 32K, dtype = bf16) <= 64MiB
    }
}
"""

EXPECTED: list[tuple[str, _TokenType]] = [
    ("# sample", Comment.Single),
    ("import", Keyword.Namespace),
    ("from", Keyword.Namespace),
    ("as", Keyword.Namespace),
    ('"./blocks.liv"', String.Double),
    ("let", Keyword.Declaration),
    ("1e-5", Number.Float),
    ("fn", Keyword.Declaration),
    ("width", Name.Function),
    ("->", Operator),
    ("int", Keyword.Type),
    ("float", Keyword.Type),
    ("dtype", Keyword.Type),
    ("round_up", Name.Builtin),
    ("//", Operator),
    ("**", Operator),
    ("liv", Keyword.Declaration),
    ("Conv", Name.Class),
    ("Embedding", Name.Class),
    ("M", Name.Class),
    ("?", Operator),
    ("none", Keyword.Constant),
    ("false", Keyword.Constant),
    ("true", Keyword.Constant),
    ("require", Keyword),
    ("and", Operator.Word),
    ("not", Operator.Word),
    ("kernel length must be at least 1", String.Double),
    ("featurizer", Keyword.Reserved),
    ("token_mix", Keyword.Reserved),
    ("channel_mix", Keyword.Reserved),
    ("toeplitz", Name.Constant),
    ("dense", Name.Constant),
    ("split", Name.Builtin),
    ("linear", Name.Builtin),
    ("causal_conv", Name.Builtin),
    ("embed", Name.Builtin),
    ("post_norm", Name.Builtin),
    ("x", Name.Builtin.Pseudo),
    ("tokens", Name.Builtin.Pseudo),
    ("return", Keyword),
    ("op", Keyword.Declaration),
    ("model", Keyword.Declaration),
    ("bf16", Name.Constant),
    ("causal", Name.Constant),
    ("layers", Name.Attribute),
    ("GQA", Name.Attribute),
    ("with", Keyword),
    ("override", Keyword),
    ("..", Operator),
    ("share", Keyword),
    ("to", Keyword),
    ("budget", Keyword.Reserved),
    ("params", Name.Builtin),
    ("cache", Name.Builtin),
    ("<=", Operator),
    ("360M", Number.Integer),
    ("32K", Number.Integer),
    ("64MiB", Number.Integer),
    ("3", Number.Integer),
    ("d", Name),
]


def lex(text: str) -> list[tuple[_TokenType, str]]:
    """Tokens exactly as written (no newline added or stripped)."""
    return list(LivLexer(stripnl=False, ensurenl=False).get_tokens(text))


def types_of(text: str) -> dict[str, set[_TokenType]]:
    """Each token text (strings without quotes too) -> the token types it came out with."""
    found: dict[str, set[_TokenType]] = {}
    for ttype, value in lex(text):
        found.setdefault(value, set()).add(ttype)
        if ttype in String:
            found.setdefault(value.strip('"'), set()).add(ttype)
    return found


def errors(text: str) -> list[str]:
    return [value for ttype, value in lex(text) if ttype in Error]


def doc_blocks() -> list[tuple[str, str]]:
    """(info string, body) of every ```liv block in the language reference."""
    return _FENCE.findall(DOC.read_text(encoding="utf-8"))


def _is_program(info: str) -> bool:
    return info.split() == ["liv"]


# ---- lexer ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "ttype"), EXPECTED, ids=[t for t, _ in EXPECTED])
def test_sample_token_types(text: str, ttype: _TokenType) -> None:
    assert ttype in types_of(SAMPLE).get(text, set()), f"{text!r}: {types_of(SAMPLE).get(text)}"


def test_sample_has_no_error_tokens_and_round_trips() -> None:
    assert errors(SAMPLE) == []
    assert "".join(value for _, value in lex(SAMPLE)) == SAMPLE


def test_every_keyword_is_highlighted_as_a_keyword() -> None:
    for word in LIV_KEYWORDS:
        (ttype, value), *_ = lex(word)
        assert value == word and (ttype in Keyword or ttype in Operator.Word), (word, ttype)


def test_every_builtin_call_is_a_builtin() -> None:
    for name in sorted(set(PRIMITIVES) | set(BUILDERS) | set(SCALAR_FUNCTIONS)):
        (ttype, value), *_ = lex(f"{name}(x)")
        assert (value, ttype) == (name, Name.Builtin)


def test_symbols_dtypes_and_structures_are_constants() -> None:
    for name in sorted(set(SYMBOLS) | set(DTYPES) | set(TOKEN_STRUCTURES) | set(CHANNEL_STRUCTURES)):
        (ttype, value), *_ = lex(name)
        assert (value, ttype) == (name, Name.Constant)


@pytest.mark.parametrize(
    ("text", "ttype"),
    [
        ("1_000", Number.Integer),
        ("6.5", Number.Float),
        ("2.5E+3", Number.Float),
        ("1.5K", Number.Float),
        ("4GiB", Number.Integer),
        ("1TiB", Number.Integer),
        ("7T", Number.Integer),
    ],
)
def test_numbers_are_single_tokens(text: str, ttype: _TokenType) -> None:
    assert lex(text) == [(ttype, text)]


@pytest.mark.parametrize("text", ["let x = 3k", "let x = 2B", 'let s = "open', "let x = 1 @ 2", "let \u00e9 = 1"])
def test_malformed_input_gives_error_tokens(text: str) -> None:
    assert errors(text)


def test_definition_name_after_comment_and_newline() -> None:
    assert (Name.Class, "Foo") in lex("liv # the name follows\n  Foo(d: int) { }")
    assert (Name.Function, "f") in lex("fn\nf() -> int = 1")


def test_identifiers_containing_keywords_are_names() -> None:
    assert lex("letter") == [(Name, "letter")]
    assert lex("linear_2") == [(Name, "linear_2")]
    assert lex("x1") == [(Name, "x1")]


@pytest.mark.parametrize("path", LIV_FILES, ids=[str(p.relative_to(ROOT)) for p in LIV_FILES])
def test_no_error_tokens_in_repository_programs(path: Path) -> None:
    assert errors(path.read_text(encoding="utf-8")) == []


def test_entry_point_resolves() -> None:
    (entry,) = [e for e in entry_points(group="pygments.lexers") if e.name == "liv"]
    assert entry.load() is LivLexer
    assert isinstance(get_lexer_by_name("liv"), LivLexer)
    assert isinstance(get_lexer_for_filename("model.liv"), LivLexer)


def test_highlight_terminal_only_adds_colour() -> None:
    out = highlight_terminal(SAMPLE)
    assert "\x1b[" in out
    assert _ANSI.sub("", out) == SAMPLE


def test_whitespace_is_whitespace() -> None:
    assert lex(" \t\n") == [(Whitespace, " \t\n")]


# ---- docs/language.md -----------------------------------------------------------------------


def test_docs_have_complete_programs_and_fragments() -> None:
    infos = [info.split() for info, _ in doc_blocks()]
    assert infos.count(["liv"]) >= 5
    assert ["liv", "fragment"] in infos
    assert all(info in (["liv"], ["liv", "fragment"]) for info in infos), infos


@pytest.mark.parametrize("index", range(len(doc_blocks())))
def test_doc_block(index: int) -> None:
    info, body = doc_blocks()[index]
    assert errors(body) == []
    if _is_program(info):
        parse_text(body, f"{DOC.name}[{index}]")


@pytest.mark.parametrize(
    ("kind", "names"),
    [
        ("keyword", sorted(LIV_KEYWORDS)),
        ("primitive", sorted(PRIMITIVES)),
        ("builder", sorted(BUILDERS)),
        ("scalar function", sorted(SCALAR_FUNCTIONS)),
        ("symbol", sorted(SYMBOLS)),
        ("dtype", sorted(DTYPES)),
        ("structure", sorted(set(TOKEN_STRUCTURES) | set(CHANNEL_STRUCTURES))),
        ("model field", sorted(MODEL_FIELDS)),
        ("budget metric", sorted(BUDGET_METRICS)),
    ],
)
def test_docs_mention_every_name(kind: str, names: list[str]) -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [n for n in names if not re.search(rf"`[^`\n]*\b{re.escape(n)}\b[^`\n]*`", text)]
    assert missing == [], f"docs/language.md does not mention these {kind}s: {missing}"


def test_docs_explain_every_diagnostic_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [code for code in CODES if not re.search(rf"^\| `{code}` \|", text, re.MULTILINE)]
    assert missing == [], f"docs/language.md has no table row for {missing}"
