"""Parse .liv text into an AST, reporting syntax errors as diagnostics.

The grammar is LALR(1) in `liv.lark`. On a syntax error the file is re-parsed one top-level item
at a time (items start with a keyword at column 1), so each broken item reports its first error
and the others still parse: several independent errors per run, no cascades.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Any

from lark import Lark, Token
from lark.exceptions import UnexpectedInput, VisitError

from livc.dsl import ast as A
from livc.dsl.build_ast import AstBuilder
from livc.dsl.diagnostics import CompileError, DiagnosticSink
from livc.dsl.source import SourceFile, Span
from livc.dsl.syntax_errors import from_lark
from livc.dsl.trivia import attach

_ITEM_START = re.compile(r"^(import|from|let|fn|liv|op|model)\b", re.MULTILINE)
MAX_SOURCE_CHARS = 2_000_000
MAX_NESTING = 200
MAX_TREE_DEPTH = 150


@lru_cache(maxsize=1)
def _grammar() -> str:
    return resources.files("livc.dsl").joinpath("liv.lark").read_text(encoding="utf-8")


def _make_parser(comments: list[Token]) -> Lark:
    return Lark(
        _grammar(),
        parser="lalr",
        strict=True,
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"COMMENT": comments.append},
    )


@lru_cache(maxsize=1)
def _shared_parser() -> tuple[Lark, list[Token]]:
    comments: list[Token] = []
    return _make_parser(comments), comments


_CLEAN_PARSES: dict[tuple[str, str], A.Module] = {}
_CLEAN_PARSE_LIMIT = 256


def parse_source(source: SourceFile, sink: DiagnosticSink) -> A.Module | None:
    """Parse one file; returns None (with diagnostics in `sink`) if it has syntax errors.

    Parses that produced no diagnostics are memoised by (name, text): the AST is immutable, so
    the standard library is parsed once per process however many programs import it. Spans of a
    memoised AST point at an equal SourceFile, so rendering is unaffected.
    """
    key = (source.name, source.text)
    cached = _CLEAN_PARSES.get(key)
    if cached is not None:
        return cached
    local = DiagnosticSink()
    module = _parse_uncached(source, local)
    for diag in local.items:
        sink.report(diag)
    if module is not None and not local.items and len(_CLEAN_PARSES) < _CLEAN_PARSE_LIMIT:
        _CLEAN_PARSES[key] = module
    return module


def _parse_uncached(source: SourceFile, sink: DiagnosticSink) -> A.Module | None:
    if _too_deep(source, sink):
        return None
    parser, comments = _shared_parser()
    comments.clear()
    try:
        tree = parser.parse(source.text)
    except UnexpectedInput as exc:
        _report_item_errors(source, sink, exc)
        return None
    except RecursionError:
        _report_too_deep(source, sink)
        return None
    deep = _too_deep_at(tree, MAX_TREE_DEPTH)
    if deep is not None:
        _report_too_deep(source, sink, *deep)
        return None
    found = [_comment(tok, source) for tok in comments]
    builder = AstBuilder(source, sink)
    try:
        module = builder.transform(tree)
    except VisitError as exc:  # pragma: no cover - a bug in the builder, not in the input
        raise exc.orig_exc from exc
    return attach(module, found, source)


@lru_cache(maxsize=1)
def _expression_parser() -> Lark:
    return Lark(_grammar(), parser="lalr", strict=True, propagate_positions=True, maybe_placeholders=True, start="expr")


def parse_expression(source: SourceFile, start: int, sink: DiagnosticSink) -> A.Expr | None:
    """Parse `source.text[start:]` as one expression (a `-D` value); spans are offsets into `source`."""
    if _too_deep(source, sink):
        return None
    try:
        tree = _expression_parser().parse(" " * start + source.text[start:])
    except UnexpectedInput as exc:
        sink.report(from_lark(exc, source))
        return None
    except RecursionError:
        _report_too_deep(source, sink, start)
        return None
    if _tree_depth_exceeds(tree, MAX_TREE_DEPTH):
        _report_too_deep(source, sink, start)
        return None
    value = AstBuilder(source, sink).transform(tree)
    assert not isinstance(value, A.Module)
    return value  # type: ignore[no-any-return]


def parse_text(text: str, name: str = "<string>") -> A.Module:
    """Parse text or raise `CompileError`; convenient for tests and the API."""
    sink = DiagnosticSink()
    module = parse_source(SourceFile(name, text), sink)
    sink.raise_if_errors()
    assert module is not None
    return module


def _comment(tok: Token, source: SourceFile) -> A.Comment:
    start = tok.start_pos or 0
    return A.Comment(text=str(tok)[1:].rstrip(), span=Span(source, start, start + len(tok)))


def _too_deep(source: SourceFile, sink: DiagnosticSink) -> bool:
    """Refuse absurd inputs before lark recurses on them (no RecursionError tracebacks)."""
    from livc.dsl.diagnostics import error

    text = source.text
    if len(text) > MAX_SOURCE_CHARS:
        sink.report(error("E0110", "file too large", Span(source, 0, 1), f"more than {MAX_SOURCE_CHARS} characters"))
        return True
    if sum(text.count(c) for c in "([{") <= MAX_NESTING:
        return False
    depth = 0
    code = re.sub(r'"(?:[^"\\\n]|\\["\\n])*"|#[^\n]*', lambda m: " " * len(m[0]), text)
    for i, ch in enumerate(code):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth > MAX_NESTING:
            sink.report(
                error("E0110", "nesting too deep", Span(source, i, i + 1), f"more than {MAX_NESTING} nested brackets")
            )
            return True
    return False


def _item_chunks(text: str) -> list[tuple[int, int]]:
    starts = [m.start() for m in _ITEM_START.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    ends = starts[1:] + [len(text)]
    return list(zip(starts, ends))


MAX_SYNTAX_ERRORS = 50


def _shift(exc: UnexpectedInput, offset: int) -> UnexpectedInput:
    """Move a chunk-relative lark error to file offsets (chunks are parsed on their own: linear time)."""
    if getattr(exc, "pos_in_stream", None) is not None:
        exc.pos_in_stream += offset
    token = getattr(exc, "token", None)
    if token is not None and token.start_pos is not None:
        token.start_pos += offset
        token.end_pos = (token.end_pos or token.start_pos) + offset
    return exc


def _report_item_errors(source: SourceFile, sink: DiagnosticSink, first: UnexpectedInput) -> None:
    parser, _ = _shared_parser()
    reported = 0
    for start, end in _item_chunks(source.text):
        try:
            tree = parser.parse(source.text[start:end])
        except UnexpectedInput as exc:
            next_item = end if end < len(source.text) else None
            sink.report(from_lark(_shift(exc, start), source, next_item))
            reported += 1
        except RecursionError:
            _report_too_deep(source, sink, start)
            reported += 1
        else:
            _check_item(tree, source, sink, start)  # its E0105/E0106/... still count beside the syntax errors
        if reported >= MAX_SYNTAX_ERRORS:
            break
    if not reported:
        sink.report(from_lark(first, source))


def _check_item(tree: object, source: SourceFile, sink: DiagnosticSink, offset: int) -> None:
    """Build the AST of an item that parsed (only for the literal and identifier diagnostics)."""
    deep = _too_deep_at(tree, MAX_TREE_DEPTH)
    if deep is not None:
        _report_too_deep(source, sink, deep[0] + offset, deep[1] + offset)
        return
    AstBuilder(source, sink, offset).transform(tree)


def _report_too_deep(source: SourceFile, sink: DiagnosticSink, offset: int = 0, end: int | None = None) -> None:
    from livc.dsl.diagnostics import error

    sink.report(
        error(
            "E0110",
            "expression nested too deeply",
            Span(source, offset, max(end if end is not None else offset + 1, offset + 1)),
            f"more than {MAX_TREE_DEPTH} levels of nesting",
            help="split long expressions into `let` bindings",
        )
    )


# A left-leaning chain `a + b + c + ...` (or `and`/`or`) is flat to a reader: its left spine adds no depth.
_CHAINS = frozenset({"binop", "and_", "or_"})
_STATEMENT_LIKE = frozenset(
    {"let_stmt", "assign", "return_stmt", "require_stmt", "field", "param", "fn_def", "if_stmt"}
    | {"override", "budget_item"}
)


def _too_deep_at(tree: object, limit: int) -> tuple[int, int] | None:
    """(start, end) of the construct that nests deeper than `limit`, or None (iterative)."""
    stack: list[tuple[Any, int, Any]] = [(tree, 1, None)]
    while stack:
        node, depth, anchor = stack.pop()
        if depth > limit:
            return (_meta_span(anchor) if anchor is not None else None) or _meta_span(node) or (0, 1)
        for i, child in enumerate(getattr(node, "children", ())):
            if not hasattr(child, "children"):
                continue
            flat = i == 0 and child.data == node.data and node.data in _CHAINS
            stack.append((child, depth if flat else depth + 1, child if node.data in _STATEMENT_LIKE else anchor))
    return None


def _meta_span(node: Any) -> tuple[int, int] | None:
    meta = getattr(node, "meta", None)
    if meta is None or getattr(meta, "empty", True):
        return None
    return meta.start_pos, meta.end_pos


def _tree_depth_exceeds(tree: object, limit: int) -> bool:
    """Iterative depth check of a lark tree (later passes recurse over the AST)."""
    return _too_deep_at(tree, limit) is not None


__all__ = ["parse_source", "parse_text", "CompileError"]
