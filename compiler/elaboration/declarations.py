"""Model-level declarations: sharing (STAR), Mixture-of-Recursions settings, budgets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from livc.compiler.elaboration.model import BudgetDecl, LayerRef, MoRDecl, ShareDecl
from livc.compiler.elaboration.values import POISON, BuilderV, DType, Instance, LayerV, ListV, Symbol, Value, type_name
from livc.compiler.ir import primitives as prim
from livc.compiler.resolution.scope import suggest
from livc.dsl import ast as A
from livc.dsl.source import Span

if TYPE_CHECKING:
    from livc.compiler.elaboration.evaluate import Env, Evaluator


# ---- sharing --------------------------------------------------------------------------------


def featurizer_groups(instance: Instance) -> set[str] | None:
    """Names bound in a LIV's featurizer section (None if it has no featurizer)."""
    node = instance.definition.node
    if not isinstance(node, A.Def) or node.kind is not A.DefKind.LIV:
        return None
    sections = [s for s in node.body if isinstance(s, A.Section) and s.kind is A.SectionKind.FEATURIZER]
    if not sections:
        return None
    return _assigned(sections[0].body)


def _assigned(body: tuple[A.Stmt, ...]) -> set[str]:
    names: set[str] = set()
    for stmt in body:
        if isinstance(stmt, A.Assign):
            names.update(t.name for t in stmt.targets)
        elif isinstance(stmt, A.If):
            names |= _assigned(stmt.body) | _assigned(stmt.orelse)
    return names


def _layer_ref(ev: Evaluator, expr: A.Expr, env: Env, layers: list[LayerV]) -> LayerRef | None:
    from livc.compiler.elaboration.elaborate import _index

    parts: list[A.Expr] = []
    base = expr
    while isinstance(base, A.Index) and base.stop is None:
        parts.insert(0, base.index)
        base = base.value
    if not (isinstance(base, A.Name) and base.ident.name == "layers") or not 1 <= len(parts) <= 2:
        ev.fail("E0310", "sharing refers to `layers[i]` or `layers[i][j]`", expr.span, "not a layer reference")
        return None
    layer = _index(ev, parts[0], env, len(layers))
    if layer is None:
        return None
    if len(parts) == 1:
        return LayerRef(layer=layer, sublayer=None, span=expr.span)
    count = len(layers[layer].sublayers)
    sub = ev.eval(parts[1], env)
    if not isinstance(sub, int) or isinstance(sub, bool) or not 0 <= sub < count:
        if sub is not POISON:
            ev.fail(
                "E0306",
                f"sublayer index {sub} is out of range",
                parts[1].span,
                f"layers[{layer}] has {count} sublayer(s)",
            )
        return None
    return LayerRef(layer=layer, sublayer=sub, span=expr.span)


def _sublayer(layers: list[LayerV], ref: LayerRef) -> Instance:
    return layers[ref.layer].sublayers[ref.sublayer or 0].op


def _check_share(ev: Evaluator, stmt: A.Share, source: LayerRef, target: LayerRef, layers: list[LayerV]) -> bool:
    if (source.layer, source.sublayer) == (target.layer, target.sublayer):
        ev.fail("E0310", "a layer cannot share with itself", target.span, "same as the source")
        return False
    if stmt.kind is A.ShareKind.WEIGHTS:
        return _check_weight_share(ev, source, target, layers)
    if source.sublayer is None or target.sublayer is None:
        ref = target if target.sublayer is None else source
        ev.fail("E0310", f"`share {stmt.kind.value}` refers to sublayers: layers[i][j]", ref.span, "a whole layer")
        return False
    return _check_group_share(ev, stmt, source, target, layers)


def _check_weight_share(ev: Evaluator, source: LayerRef, target: LayerRef, layers: list[LayerV]) -> bool:
    def ops(ref: LayerRef) -> object:
        layer = layers[ref.layer]
        return layer if ref.sublayer is None else layer.sublayers[ref.sublayer].op

    if ops(source) != ops(target):
        ev.fail("E0310", "shared weights need identical layers", target.span, f"differs from {source}")
        return False
    return True


def _check_group_share(ev: Evaluator, stmt: A.Share, source: LayerRef, target: LayerRef, layers: list[LayerV]) -> bool:
    ok = True
    for ref in (source, target):
        groups = featurizer_groups(_sublayer(layers, ref))
        if groups is None:
            ev.fail("E0310", f"{ref} has no featurizer to share", ref.span, f"{_sublayer(layers, ref).name}")
            ok = False
            continue
        missing = [g for g in stmt.groups if g.name not in groups]
        if missing:
            names = ", ".join(f"'{g.name}'" for g in missing)
            ev.fail(
                "E0310",
                f"{_sublayer(layers, ref).name} has no feature group {names}",
                missing[0].span,
                f"not in {ref}",
                help=f"its feature groups are {', '.join(sorted(groups))}",
            )
            return False
    if stmt.kind is A.ShareKind.FEATURIZER and _sublayer(layers, source).name != _sublayer(layers, target).name:
        ev.fail(
            "E0310",
            "featurizer sharing needs LIVs of the same kind",
            target.span,
            f"{_sublayer(layers, target).name} vs {_sublayer(layers, source).name}",
        )
        ok = False
    return ok


def share_decls(ev: Evaluator, stmts: list[A.Share], env: Env, layers: list[LayerV]) -> tuple[ShareDecl, ...]:
    out = []
    for stmt in stmts:
        if not layers:
            continue
        source = _layer_ref(ev, stmt.source, env, layers)
        targets = [t for e in stmt.targets if (t := _layer_ref(ev, e, env, layers)) is not None]
        if source is None or len(targets) != len(stmt.targets):
            continue
        if all([_check_share(ev, stmt, source, t, layers) for t in targets]):
            out.append(
                ShareDecl(
                    kind=stmt.kind,
                    groups=tuple(g.name for g in stmt.groups),
                    source=source,
                    targets=tuple(targets),
                    span=stmt.span,
                )
            )
    return tuple(out)


# ---- Mixture-of-Recursions ------------------------------------------------------------------

_MOR_DEPTH = {"cycle": 0, "sequence": 0, "middle_cycle": 2, "middle_sequence": 2}


def mor_decl(ev: Evaluator, entry: tuple[Value, A.Field] | None, n_layers: int) -> MoRDecl | None:
    if entry is None or entry[0] is POISON:
        return None
    value, stmt = entry
    if not isinstance(value, BuilderV) or value.name != "mor":
        ev.fail("E0311", "`recursion` takes mor(...)", stmt.value.span, f"got {type_name(value)}")
        return None
    return _mor_checked(ev, value, n_layers, stmt.value.span)


def _mor_symbol(ev: Evaluator, value: Value, kind: str, span: Span) -> str | None:
    allowed = sorted(k for k, v in prim.SYMBOLS.items() if v == kind)
    if isinstance(value, Symbol) and value.name in allowed:
        return value.name
    ev.fail("E0311", f"invalid {kind.replace('mor_', 'MoR ')} setting", span, f"expected one of {', '.join(allowed)}")
    return None


def _mor_checked(ev: Evaluator, value: BuilderV, n_layers: int, span: Span) -> MoRDecl | None:
    recursions = value.arg("recursions")
    sharing = _mor_symbol(ev, value.arg("sharing"), "mor_sharing", span)
    kv = _mor_symbol(ev, value.arg("kv"), "mor_kv", span)
    router = value.arg("router")
    if not isinstance(recursions, int) or recursions < 1:
        ev.fail("E0311", "recursions must be at least 1", span, f"recursions = {recursions}")
        return None
    if not isinstance(router, BuilderV) or router.name not in ("expert_choice", "token_choice"):
        ev.fail("E0311", "router must be expert_choice(...) or token_choice(...)", span, "not a router")
        return None
    if sharing is None or kv is None or not _mor_depth_ok(ev, sharing, recursions, n_layers, span):
        return None
    if router.name == "expert_choice" and not _router_activation_ok(ev, router.arg("activation"), span):
        return None
    capacities = _capacities(ev, router, recursions)
    if capacities is None:
        return None
    return MoRDecl(recursions=recursions, sharing=sharing, router=router, capacities=capacities, kv=kv, span=span)


def _router_activation_ok(ev: Evaluator, value: Value, span: Span) -> bool:
    """The backends implement the sigmoid router only: `tanh_gate` is refused rather than silently ignored."""
    name = _mor_symbol(ev, value, "activation", span)
    if name is not None and name != "sigmoid_gate":
        ev.fail("E0311", f"the {name} router activation is not implemented", span, "use sigmoid_gate")
    return name == "sigmoid_gate"


def _mor_depth_ok(ev: Evaluator, sharing: str, recursions: int, n_layers: int, span: Span) -> bool:
    unique = _MOR_DEPTH[sharing]
    if n_layers - unique < recursions or (n_layers - unique) % recursions:
        ev.fail(
            "E0311",
            f"{n_layers} layers cannot be shared {sharing} over {recursions} recursions",
            span,
            f"({n_layers} - {unique}) must be a positive multiple of {recursions}",
        )
        return False
    return True


def _capacities(ev: Evaluator, router: BuilderV, recursions: int) -> tuple[float, ...] | None:
    default = tuple((recursions - r) / recursions for r in range(recursions))
    if router.name != "expert_choice" or router.arg("capacities") is None:
        return default
    given = router.arg("capacities")
    values = given.items if isinstance(given, ListV) else ()
    caps = tuple(float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool))
    span = router.span
    if len(caps) != len(values) or len(caps) != recursions:
        ev.fail("E0311", f"expert_choice needs {recursions} capacities", span, f"got {len(values)}")
        return None
    if any(not 0.0 < c <= 1.0 for c in caps):
        ev.fail("E0311", "capacities must be in (0, 1]", span, f"capacities {list(caps)}")
        return None
    rising = [i for i in range(1, len(caps)) if caps[i] > caps[i - 1]]
    if rising:
        i = rising[0]
        ev.fail(
            "E0311",
            "MoR capacities must not increase",
            span,
            f"step {i} keeps {caps[i]} > step {i - 1} keeps {caps[i - 1]}",
            help="tokens dropped at one recursion cannot come back at a later one",
        )
        return None
    return caps


# ---- budgets --------------------------------------------------------------------------------


def budget_decls(ev: Evaluator, items: list[A.BudgetItem], env: Env) -> tuple[BudgetDecl, ...]:
    return tuple(d for item in items if (d := _budget(ev, item, env)) is not None)


def _budget(ev: Evaluator, item: A.BudgetItem, env: Env) -> BudgetDecl | None:
    metric = item.metric.name
    if metric not in prim.BUDGET_METRICS:
        ev.fail(
            "E0401",
            f"unknown budget metric '{metric}'",
            item.metric.span,
            "not a metric",
            help=suggest(metric, set(prim.BUDGET_METRICS)) or f"metrics: {', '.join(prim.BUDGET_METRICS)}",
        )
        return None
    if item.op not in (A.BinOpKind.LE, A.BinOpKind.LT):
        ev.fail("E0401", "a budget is an upper bound: use <= or <", item.span, f"'{item.op.value}'")
        return None
    args = _budget_args(ev, item, env)
    limit = ev.eval(item.limit, env)
    if limit is POISON or args is None:
        return None
    if not isinstance(limit, (int, float)) or isinstance(limit, bool) or limit < 0:
        got = limit if isinstance(limit, (int, float)) and not isinstance(limit, bool) else type_name(limit)
        ev.fail("E0301", "a budget limit is a non-negative number", item.limit.span, f"got {got}")
        return None
    return BudgetDecl(metric=metric, args=args, strict=item.op is A.BinOpKind.LT, limit=limit, span=item.span)


def _budget_args(ev: Evaluator, item: A.BudgetItem, env: Env) -> tuple[tuple[str, Value], ...] | None:
    allowed = prim.BUDGET_METRICS[item.metric.name]
    out = []
    for arg in item.args:
        key = arg.name.name if arg.name is not None else None
        if key is None or key not in allowed:
            span = arg.name.span if arg.name is not None else arg.span
            ev.fail(
                "E0401",
                f"'{item.metric.name}' takes {', '.join(allowed) or 'no'} argument(s) by keyword",
                span,
                "unknown budget argument",
                help=suggest(key, set(allowed)) if key else None,
            )
            return None
        if any(k == key for k, _ in out):
            ev.fail("E0210", f"budget argument '{key}' given twice", arg.span, "again here")
            return None
        value = ev.eval(arg.value, env)
        if not _budget_arg_ok(key, value):
            if value is not POISON:
                ev.fail(
                    "E0301",
                    f"budget argument '{key}' has the wrong type",
                    arg.value.span,
                    "expected a dtype" if key == "dtype" else "expected a positive int",
                )
            return None
        out.append((key, value))
    return tuple(out)


def _budget_arg_ok(key: str, value: Value) -> bool:
    if key == "dtype":
        return isinstance(value, DType)
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
