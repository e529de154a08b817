"""Syntax highlighting for .liv: a pygments lexer and an ANSI helper for the CLI.

`LivLexer` is registered as the pygments entry point `liv` (see pyproject.toml), so
`pygmentize -l liv file.liv`, Sphinx/MkDocs ```liv blocks and `livc` itself all use it.
Its word lists come from the language's own registries (`lexicon.LIV_KEYWORDS`,
`compiler.ir.primitives`), so a new primitive is highlighted without touching this file.

Non-goals: it does not validate programs. Only what the parser's lexer would also reject comes
out as `Error` tokens: characters that cannot start a token, unterminated strings, and numbers with
an unknown suffix (`3k`, `2B`).
"""

from __future__ import annotations

from pygments import highlight
from pygments.formatters import TerminalFormatter
from pygments.lexer import RegexLexer, bygroups, default, words
from pygments.token import (
    Comment,
    Error,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

from livc.compiler.ir.primitives import (
    BUDGET_METRICS,
    BUILDERS,
    CHANNEL_STRUCTURES,
    DTYPES,
    INPUT_NAMES,
    MODEL_FIELDS,
    PRIMITIVES,
    SCALAR_FUNCTIONS,
    SYMBOLS,
    TOKEN_STRUCTURES,
)
from livc.dsl.lexicon import BYTE_SUFFIXES, COUNT_SUFFIXES, LIV_KEYWORDS

SECTION_KEYWORDS: tuple[str, ...] = ("featurizer", "token_mix", "channel_mix", "budget")
DEF_KEYWORDS: tuple[str, ...] = ("liv", "op", "model")
NAMESPACE_KEYWORDS: tuple[str, ...] = ("import", "from", "as")
CONSTANT_KEYWORDS: tuple[str, ...] = ("true", "false", "none")
WORD_OPERATORS: tuple[str, ...] = ("and", "or", "not")
TYPE_NAMES: tuple[str, ...] = ("int", "float", "bool", "dtype", "symbol")

_SPECIAL_KEYWORDS = frozenset(
    SECTION_KEYWORDS + DEF_KEYWORDS + NAMESPACE_KEYWORDS + CONSTANT_KEYWORDS + WORD_OPERATORS + ("fn", "let")
)
PLAIN_KEYWORDS: tuple[str, ...] = tuple(sorted(LIV_KEYWORDS - _SPECIAL_KEYWORDS))
BUILTINS: tuple[str, ...] = tuple(sorted(set(PRIMITIVES) | set(BUILDERS) | set(SCALAR_FUNCTIONS)))
CONSTANTS: tuple[str, ...] = tuple(sorted(set(DTYPES) | set(SYMBOLS) | set(TOKEN_STRUCTURES) | set(CHANNEL_STRUCTURES)))

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_END = r"(?![A-Za-z0-9_])"
_SUFFIX = "(?:" + "|".join(sorted(BYTE_SUFFIXES) + sorted(COUNT_SUFFIXES)) + ")?"
_DIGITS = r"[0-9](?:_?[0-9])*"
_FLOAT = _DIGITS + r"(?:\.[0-9]+(?:[eE][+-]?[0-9]+)?|[eE][+-]?[0-9]+)" + _SUFFIX + _END
_INT = _DIGITS + _SUFFIX + _END
_BAD_NUMBER = _DIGITS + r"(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?[A-Za-z0-9_]*"


def _word_rule(names: tuple[str, ...], token: object) -> tuple[object, object]:
    """A rule matching any of `names` as a whole identifier."""
    return words(names, prefix=r"(?<![A-Za-z0-9_])", suffix=_END), token


def _trivia() -> list[tuple[str, object]]:
    return [(r"[ \t\r\n\f]+", Whitespace), (r"#[^\n]*", Comment.Single)]


def _definition_name(token: object) -> list[object]:
    """State entered after `liv`/`op`/`model`/`fn`: the next identifier is the definition's name."""
    return [*_trivia(), (_IDENT, token, "#pop"), default("#pop")]


def _literals() -> list[object]:
    return [
        (r'"(?:[^"\\\n]|\\["\\n])*"', String.Double),
        (r'"[^\n]*', Error),
        (_FLOAT, Number.Float),
        (_INT, Number.Integer),
        (_BAD_NUMBER, Error),
    ]


def _keywords() -> list[object]:
    return [
        (r"(liv|op|model)" + _END, Keyword.Declaration, "classname"),
        (r"fn" + _END, Keyword.Declaration, "funcname"),
        (r"(token_mix|channel_mix)" + _END, Keyword.Reserved, "structure"),
        _word_rule(("let",), Keyword.Declaration),
        _word_rule(SECTION_KEYWORDS, Keyword.Reserved),
        _word_rule(NAMESPACE_KEYWORDS, Keyword.Namespace),
        _word_rule(CONSTANT_KEYWORDS, Keyword.Constant),
        _word_rule(WORD_OPERATORS, Operator.Word),
        _word_rule(PLAIN_KEYWORDS, Keyword),
    ]


def _names() -> list[object]:
    """Context first: a metric before `(`/`<`, a field before `:`, a builtin before `(` (`int(...)`,
    `elu_plus_one(t)`); then the words alone (`int` is a type, `elu_plus_one` a symbol)."""
    return [
        (words(tuple(BUDGET_METRICS), suffix=_END + r"(?=[ \t\r\n\f]*[(<])"), Name.Builtin),
        (words(tuple(MODEL_FIELDS), suffix=_END + r"(?=[ \t\r\n\f]*:)"), Name.Attribute),
        (words(BUILTINS, suffix=_END + r"(?=[ \t\r\n\f]*\()"), Name.Builtin),
        _word_rule(TYPE_NAMES, Keyword.Type),
        _word_rule(INPUT_NAMES, Name.Builtin.Pseudo),
        _word_rule(CONSTANTS, Name.Constant),
        _word_rule(BUILTINS, Name.Builtin),
        (r"(\.)(" + _IDENT + ")", bygroups(Punctuation, Name.Attribute)),
        (_IDENT, Name),
    ]


def _operators() -> list[tuple[str, object]]:
    return [
        (r"\*\*|//|->|\.\.|<=|>=|==|!=|[-+*/%<>=?]", Operator),
        (r"[()\[\]{},:.]", Punctuation),
    ]


class LivLexer(RegexLexer):
    """Pygments lexer for the .liv architecture language."""

    name = "liv"
    aliases = ["liv"]
    filenames = ["*.liv"]
    mimetypes = ["text/x-liv"]

    tokens = {
        "root": [*_trivia(), *_literals(), *_keywords(), *_names(), *_operators()],
        "classname": _definition_name(Name.Class),
        "funcname": _definition_name(Name.Function),
        "structure": [*_trivia(), (_IDENT, Name.Constant, "#pop"), default("#pop")],
    }


def highlight_terminal(text: str) -> str:
    """`text` with ANSI colour escapes, for printing .liv source in a terminal."""
    return highlight(text, LivLexer(), TerminalFormatter())


__all__ = ["LivLexer", "highlight_terminal"]
