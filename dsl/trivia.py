"""Re-attach comments and blank lines to the AST after parsing.

lark drops comments (they are %ignore'd); the lexer callback records them. Each comment becomes a
`Comment` node in the innermost statement list that contains it: a *trailing* comment if it shares
a line with the end of the previous element, otherwise a leading one. Comments inside a single
statement's expression (e.g. inside a multi-line layer list) are hoisted in front of it. A blank
line between two elements becomes one `Blank` node (never at the start or end of a block).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, TypeVar

from livc.dsl import ast as A
from livc.dsl.source import SourceFile

T = TypeVar("T")
_Element = Any  # an item, statement or budget item


def attach(module: A.Module, comments: list[A.Comment], source: SourceFile) -> A.Module:
    items = _attach_list(module.items, sorted(comments, key=lambda c: c.span.start), source.text)
    return dataclasses.replace(module, items=tuple(items))


def _children_lists(node: _Element) -> list[str]:
    match node:
        case A.Def():
            return ["body"]
        case A.Section():
            return ["body"]
        case A.If():
            return ["body", "orelse"]
        case A.Budget():
            return ["items"]
    return []


def _body_end(node: A.If, text: str) -> int:
    """Offset just past the `}` that closes the if body."""
    pos = node.body[-1].span.end if node.body else text.index("{", node.cond.span.end) + 1
    while True:
        match = re.compile(r"\s*(#[^\n]*)?").match(text, pos)
        if match is None or match.end() == pos:
            break
        pos = match.end()
    return pos + 1 if node.body and text.startswith("}", pos) else pos


def _split_for_if(node: A.If, comments: list[A.Comment], text: str) -> dict[str, list[A.Comment]]:
    boundary = _body_end(node, text)
    return {
        "body": [c for c in comments if c.span.start < boundary],
        "orelse": [c for c in comments if c.span.start >= boundary],
    }


def _descend(node: _Element, inner: list[A.Comment], text: str) -> tuple[_Element, list[A.Comment]]:
    """Distribute `inner` comments into the node's statement lists; returns leftovers to hoist."""
    names = _children_lists(node)
    if not names:
        return node, inner
    groups = _split_for_if(node, inner, text) if isinstance(node, A.If) else {names[0]: inner}
    updates = {n: tuple(_attach_list(getattr(node, n), groups[n], text)) for n in names}
    return dataclasses.replace(node, **updates), []


def _attach_list(elements: tuple[_Element, ...], comments: list[A.Comment], text: str) -> list[_Element]:
    out: list[_Element] = []
    pending = list(comments)
    for element in elements:
        before = [c for c in pending if c.span.start < element.span.start]
        inner = [c for c in pending if element.span.start <= c.span.start < element.span.end]
        pending = [c for c in pending if c.span.start >= element.span.end]
        _emit_comments(out, before, text)
        element, hoisted = _descend(element, inner, text)
        _emit_comments(out, hoisted, text, force_leading=True)
        _blank_if_gap(out, element, text)
        out.append(element)
    _emit_comments(out, pending, text)
    return out


def _emit_comments(out: list[_Element], comments: list[A.Comment], text: str, force_leading: bool = False) -> None:
    for comment in comments:
        trailing = bool(out) and not force_leading and "\n" not in text[out[-1].span.end : comment.span.start]
        node = dataclasses.replace(comment, trailing=trailing)
        if not trailing:
            _blank_if_gap(out, node, text)
        out.append(node)


def _blank_if_gap(out: list[_Element], nxt: _Element, text: str) -> None:
    if not out or isinstance(out[-1], A.Blank):
        return
    gap = text[out[-1].span.end : nxt.span.start]
    if re.search(r"\n[ \t\r\f]*\n", gap):
        out.append(A.Blank(span=dataclasses.replace(nxt.span, start=out[-1].span.end, end=out[-1].span.end)))
