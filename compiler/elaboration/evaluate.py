"""Evaluate .liv expressions to values (the scalar and structural part of elaboration).

Inside `liv`/`op` bodies, tensors are abstract (`TensorV`); their shapes are the compiler's type
checker's job. Everything else — dimension arithmetic, definitions applied to arguments, filters,
wrappers, layer lists — is computed here, with errors reported once and poisoned afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from livc.compiler.elaboration.calls import NOFIT, Binder, ParamSpec, coerce_for_type, type_text
from livc.compiler.elaboration.operators import Operators, is_number
from livc.compiler.elaboration.values import (
    POISON,
    BuilderV,
    BuiltinRef,
    DefRef,
    DType,
    Instance,
    ListV,
    NamespaceV,
    Sublayer,
    Symbol,
    TensorV,
    TupleV,
    Value,
    type_name,
)
from livc.compiler.ir import primitives as prim
from livc.compiler.resolution.loader import Program
from livc.compiler.resolution.scope import LocalDef, ModuleAlias, Table, lookup
from livc.dsl import ast as A
from livc.dsl.diagnostics import DiagnosticSink, error
from livc.dsl.source import Span

MAX_CALL_DEPTH = 64


@dataclass
class Env:
    """Evaluation context: the module for global lookups, local bindings, and whether tensors are allowed."""

    module: str
    locals: dict[str, Value] = field(default_factory=dict)
    in_body: bool = False
    call_span: Span | None = None  # where the definition being elaborated was instantiated
    result: Value = None

    def child(self, module: str, in_body: bool, call_span: Span | None) -> Env:
        return Env(module, {}, in_body, call_span)


class Evaluator:
    def __init__(self, program: Program, tables: dict[str, Table], sink: DiagnosticSink) -> None:
        self.program = program
        self.tables = tables
        self.sink = sink
        self.ops = Operators(sink)
        self.binder = Binder(sink)
        self.globals: dict[tuple[str, str], Value] = {}
        self.instances: dict[tuple[DefRef, tuple[tuple[str, Value], ...]], Instance] = {}
        self.stack: list[str] = []

    def fail(self, code: str, message: str, span: Span, label: str = "", help: str | None = None) -> Value:
        self.sink.report(error(code, message, span, label, help=help))
        return POISON

    # ---- names ----------------------------------------------------------------------------
    def global_value(self, module: str, symbol: LocalDef | ModuleAlias, span: Span) -> Value:
        if isinstance(symbol, ModuleAlias):
            return NamespaceV(symbol.module)
        node = symbol.node
        if not isinstance(node, A.Let):
            return DefRef(symbol.module, node, node.name.name)
        key = (symbol.module, node.name.name)
        if key not in self.globals:
            self.globals[key] = self._evaluate_global(symbol.module, node)
        return self.globals[key]

    def _evaluate_global(self, module: str, node: A.Let) -> Value:
        marker = f"let {module}:{node.name.name}"
        if marker in self.stack:
            return self.fail("E0307", f"'{node.name.name}' is defined in terms of itself", node.name.span, "cycle")
        self.stack.append(marker)
        value = self.eval(node.value, Env(module))
        self.stack.pop()
        return self.check_annotation(node, value)

    def check_annotation(self, node: A.Let, value: Value) -> Value:
        if node.type is None or value is POISON:
            return value
        converted = coerce_for_type(node.type)(value)
        if converted is NOFIT:
            return self.fail(
                "E0301",
                f"'{node.name.name}' is declared {type_text(node.type)}",
                node.value.span,
                f"got {type_name(value)}",
            )
        return converted

    def name(self, ident: A.Ident, env: Env) -> Value:
        if ident.name in env.locals:
            return env.locals[ident.name]
        symbol = lookup(self.tables, env.module, ident.name)
        if symbol is not None:
            return self.global_value(env.module, symbol, ident.span)
        return builtin_value(ident.name)

    # ---- expressions ----------------------------------------------------------------------
    def callee(self, func: A.Expr, env: Env) -> Value:
        """The value of a call's callee: a symbol that is also a primitive (`elu_plus_one`) calls the primitive."""
        value = self.eval(func, env)
        return BuiltinRef(value.name) if isinstance(value, Symbol) and value.name in prim.PRIMITIVES else value

    def eval(self, expr: A.Expr, env: Env) -> Value:
        match expr:
            case A.Number():
                return self.ops.checked(expr.value, expr.span)  # the 256-bit cap holds for literals too
            case A.String() | A.Bool():
                return expr.value
            case A.NoneLit():
                return None
            case A.Name():
                return self.name(expr.ident, env)
            case A.BinOp(op=A.BinOpKind.AND | A.BinOpKind.OR):
                return self._logical(expr, env)
            case A.BinOp():
                return self._arithmetic(expr, env)
            case A.UnaryOp(op=A.UnaryOpKind.NEG):
                return self.ops.negate(self.eval(expr.operand, env), expr.span)
            case A.UnaryOp():
                return self.ops.logical_not(self.eval(expr.operand, env), expr.span)
            case A.IfExpr():
                return self._if_expr(expr, env)
            case A.Call():
                from livc.compiler.elaboration.apply import call

                return call(self, expr, env)
            case A.Attribute():
                return self._attribute(expr, env)
            case A.Index():
                return self._index(expr, env)
            case A.ListExpr():
                return ListV(tuple(self.eval(e, env) for e in expr.elements))
            case A.With():
                return self._with(expr, env)
        raise AssertionError(f"unhandled expression {type(expr).__name__}")

    def condition(self, expr: A.Expr, env: Env) -> bool | None:
        """Evaluate a condition; None (after reporting, unless poisoned) if it is not a bool."""
        value = self.eval(expr, env)
        if isinstance(value, bool):
            return value
        if value is not POISON:
            self.fail("E0301", f"a condition must be a bool, got {type_name(value)}", expr.span, "not a bool")
        return None

    def _arithmetic(self, expr: A.BinOp, env: Env) -> Value:
        """A left-leaning chain `a + b - c ...` folded left to right without recursing per term."""
        spine = _left_spine(expr, lambda node: node.op not in _LOGICAL)
        value = self.eval(spine[-1].left, env)
        for node in reversed(spine):
            value = self.ops.binary(node.op, value, self.eval(node.right, env), node.span)
        return value

    def _logical(self, expr: A.BinOp, env: Env) -> Value:
        """`a and b and ...` (or `or`), short-circuiting, without recursing per term."""
        spine = _left_spine(expr, lambda node: node.op is expr.op)
        value = self.condition(spine[-1].left, env)
        for node in reversed(spine):
            if value is None or value is (expr.op is A.BinOpKind.OR):
                break
            value = self.condition(node.right, env)
        return POISON if value is None else value

    def _if_expr(self, expr: A.IfExpr, env: Env) -> Value:
        cond = self.condition(expr.cond, env)
        if cond is None:
            return POISON
        return self.eval(expr.then if cond else expr.orelse, env)

    def _attribute(self, expr: A.Attribute, env: Env) -> Value:
        base = self.eval(expr.value, env)
        if base is POISON:
            return POISON
        if not isinstance(base, NamespaceV):
            return self.fail(
                "E0301", f"a {type_name(base)} has no attribute '{expr.attr.name}'", expr.attr.span, "unknown attribute"
            )
        symbol = lookup(self.tables, base.module, expr.attr.name)
        if not isinstance(symbol, LocalDef):
            return self.fail(
                "E0209",
                f"'{expr.attr.name}' is not defined in '{base.module}'",
                expr.attr.span,
                "not found in that module",
            )
        return self.global_value(base.module, symbol, expr.attr.span)

    def _index(self, expr: A.Index, env: Env) -> Value:
        base, index = self.eval(expr.value, env), self.eval(expr.index, env)
        if base is POISON or index is POISON:
            return POISON
        if not isinstance(base, ListV) or not isinstance(index, int) or isinstance(index, bool) or expr.stop:
            return self.fail(
                "E0301",
                f"cannot index a {type_name(base)} with a {type_name(index)}",
                expr.span,
                "lists are indexed by an int",
            )
        if not -len(base.items) <= index < len(base.items):
            return self.fail(
                "E0304", f"index {index} out of range", expr.index.span, f"the list has {len(base.items)} element(s)"
            )
        return base.items[index]

    def _with(self, expr: A.With, env: Env) -> Value:
        value, wrapper = self.eval(expr.value, env), self.eval(expr.wrapper, env)
        if value is POISON or wrapper is POISON:
            return POISON
        if not isinstance(value, Instance):
            return self.fail(
                "E0301",
                f"only a liv or op instance can be wrapped, not a {type_name(value)}",
                expr.value.span,
                "not an instance",
            )
        if not isinstance(wrapper, BuilderV) or wrapper.name not in ("pre_norm", "post_norm", "no_residual"):
            return self.fail(
                "E0301",
                "`with` takes pre_norm(norm), post_norm(norm) or no_residual()",
                expr.wrapper.span,
                "not a wrapper",
            )
        return Sublayer(value, wrapper)

    # ---- definitions ----------------------------------------------------------------------
    def param_specs(self, ref: DefRef, env_module: str) -> list[ParamSpec]:
        node = ref.node
        return [self._param_spec(ref.module, p) for p in node.params]

    def _param_spec(self, module: str, param: A.Param) -> ParamSpec:
        default_expr = param.default

        def default(bound: dict[str, Value]) -> Value:
            assert default_expr is not None
            return self.eval(default_expr, Env(module, dict(bound)))

        return ParamSpec(
            param.name.name,
            type_text(param.type),
            coerce_for_type(param.type),
            default if default_expr is not None else None,
            param.span,
        )


_LOGICAL = (A.BinOpKind.AND, A.BinOpKind.OR)


def _left_spine(expr: A.BinOp, same: Callable[[A.BinOp], bool]) -> list[A.BinOp]:
    """`expr` and its left operands while they are BinOps that `same` accepts (outermost first)."""
    spine = [expr]
    while isinstance(spine[-1].left, A.BinOp) and same(spine[-1].left):
        spine.append(spine[-1].left)
    return spine


def builtin_value(name: str) -> Value:
    if name in prim.DTYPES:
        return DType(name)
    if name in prim.SYMBOLS:
        return Symbol(name)
    if name in prim.PRIMITIVES or name in prim.BUILDERS or name in prim.SCALAR_FUNCTIONS:
        return BuiltinRef(name)
    return POISON  # undefined: already reported by the resolver


def scalar_function(name: str, values: list[Value]) -> Value | str:
    """Apply a builtin scalar function; returns an error message string when the arguments do not fit."""
    nums = [v for v in values if is_number(v)]
    if name in ("min", "max"):
        if not values or len(nums) != len(values):
            return f"{name} takes one or more numbers"
        return min(nums) if name == "min" else max(nums)  # type: ignore[type-var]
    if name == "len":
        return len(values[0].items) if len(values) == 1 and isinstance(values[0], ListV) else "len takes a list"
    if len(nums) != len(values):
        return f"{name} takes numbers"
    return _numeric_function(name, nums)


def _numeric_function(name: str, nums: list[int | float]) -> Value | str:
    unary = {"abs": abs, "ceil": math.ceil, "floor": math.floor, "int": int, "float": float}
    if name in unary:
        if len(nums) != 1:
            return f"{name} takes one number"
        try:
            return unary[name](nums[0])  # type: ignore[operator]
        except (OverflowError, ValueError):
            return f"{name} of a non-finite number"
    if len(nums) != 2 or not all(isinstance(n, int) for n in nums):
        return f"{name} takes two ints"
    a, b = nums
    if b <= 0:
        return f"{name} needs a positive second argument"
    return -(-a // b) * b if name == "round_up" else -(-a // b)  # type: ignore[operator]


__all__ = ["Env", "Evaluator", "TupleV", "TensorV"]
