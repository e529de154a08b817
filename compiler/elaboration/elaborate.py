"""Elaborate the root module's models: bind their parameters (defaults, instance arguments, `-D`
overrides; see `parameters`), evaluate lets and fields, build the layer stack, apply `override
layers[...]` statements, and validate sharing, Mixture-of-Recursions and budget declarations."""

from __future__ import annotations

from dataclasses import dataclass, field

from livc.compiler.elaboration.bodies import check_require
from livc.compiler.elaboration.declarations import budget_decls, mor_decl, share_decls
from livc.compiler.elaboration.evaluate import Env, Evaluator
from livc.compiler.elaboration.model import ElaboratedModel
from livc.compiler.elaboration.overrides import Override
from livc.compiler.elaboration.parameters import RootModel, apply_overrides, bind_params, root_model
from livc.compiler.elaboration.values import POISON, DType, Instance, LayerV, ListV, Sublayer, Value, type_name
from livc.dsl import ast as A
from livc.dsl.source import Span


@dataclass
class ModelScratch:
    """What the model body produced, before assembly."""

    fields: dict[str, tuple[Value, A.Field]] = field(default_factory=dict)
    overrides: list[A.Override] = field(default_factory=list)
    shares: list[A.Share] = field(default_factory=list)
    budgets: list[A.BudgetItem] = field(default_factory=list)


def elaborate_root(
    ev: Evaluator, module: str, items: tuple[A.Item, ...], overrides: tuple[Override, ...] = ()
) -> tuple[ElaboratedModel, ...]:
    """Elaborate every model of the root module (definitions and instances) with `overrides` applied."""
    roots = [root_model(ev, module, item) for item in items if _is_model(item)]
    found = [r for r in roots if r is not None]
    chosen = apply_overrides(ev, module, found, overrides)
    models = [elaborate_model(ev, root) for root in chosen if root is not None]
    return tuple(m for m in models if m is not None)


def _is_model(item: A.Item) -> bool:
    return isinstance(item, A.ModelInst) or (isinstance(item, A.Def) and item.kind is A.DefKind.MODEL)


def elaborate_model(ev: Evaluator, root: RootModel) -> ElaboratedModel | None:
    env = Env(root.module, bind_params(ev, root))
    scratch = ModelScratch()
    for stmt in root.node.body:
        _model_stmt(ev, stmt, env, scratch)
    return _assemble(ev, root, env, scratch)


def _model_stmt(ev: Evaluator, stmt: A.Stmt, env: Env, scratch: ModelScratch) -> None:
    match stmt:
        case A.Let():
            env.locals[stmt.name.name] = ev.check_annotation(stmt, ev.eval(stmt.value, env))
        case A.Require():
            check_require(ev, stmt, env)
        case A.Field():
            scratch.fields.setdefault(stmt.name.name, (ev.eval(stmt.value, env), stmt))
        case A.Override():
            scratch.overrides.append(stmt)
        case A.Share():
            scratch.shares.append(stmt)
        case A.Budget():
            scratch.budgets.extend(i for i in stmt.items if isinstance(i, A.BudgetItem))


def as_layer(value: Value) -> LayerV | None:
    match value:
        case Instance():
            return LayerV((Sublayer(value),))
        case Sublayer():
            return LayerV((value,))
        case LayerV():
            return value
    return None


def _layers(ev: Evaluator, value: Value, span: Span) -> list[LayerV] | None:
    if value is POISON:
        return None
    items = value.items if isinstance(value, ListV) else (value,)
    if POISON in items:
        return None
    layers = [as_layer(item) for item in items]
    bad = [(i, item) for i, (item, layer) in enumerate(zip(items, layers)) if layer is None]
    if bad:
        index, item = bad[0]
        ev.fail(
            "E0301",
            "layers must be a list of layers",
            span,
            f"element {index} is a {type_name(item)}" if isinstance(value, ListV) else f"a {type_name(item)}",
            help="a layer is one or more liv/op instances joined by '+'",
        )
        return None
    if not layers:
        ev.fail("E0304", "a model needs at least one layer", span, "empty layer list")
        return None
    return [layer for layer in layers if layer is not None]


def _index(ev: Evaluator, expr: A.Expr, env: Env, count: int, allow_end: bool = False) -> int | None:
    value = ev.eval(expr, env)
    if value is POISON:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        ev.fail("E0301", f"a layer index must be an int, got {type_name(value)}", expr.span, "not an int")
        return None
    if not 0 <= value < count + allow_end:
        ev.fail("E0306", f"layer index {value} is out of range", expr.span, f"the model has {count} layer(s)")
        return None
    return value


def _apply_override(ev: Evaluator, stmt: A.Override, env: Env, layers: list[LayerV]) -> None:
    if stmt.target.name != "layers":
        ev.fail("E0309", f"only `layers` can be overridden, not '{stmt.target.name}'", stmt.target.span, "not layers")
        return
    start = _index(ev, stmt.index, env, len(layers))
    stop = _index(ev, stmt.stop, env, len(layers), True) if stmt.stop is not None else None
    stop = start + 1 if start is not None and stmt.stop is None else stop
    replacement = as_layer(ev.eval(stmt.value, env))
    if replacement is None:
        ev.fail("E0301", "an override must be a layer", stmt.value.span, "not a layer")
    if start is None or stop is None or replacement is None:
        return
    if stop <= start:
        ev.fail("E0306", "empty override range", stmt.index.span, f"{start}..{stop} selects no layer")
    layers[start:stop] = [replacement] * max(0, stop - start)


def _instance_field(ev: Evaluator, scratch: ModelScratch, name: str) -> Instance | None:
    if name not in scratch.fields:
        return None
    value, stmt = scratch.fields[name]
    if value is POISON or isinstance(value, Instance):
        return value if isinstance(value, Instance) else None
    ev.fail("E0301", f"field '{name}' must be an op or liv instance", stmt.value.span, f"got {type_name(value)}")
    return None


def _typed_field(ev: Evaluator, scratch: ModelScratch, name: str, kind: type, default: Value) -> Value:
    if name not in scratch.fields:
        return default
    value, stmt = scratch.fields[name]
    if value is POISON or (isinstance(value, kind) and not isinstance(value, bool)):
        return value if value is not POISON else default
    ev.fail("E0301", f"field '{name}' must be a {kind.__name__.lower()}", stmt.value.span, f"got {type_name(value)}")
    return default


PARAM_DTYPES = ("f32", "bf16", "f16")  # `dtype:` is the parameters' dtype; int8 is only a cache/activation dtype


def _param_dtype(ev: Evaluator, scratch: ModelScratch, dtype: Value) -> Value:
    if isinstance(dtype, DType) and dtype.name not in PARAM_DTYPES:
        span = scratch.fields["dtype"][1].value.span
        ev.fail(
            "E0304", f"a model's parameter dtype must be one of {', '.join(PARAM_DTYPES)}", span, f"got {dtype.name}"
        )
        return DType("f32")
    return dtype


def _context(ev: Evaluator, scratch: ModelScratch, context: Value) -> Value:
    if isinstance(context, int) and context < 1:
        span = scratch.fields["context"][1].value.span
        ev.fail("E0304", "a model's context must be at least 1 token", span, f"got {context}")
        return None
    return context


def _assemble(ev: Evaluator, root: RootModel, env: Env, scratch: ModelScratch) -> ElaboratedModel | None:
    node = root.node
    layers_field = scratch.fields.get("layers")
    layers = _layers(ev, layers_field[0], layers_field[1].value.span) if layers_field else None
    for stmt in scratch.overrides:
        if layers is not None:
            _apply_override(ev, stmt, env, layers)
    embedding, head = _instance_field(ev, scratch, "embedding"), _instance_field(ev, scratch, "head")
    norm, final_norm = _instance_field(ev, scratch, "norm"), _instance_field(ev, scratch, "final_norm")
    dtype = _param_dtype(ev, scratch, _typed_field(ev, scratch, "dtype", DType, DType("f32")))
    context = _context(ev, scratch, _typed_field(ev, scratch, "context", int, None))
    shares = share_decls(ev, scratch.shares, env, layers or [])
    recursion = mor_decl(ev, scratch.fields.get("recursion"), len(layers or []))
    budgets = budget_decls(ev, scratch.budgets, env)
    if layers is None or embedding is None or head is None:
        return None
    return ElaboratedModel(
        name=root.name,
        module=root.module,
        args=tuple((p.name.name, env.locals[p.name.name]) for p in node.params),
        embedding=embedding,
        layers=tuple(layers),
        norm=norm,
        final_norm=final_norm,
        head=head,
        recursion=recursion,
        dtype=dtype,
        context=context,
        shares=shares,
        budgets=budgets,
        span=root.span,
    )
