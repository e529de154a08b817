"""Binary and unary operators on evaluated values (scalars, tensors, layers, layer lists)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

from livc.compiler.elaboration.values import POISON, Instance, LayerV, ListV, Sublayer, TensorV, Value, type_name
from livc.dsl.ast import BinOpKind as Op
from livc.dsl.diagnostics import DiagnosticSink, error
from livc.dsl.source import Span

MAX_LIST_ITEMS = 100_000
MAX_INT_BITS = 256

_ARITH: dict[Op, Callable[[float, float], float]] = {
    Op.ADD: operator.add,
    Op.SUB: operator.sub,
    Op.MUL: operator.mul,
    Op.FLOORDIV: operator.floordiv,
    Op.MOD: operator.mod,
    Op.POW: operator.pow,
}
_COMPARE: dict[Op, Callable[[float, float], bool]] = {
    Op.LT: operator.lt,
    Op.LE: operator.le,
    Op.GT: operator.gt,
    Op.GE: operator.ge,
    Op.EQ: operator.eq,
    Op.NE: operator.ne,
}


def is_number(value: Value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _layer_part(value: Value) -> tuple[Sublayer, ...] | None:
    match value:
        case Instance():
            return (Sublayer(value),)
        case Sublayer():
            return (value,)
        case LayerV():
            return value.sublayers
    return None


class Operators:
    def __init__(self, sink: DiagnosticSink) -> None:
        self.sink = sink

    def fail(self, code: str, message: str, span: Span, label: str = "", help: str | None = None) -> Value:
        self.sink.report(error(code, message, span, label, help=help))
        return POISON

    def binary(self, op: Op, left: Value, right: Value, span: Span) -> Value:
        if left is POISON or right is POISON:
            return POISON
        if is_number(left) and is_number(right):
            return self._numeric(op, left, right, span)  # type: ignore[arg-type]
        if op in (Op.EQ, Op.NE):
            return (left == right) is (op is Op.EQ)
        if isinstance(left, TensorV) or isinstance(right, TensorV):
            return self._tensor(op, left, right, span)
        if op is Op.ADD:
            return self._add(left, right, span)
        if op is Op.MUL:
            return self._repeat(left, right, span)
        return self._mismatch(op, left, right, span)

    def _mismatch(self, op: Op, left: Value, right: Value, span: Span) -> Value:
        return self.fail(
            "E0301",
            f"cannot apply '{op.value}' to {type_name(left)} and {type_name(right)}",
            span,
            f"{type_name(left)} {op.value} {type_name(right)}",
            help=_TENSOR_HELP if "tensor" in (type_name(left), type_name(right)) else None,
        )

    def _numeric(self, op: Op, a: float, b: float, span: Span) -> Value:
        if op in _COMPARE:
            return _COMPARE[op](a, b)
        if op in (Op.DIV, Op.FLOORDIV, Op.MOD) and b == 0:
            return self.fail("E0303", "division by zero", span, "the right operand is 0")
        if op is Op.POW:
            return self.checked(self._power(a, b, span), span)
        if op is not Op.DIV and op not in _ARITH:
            return self._mismatch(op, a, b, span)
        try:
            result = a / b if op is Op.DIV else _ARITH[op](a, b)
        except OverflowError:
            return self.fail("E0304", "number out of range", span, "the result overflows a float")
        return self.checked(result, span)

    def checked(self, value: Value, span: Span) -> Value:
        """Every arithmetic result is finite and at most MAX_INT_BITS wide (no inf, no huge ints)."""
        return checked_number(value, span, self.sink)

    def _power(self, a: float, b: float, span: Span) -> Value:
        if isinstance(a, int) and isinstance(b, int) and b >= 0:
            if b * (abs(a).bit_length() - 1) >= MAX_INT_BITS:  # a lower bound of the result's bits - 1
                return self.fail("E0304", "number too large", span, f"the result has more than {MAX_INT_BITS} bits")
            return a**b  # at most 2 * MAX_INT_BITS bits: cheap; `checked` then applies the cap
        try:
            result = float(a) ** float(b)
        except (OverflowError, ZeroDivisionError):
            return self.fail("E0304", "number out of range", span, "overflow or 0 to a negative power")
        if isinstance(result, complex):
            return self.fail("E0304", "negative number to a fractional power", span, "not a real number")
        return result

    def _tensor(self, op: Op, left: Value, right: Value, span: Span) -> Value:
        ok = all(isinstance(v, TensorV) or is_number(v) for v in (left, right))
        if not ok or op not in (Op.ADD, Op.SUB, Op.MUL, Op.DIV):
            return self._mismatch(op, left, right, span)
        return TensorV(f"({op.value})")

    def _add(self, left: Value, right: Value, span: Span) -> Value:
        if isinstance(left, ListV) and isinstance(right, ListV):
            return self._checked_list(left.items + right.items, span)
        parts = (_layer_part(left), _layer_part(right))
        if parts[0] is not None and parts[1] is not None:
            return LayerV(parts[0] + parts[1])
        return self._mismatch(Op.ADD, left, right, span)

    def _repeat(self, left: Value, right: Value, span: Span) -> Value:
        count, items = (left, right) if isinstance(right, ListV) else (right, left)
        if not isinstance(items, ListV) or not isinstance(count, int) or isinstance(count, bool):
            return self._mismatch(Op.MUL, left, right, span)
        if count < 0:
            return self.fail("E0304", "negative repetition count", span, f"{count} repetitions")
        if count * len(items.items) > MAX_LIST_ITEMS:
            return self.fail("E0304", "list too long", span, f"more than {MAX_LIST_ITEMS} elements")
        return ListV(items.items * count)

    def _checked_list(self, items: tuple[Value, ...], span: Span) -> Value:
        if len(items) > MAX_LIST_ITEMS:
            return self.fail("E0304", "list too long", span, f"more than {MAX_LIST_ITEMS} elements")
        return ListV(items)

    def negate(self, value: Value, span: Span) -> Value:
        if value is POISON or isinstance(value, TensorV):
            return value
        if is_number(value):
            return -value  # type: ignore[operator]
        return self.fail("E0301", f"cannot negate a {type_name(value)}", span, "not a number")

    def logical_not(self, value: Value, span: Span) -> Value:
        if value is POISON:
            return POISON
        if isinstance(value, bool):
            return not value
        return self.fail("E0301", f"'not' needs a bool, got {type_name(value)}", span, "not a bool")


def number_problem(value: Value) -> tuple[str, str] | None:
    """(message, label) if a number is too large or not finite, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return "arithmetic produces a non-finite number", f"this is {value} (overflow or an undefined result)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        return "number too large", f"the result has more than {MAX_INT_BITS} bits"
    return None


def checked_number(value: Value, span: Span, sink: DiagnosticSink) -> Value:
    """`value`, or POISON after an E0304 at `span` if it is a non-finite float or a too large int."""
    problem = number_problem(value)
    if problem is None:
        return value
    sink.report(error("E0304", problem[0], span, problem[1], help=_RANGE_HELP))
    return POISON


_TENSOR_HELP = "tensors are combined in assignments (`y = a + b`); a `let` binds scalars, layers and lists"
_RANGE_HELP = f"values are finite floats and ints of at most {MAX_INT_BITS} bits"
