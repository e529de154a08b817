"""Where `return` may stand: the output of a `liv` is returned at the end of its channel_mix
section, the output of an `op` at the end of its body (E0211).

- a `return` in a featurizer or token_mix section is an error;
- a `return` must be in tail position: the last statement of the body, or of an `if` branch whose
  `if` is itself in tail position. Statements after a `return` never run; an `if` that returns in a
  branch and is followed by more statements would be overwritten by the later `return`.
Non-goals: whether every path returns (E0308, resolve.py).
"""

from __future__ import annotations

from livc.dsl import ast as A
from livc.dsl.diagnostics import Diagnostic, Label, error


def check_returns(definition: A.Def) -> list[Diagnostic]:
    if definition.kind is A.DefKind.OP:
        return _tail(definition.body, tail=True)
    out: list[Diagnostic] = []
    for stmt in definition.body:
        if not isinstance(stmt, A.Section):
            continue
        if stmt.kind is A.SectionKind.CHANNEL_MIX:
            out += _tail(stmt.body, tail=True)
        else:
            out += [_in_section(ret, stmt) for ret in _all_returns(stmt.body)]
    return out


def _all_returns(body: tuple[A.Stmt, ...]) -> list[A.Return]:
    found: list[A.Return] = []
    for stmt in body:
        if isinstance(stmt, A.Return):
            found.append(stmt)
        elif isinstance(stmt, A.If):
            found += _all_returns(stmt.body) + _all_returns(stmt.orelse)
    return found


def _in_section(ret: A.Return, section: A.Section) -> Diagnostic:
    return error(
        "E0211",
        f"`return` in a {section.kind.value} section",
        ret.span,
        "not allowed here",
        help="a LIV returns its output at the end of its channel_mix section",
    )


def _tail(body: tuple[A.Stmt, ...], tail: bool) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    stmts = [s for s in body if not isinstance(s, (A.Comment, A.Blank))]
    for i, stmt in enumerate(stmts):
        last = i == len(stmts) - 1
        if isinstance(stmt, A.Return) and not last:
            out.append(_unreachable(stmt, stmts[i + 1]))
        elif isinstance(stmt, A.Return) and not tail:
            out.append(_early(stmt))
        elif isinstance(stmt, A.If):
            out += _tail(stmt.body, tail and last) + _tail(stmt.orelse, tail and last)
    return out


def _unreachable(ret: A.Return, after: A.Stmt) -> Diagnostic:
    return error(
        "E0211",
        "statement after `return`",
        after.span,
        "never runs",
        secondary=(Label(ret.span, "the output is returned here"),),
        help="`return` must be the last statement; move it to the end or remove what follows",
    )


def _early(ret: A.Return) -> Diagnostic:
    return error(
        "E0211",
        "`return` before the end of the body",
        ret.span,
        "statements follow the enclosing `if`",
        help="return in every branch of a final `if`/`else`, or once at the end",
    )
