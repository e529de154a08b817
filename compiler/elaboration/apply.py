"""Calls: scalar functions, `fn`s, `liv`/`op` instantiation, primitives and builtin builders."""

from __future__ import annotations

from livc.compiler.elaboration.bodies import run_body
from livc.compiler.elaboration.calls import NOFIT, coerce_for_type, specs_for_signature
from livc.compiler.elaboration.evaluate import MAX_CALL_DEPTH, Env, Evaluator, scalar_function
from livc.compiler.elaboration.values import (
    POISON,
    BuilderV,
    BuiltinRef,
    DefRef,
    Instance,
    TensorV,
    TupleV,
    Value,
    article,
    type_name,
)
from livc.compiler.ir import primitives as prim
from livc.compiler.resolution.scope import BUILTIN_NAMES
from livc.dsl import ast as A


def call(ev: Evaluator, expr: A.Call, env: Env) -> Value:
    callee = ev.callee(expr.func, env)
    args = [(arg, ev.eval(arg.value, env)) for arg in expr.args]
    match callee:
        case _ if callee is POISON:
            return POISON
        case BuiltinRef():
            return _builtin(ev, callee.name, expr, args, env)
        case DefRef(node=A.FnDef()):
            return _fn(ev, callee, expr, args)
        case DefRef(node=A.Def(kind=A.DefKind.MODEL) | A.ModelInst()):
            return ev.fail(
                "E0202",
                f"model '{callee.name}' cannot be called",
                expr.func.span,
                "models are built, not called",
                help=f"to build it with other parameters, declare `model Mine = {callee.name}(...)` at the top level",
            )
        case DefRef():
            return _instantiate(ev, callee, expr, args, env)
    return ev.fail(
        "E0202",
        f"{article(type_name(callee))} is not callable",
        expr.func.span,
        "not a function or definition",
        help=_shadow_hint(expr.func),
    )


def _shadow_hint(func: A.Expr) -> str | None:
    if isinstance(func, A.Name) and func.ident.name in BUILTIN_NAMES:
        name = func.ident.name
        return f"a local '{name}' shadows the builtin '{name}'; rename the parameter or local"
    return None


def _enter(ev: Evaluator, marker: str, expr: A.Call) -> bool:
    if marker in ev.stack or len(ev.stack) >= MAX_CALL_DEPTH:
        name = marker.rsplit(":", 1)[-1]
        ev.fail("E0307", "recursive definition", expr.span, f"'{name}' calls itself (directly or indirectly)")
        return False
    ev.stack.append(marker)
    return True


def _fn(ev: Evaluator, ref: DefRef, expr: A.Call, args: list[tuple[A.Arg, Value]]) -> Value:
    node = ref.node
    assert isinstance(node, A.FnDef)
    bound = ev.binder.bind(ref.name, ev.param_specs(ref, ref.module), args, expr.span)
    if bound is None or not _enter(ev, f"{ref.module}:{ref.name}", expr):
        return POISON
    result = ev.eval(node.body, Env(ref.module, dict(bound)))
    ev.stack.pop()
    if result is POISON:
        return POISON
    converted = coerce_for_type(node.result)(result)
    if converted is NOFIT:
        return ev.fail(
            "E0301",
            f"'{ref.name}' returns a {type_name(result)}",
            expr.span,
            f"declared to return {node.result.name.name}",
        )
    return converted


def _instantiate(ev: Evaluator, ref: DefRef, expr: A.Call, args: list[tuple[A.Arg, Value]], env: Env) -> Value:
    if env.in_body:
        return ev.fail(
            "E0202",
            f"'{ref.name}' cannot be called inside a liv or op body",
            expr.func.span,
            "definitions are composed in a model's layers",
        )
    bound = ev.binder.bind(ref.name, ev.param_specs(ref, ref.module), args, expr.span)
    if bound is None:
        return POISON
    key = (ref, tuple(bound.items()))
    if key in ev.instances:
        return Instance(ref, key[1], span=expr.span)
    instance = Instance(ref, key[1], span=expr.span)
    ev.instances[key] = instance
    if not _enter(ev, f"{ref.module}:{ref.name}", expr):
        return POISON
    body_env = Env(ref.module, {**bound, "x": TensorV("x"), "tokens": TensorV("tokens")}, True, expr.span)
    assert isinstance(ref.node, A.Def)
    run_body(ev, ref.node.body, body_env)
    ev.stack.pop()
    return instance


def _builtin(ev: Evaluator, name: str, expr: A.Call, args: list[tuple[A.Arg, Value]], env: Env) -> Value:
    if name in prim.SCALAR_FUNCTIONS:
        if any(a.name is not None for a, _ in args):
            return ev.fail("E0203", f"'{name}' takes no keyword arguments", expr.span, "positional only")
        values = [v for _, v in args]
        if POISON in values:
            return POISON
        result = scalar_function(name, values)
        if isinstance(result, str):
            return ev.fail("E0301", result, expr.span, "invalid arguments")
        return ev.ops.checked(result, expr.span)  # int(1e300) is too large, like 10 ** 300
    if name in prim.BUILDERS:
        sig = prim.BUILDERS[name]
        bound = ev.binder.bind(name, specs_for_signature(sig), args, expr.span)
        return POISON if bound is None else BuilderV(name, tuple(bound.items()), span=expr.span)
    return _primitive(ev, prim.PRIMITIVES[name], expr, args, env)


def _primitive(ev: Evaluator, sig: prim.Signature, expr: A.Call, args: list[tuple[A.Arg, Value]], env: Env) -> Value:
    if not env.in_body:
        return ev.fail(
            "E0202",
            f"primitive '{sig.name}' can only be used inside a liv or op body",
            expr.func.span,
            "tensor operation outside a body",
        )
    bound = ev.binder.bind(sig.name, specs_for_signature(sig), args, expr.span)
    if bound is None:
        return POISON
    if sig.name == "split":
        parts = bound["parts"]
        assert isinstance(parts, int)
        if not 1 <= parts <= 64:
            return ev.fail("E0304", f"cannot split into {parts} parts", expr.span, "parts must be 1..64")
        return TupleV(tuple(TensorV(f"split{i}") for i in range(parts)))
    return TensorV(sig.name)
