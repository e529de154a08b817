"""Lower one `liv`/`op` instance to an IR `Block`: tensors become typed SSA values, primitive calls
become `Op`s with parameters, scalars are evaluated by the elaborator. Shape errors are E0312.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from livc.compiler.elaboration.calls import specs_for_signature
from livc.compiler.elaboration.evaluate import Env, Evaluator
from livc.compiler.elaboration.values import POISON, BuilderV, BuiltinRef, Instance, Symbol, TensorV
from livc.compiler.elaboration.values import DType as DTypeV
from livc.compiler.ir import primitives as prim
from livc.compiler.ir.nodes import Block, BlockKind, Op, Role, Section, TensorType, Value
from livc.compiler.passes.shapes import RULES, ShapeError
from livc.compiler.passes.structure import section_for
from livc.dsl import ast as A
from livc.dsl.diagnostics import Label, error
from livc.dsl.source import Span

_BINARY = {A.BinOpKind.ADD: "add", A.BinOpKind.SUB: "sub", A.BinOpKind.MUL: "mul", A.BinOpKind.DIV: "div"}


class BuildFailed(Exception):
    """Raised after reporting: this block cannot be built (its errors are already in the sink)."""


@dataclass(frozen=True)
class TRef:
    """A tensor value during building: its SSA name and type."""

    KIND_NAME = "tensor"  # how diagnostics name it

    name: str
    type: TensorType


@dataclass
class BlockBuilder:
    ev: Evaluator
    instance: Instance
    prefix: str  # parameter id prefix, e.g. "layers.3.0"
    input_type: TensorType
    params: dict[str, tuple[int, ...]]  # collected parameter shapes by id
    tied_embedding: str | None = None
    ops: list[Op] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    features: dict[str, TRef] = field(default_factory=dict)
    _names: set[str] = field(default_factory=lambda: {"x", "tokens"})  # SSA values; the inputs are taken
    _param_names: set[str] = field(default_factory=lambda: {"norm"})  # `<sublayer>.norm.*` is its wrapper norm
    _user: frozenset[str] = frozenset()  # every name the body assigns: renamings avoid them
    _own: str | None = None  # the single target of the assignment being built
    _last: dict[tuple[str, str], int] = field(default_factory=dict)  # last suffix per (value|param, base)
    result: TRef | None = None

    # ---- naming ---------------------------------------------------------------------------
    @property
    def input_name(self) -> str:
        """The block input: `tokens` at the embedding (scalar ids, whatever the op is called), else `x`."""
        return "tokens" if self.input_type.shape == () else "x"

    def fresh(self, base: str) -> str:
        return self._claim(base, self._names, "value")

    def param_base(self, base: str) -> str:
        return self._claim(base, self._param_names, "param")

    def _claim(self, base: str, taken: set[str], kind: str) -> str:
        """`base` if free (a name the body assigns only for its own assignment), else the first `base_n` that
        is neither taken nor assigned anywhere in the body: a renamed rebinding never collides with a user's
        `w_1`, and a user's parameter keeps the id it was written with."""
        name, n = base, self._last.get((kind, base), 0)
        while name in taken or (name in self._user and name != self._own):
            n += 1
            name = f"{base}_{n}"
        self._last[(kind, base)] = n  # suffixes below n stay taken: a chain of k values costs O(k), not O(k^2)
        taken.add(name)
        return name

    # ---- diagnostics ----------------------------------------------------------------------
    def fail(self, message: str, span: Span, label: str) -> BuildFailed:
        secondary = (Label(self.instance.span, f"in {self.instance.name}(...) instantiated here"),)
        self.ev.sink.report(
            error(
                "E0312", message, span, label, secondary=secondary, notes=(f"arguments: {_show_args(self.instance)}",)
            )
        )
        return BuildFailed()

    # ---- statements -----------------------------------------------------------------------
    def build(self) -> Block:
        node = self.instance.definition.node
        assert isinstance(node, A.Def)
        env = Env(self.instance.definition.module, dict(self.instance.args), True, self.instance.span)
        env.locals["x"] = TRef(self.input_name, self.input_type)  # type: ignore[assignment]
        env.locals["tokens"] = TRef("tokens", TensorType(shape=()))  # type: ignore[assignment]
        self._user = frozenset(_assigned(node.body))
        body_ops_start = 0
        for stmt in node.body:
            if isinstance(stmt, A.Section):
                self._flush_body(body_ops_start)
                self._section(stmt, env)
                body_ops_start = len(self.ops)
            else:
                self.stmt(stmt, env, "out")
        self._flush_body(body_ops_start)
        return self._block(node)

    def _flush_body(self, start: int) -> None:
        if len(self.ops) > start:
            self.sections.append(Section(role=Role.BODY, structure=None, ops=tuple(self.ops[start:])))

    def _section(self, section: A.Section, env: Env) -> None:
        start = len(self.ops)
        before = {k: v for k, v in env.locals.items() if isinstance(v, TRef)}
        for stmt in section.body:
            self.stmt(stmt, env, "out")
        ops = tuple(self.ops[start:])
        if section.kind is A.SectionKind.FEATURIZER:
            self.features = {k: v for k, v in env.locals.items() if isinstance(v, TRef) and before.get(k) != v}
        self.sections.append(section_for(self, section, ops))
        del self.ops[start:]
        self.ops.extend(ops)

    def stmt(self, stmt: A.Stmt, env: Env, base: str) -> None:
        from livc.compiler.elaboration.bodies import check_require

        match stmt:
            case A.Let():
                env.locals[stmt.name.name] = self.ev.check_annotation(stmt, self.ev.eval(stmt.value, env))
            case A.Require():
                check_require(self.ev, stmt, env)
            case A.Assign():
                self._assign(stmt, env)
            case A.If():
                cond = self.ev.condition(stmt.cond, env)
                if cond is None:
                    raise BuildFailed()
                for inner in stmt.body if cond else stmt.orelse:
                    self.stmt(inner, env, base)
            case A.Return():
                value = self.expr(stmt.value, env, "out")
                if not isinstance(value, TRef):
                    raise self.fail("a liv or op must return a tensor", stmt.value.span, "not a tensor")
                self.result = value

    def _assign(self, stmt: A.Assign, env: Env) -> None:
        names = [t.name for t in stmt.targets]
        self._own = names[0] if len(names) == 1 else None
        value = self.expr(stmt.value, env, names[0] if len(names) == 1 else "_".join(names))
        self._own = None
        if len(names) == 1:
            env.locals[names[0]] = value  # type: ignore[assignment]
            return
        if not isinstance(value, tuple) or len(value) != len(names):
            raise self.fail(f"cannot unpack into {len(names)} names", stmt.span, "count mismatch")
        for name, ref in zip(names, value):
            env.locals[name] = ref  # type: ignore[assignment]

    # ---- expressions ----------------------------------------------------------------------
    def tensorish(self, expr: A.Expr, env: Env) -> bool:
        from livc.compiler.resolution.resolve import names_in

        if isinstance(expr, A.Call) and isinstance(self.ev.callee(expr.func, env), BuiltinRef):
            return self.ev.callee(expr.func, env).name in prim.PRIMITIVES  # type: ignore[union-attr]
        return any(isinstance(env.locals.get(n.ident.name), TRef) for n in names_in(expr))

    def expr(self, expr: A.Expr, env: Env, base: str) -> object:
        if not self.tensorish(expr, env):
            value = self.ev.eval(expr, env)
            if value is POISON:
                raise BuildFailed()
            return value
        match expr:
            case A.Name():
                return env.locals[expr.ident.name]
            case A.BinOp() if expr.op in _BINARY:
                return self._binary(expr, env, base)
            case A.UnaryOp(op=A.UnaryOpKind.NEG):
                return self.emit("neg", {"t": self.expr(expr.operand, env, base)}, expr.span, base)[0]
            case A.IfExpr():
                cond = self.ev.condition(expr.cond, env)
                if cond is None:
                    raise BuildFailed()
                return self.expr(expr.then if cond else expr.orelse, env, base)
            case A.Call():
                return self._call(expr, env, base)
        raise self.fail("this expression cannot take tensors", expr.span, "not a tensor operation")

    def _binary(self, expr: A.BinOp, env: Env, base: str) -> object:
        """A left-leaning chain `a + b * c - ...` folded left to right (no recursion per term)."""
        spine = [expr]
        while isinstance(spine[-1].left, A.BinOp) and spine[-1].left.op in _BINARY:
            spine.append(spine[-1].left)
        left = self.expr(spine[-1].left, env, base)
        for node in reversed(spine):
            left = self._combine(node, left, self.expr(node.right, env, base), base)
        return left

    def _combine(self, expr: A.BinOp, left: object, right: object, base: str) -> object:
        if not isinstance(left, TRef) and not isinstance(right, TRef):  # a scalar part of the chain
            value = self.ev.ops.binary(expr.op, left, right, expr.span)  # type: ignore[arg-type]
            if value is POISON:
                raise BuildFailed()
            return value
        for side, value in (("left", left), ("right", right)):
            if not isinstance(value, (TRef, int, float)) or isinstance(value, bool):
                raise self.fail(f"cannot combine a tensor with this {side} operand", expr.span, "not a tensor")
        return self.emit(_BINARY[expr.op], {"left": left, "right": right}, expr.span, base)[0]

    def _call(self, expr: A.Call, env: Env, base: str) -> object:
        name = self.ev.callee(expr.func, env).name  # type: ignore[union-attr]
        sig = prim.PRIMITIVES[name]
        values = [(arg, self.expr(arg.value, env, base)) for arg in expr.args]
        bound = self._bind(sig, values, expr.span)
        outs = self.emit(name, bound, expr.span, base)
        return tuple(outs) if name == "split" else outs[0]

    def _bind(self, sig: prim.Signature, values: list[tuple[A.Arg, object]], span: Span) -> dict[str, object]:
        refs = {v.name: v for _, v in values if isinstance(v, TRef)}
        wrapped = [(arg, TensorV(v.name) if isinstance(v, TRef) else v) for arg, v in values]
        bound = self.ev.binder.bind(sig.name, specs_for_signature(sig), wrapped, span)  # type: ignore[arg-type]
        if bound is None:
            raise BuildFailed()
        return {k: refs[v.name] if isinstance(v, TensorV) else _unwrap(v) for k, v in bound.items()}

    # ---- ops ------------------------------------------------------------------------------
    def emit(self, prim_name: str, args: dict[str, object], span: Span, base: str) -> list[TRef]:
        typed_args = {k: (v.type if isinstance(v, TRef) else v) for k, v in args.items()}
        try:
            typed = RULES[prim_name](typed_args)
        except ShapeError as exc:
            raise self.fail(f"shape error in {prim_name}", span, str(exc)) from None
        outs = [TRef(self.fresh(base), TensorType(shape=s)) for s in typed.outputs]
        pbase = self.param_base(base) if typed.params or (prim_name == "lm_head" and args.get("tied")) else base
        params = tuple((role, self._param(pbase, role, shape)) for role, shape in typed.params)
        if prim_name == "lm_head" and args.get("tied"):
            params = (("weight", self._tied(args, span)),)
        inputs = tuple(v.name for v in args.values() if isinstance(v, TRef))
        attrs = tuple((k, _attr(v)) for k, v in args.items() if not isinstance(v, TRef))
        self.ops.append(
            Op(
                prim=prim_name,
                inputs=inputs,
                outputs=tuple(Value(name=o.name, type=o.type) for o in outs),
                params=params,
                attrs=attrs,
                span=span,
            )
        )
        return outs

    def _param(self, base: str, role: str, shape: tuple[int, ...]) -> str:
        pid = f"{self.prefix}.{base}.{role}"
        self.params[pid] = shape
        return pid

    def _tied(self, args: dict[str, object], span: Span) -> str:
        if self.tied_embedding is None:
            raise self.fail("a tied head needs an embedding table", span, "no embedding to tie to")
        return self.tied_embedding

    def _block(self, node: A.Def) -> Block:
        if self.result is None:
            raise self.fail(f"'{node.name.name}' produced no output", node.span, "no return reached")
        kind = BlockKind.LIV if node.kind is A.DefKind.LIV else BlockKind.OP
        return Block(
            kind=kind,
            name=node.name.name,
            args=tuple((k, _attr(v)) for k, v in self.instance.args),
            input=Value(name=self.input_name, type=self.input_type),
            sections=tuple(self.sections),
            output=self.result.name,
            features=tuple(Value(name=f"{g}={r.name}", type=r.type) for g, r in self.features.items()),
            span=self.instance.span,
        )


def _assigned(body: tuple[A.Stmt, ...]) -> set[str]:
    """Every name an assignment in `body` binds, in sections and both branches of every `if`."""
    names: set[str] = set()
    for stmt in body:
        match stmt:
            case A.Assign():
                names.update(t.name for t in stmt.targets)
            case A.If():
                names |= _assigned(stmt.body) | _assigned(stmt.orelse)
            case A.Section():
                names |= _assigned(stmt.body)
    return names


def _attr(value: object) -> int | float | bool | str | None:
    match value:
        case Symbol() | DTypeV():
            return value.name
        case BuilderV():
            inner = ", ".join(f"{k} = {_attr(v)}" for k, v in value.args)
            return f"{value.name}({inner})"
        case dict():
            return _attr(BuilderV(str(value["kind"]), tuple((k, v) for k, v in value.items() if k != "kind")))
        case bool() | int() | float() | str() | None:
            return value
    return str(value)


def _unwrap(v: object) -> object:
    if isinstance(v, BuilderV):
        return {"kind": v.name, **dict(v.args)}
    if isinstance(v, Symbol):
        return v.name
    return v


def _show_args(instance: Instance) -> str:
    return ", ".join(f"{k} = {_liv_text(_attr(v))}" for k, v in instance.args)


def _liv_text(value: object) -> str:
    """A scalar as .liv spells it (`none`, `true`), for diagnostics."""
    match value:
        case None:
            return "none"
        case bool():
            return "true" if value else "false"
        case str() if not value.isidentifier() and "(" not in value:
            return f'"{value}"'
    return str(value)
