"""Walk `liv` / `op` / `model` bodies at instantiation: bind locals, check `require`, pick `if` branches."""

from __future__ import annotations

from typing import TYPE_CHECKING

from livc.compiler.elaboration.values import POISON, TupleV, Value
from livc.dsl import ast as A
from livc.dsl.diagnostics import Label, error
from livc.dsl.source import Span

if TYPE_CHECKING:
    from livc.compiler.elaboration.evaluate import Env, Evaluator


def run_body(ev: Evaluator, body: tuple[A.Stmt, ...], env: Env) -> None:
    for stmt in body:
        run_stmt(ev, stmt, env)


def run_stmt(ev: Evaluator, stmt: A.Stmt, env: Env) -> None:
    match stmt:
        case A.Let():
            env.locals[stmt.name.name] = ev.check_annotation(stmt, ev.eval(stmt.value, env))
        case A.Require():
            check_require(ev, stmt, env)
        case A.Assign():
            _assign(ev, stmt, env)
        case A.If():
            cond = ev.condition(stmt.cond, env)
            if cond is not None:
                run_body(ev, stmt.body if cond else stmt.orelse, env)
        case A.Section():
            run_body(ev, stmt.body, env)
        case A.Return():
            env.result = ev.eval(stmt.value, env)


def _assign(ev: Evaluator, stmt: A.Assign, env: Env) -> None:
    value = ev.eval(stmt.value, env)
    names = [t.name for t in stmt.targets]
    if len(names) == 1 and not isinstance(value, TupleV):
        env.locals[names[0]] = value
        return
    items: tuple[Value, ...] = value.items if isinstance(value, TupleV) else ()
    if value is not POISON and len(items) != len(names):
        got = f"{len(items)} value(s)" if isinstance(value, TupleV) else "one value"
        ev.fail(
            "E0304",
            f"cannot unpack {got} into {len(names)} name(s)",
            stmt.span,
            "count mismatch",
            help="split(t, n) makes n feature groups",
        )
    for i, name in enumerate(names):
        env.locals[name] = items[i] if i < len(items) else POISON


def _describe_values(cond: A.Expr, env: Env) -> str:
    from livc.compiler.resolution.resolve import names_in

    shown: dict[str, str] = {}
    for name in names_in(cond):
        value = env.locals.get(name.ident.name, POISON)
        if isinstance(value, (bool, int, float)) and name.ident.name not in shown:
            shown[name.ident.name] = str(value).lower() if isinstance(value, bool) else str(value)
    return ", ".join(f"{k} = {v}" for k, v in shown.items())


def check_require(ev: Evaluator, stmt: A.Require, env: Env) -> None:
    holds = ev.condition(stmt.cond, env)
    if holds is None or holds:
        return
    message = stmt.message.value if stmt.message is not None else f"requirement '{stmt.cond.span.text}' failed"
    values = _describe_values(stmt.cond, env)
    ev.sink.report(_require_error(message, stmt.cond.span, env.call_span, values))


def _require_error(message: str, cond_span: Span, call_span: Span | None, values: str):  # noqa: ANN202
    if call_span is None:
        return error("E0302", message, cond_span, values or "does not hold")
    return error(
        "E0302", message, call_span, "in this instantiation", secondary=(Label(cond_span, values or "required here"),)
    )
