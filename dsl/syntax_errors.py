"""Turn lark's exceptions into diagnostics (lark exceptions never reach users)."""

from __future__ import annotations

import re

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from livc.dsl.diagnostics import Diagnostic, error
from livc.dsl.source import SourceFile, Span

_TERMINAL_NAMES = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "COLON": "':'",
    "EQUAL": "'='",
    "DOT": "'.'",
    "RANGE": "'..'",
    "MINUS": "'-'",
    "POW": "'**'",
    "CMP_OP": "a comparison",
    "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*', '/', '//' or '%'",
    "OPTIONAL": "'?'",
    "__ANON_0": "'->'",
    "$END": "the end of the file",
}


def describe_terminal(name: str) -> str:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    if name.isupper() and name.isalpha():
        return f"'{name.lower()}'"
    return name


_CLASSES = {"NAME": "name", "NUMBER": "number", "STRING": "string"}


def _unexpected(tok: Token) -> str:
    if tok.type in _CLASSES:
        return f"unexpected {_CLASSES[tok.type]} '{tok}'"
    return f"unexpected '{tok}'"


def _expected(names: set[str]) -> str:
    described = sorted({describe_terminal(n) for n in names})
    if len(described) > 8:
        described = described[:8] + ["..."]
    return ", ".join(described)


def from_lark(exc: UnexpectedInput, source: SourceFile, next_item: int | None = None) -> Diagnostic:
    """One diagnostic for one lark parse failure.

    `next_item` is set when only one top-level item was parsed: running out of input there means
    the next item's keyword arrived where the grammar expected something else.
    """
    if isinstance(exc, UnexpectedCharacters):
        return _bad_character(exc, source)
    if next_item is not None and not isinstance(exc, UnexpectedCharacters) and _at_end(exc):
        word = source.text[next_item:].split(None, 1)[0]
        expected = set(getattr(exc, "expected", set()) or ())
        return error(
            "E0102",
            f"unexpected '{word}'",
            Span(source, next_item, next_item + len(word)),
            f"expected {_expected(expected)} before the next item",
        )
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        tok = exc.token
        start = tok.start_pos if tok.start_pos is not None else 0
        span = Span(source, start, start + max(1, len(str(tok))))
        return error(
            "E0102",
            _unexpected(tok),
            span,
            f"expected {_expected(set(exc.expected))}",
        )
    expected = set(getattr(exc, "expected", set()) or ())
    end = len(source.text)
    return error("E0103", "unexpected end of file", Span(source, end, end), f"expected {_expected(expected)}")


def _at_end(exc: UnexpectedInput) -> bool:
    return not isinstance(exc, UnexpectedToken) or exc.token.type == "$END"


def _bad_character(exc: UnexpectedCharacters, source: SourceFile) -> Diagnostic:
    pos = exc.pos_in_stream
    char = source.text[pos : pos + 1]
    if char == '"':
        return _bad_string(source, pos)
    allowed = set(exc.allowed or ())
    label = f"expected {_expected(allowed)}" if allowed else "not part of any token"
    return error("E0101", f"unexpected character {char!r}", Span(source, pos, pos + 1), label)


_BAD_ESCAPE = re.compile(r'"(?:[^"\\\n]|\\["\\n])*(\\[^"\\n\n])')


def _bad_string(source: SourceFile, pos: int) -> Diagnostic:
    """E0104 for a string that is not closed on its line, or that has an escape other than \\" \\\\ \\n."""
    line_end = source.text.find("\n", pos)
    end = len(source.text) if line_end < 0 else line_end
    bad = _BAD_ESCAPE.match(source.text, pos, end)
    if bad is not None:
        span = Span(source, bad.start(1), bad.end(1))
        shown = bad.group(1) if bad.group(1).isprintable() else ascii(bad.group(1))[1:-1]
        return error("E0104", f"invalid escape '{shown}' in a string", span, 'the escapes are \\", \\\\ and \\n')
    return error("E0104", "unterminated string", Span(source, pos, max(end, pos + 1)), "this string is never closed")


def is_lark_error(exc: BaseException) -> bool:
    return isinstance(exc, (UnexpectedInput, UnexpectedEOF))
