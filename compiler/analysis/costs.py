"""Static costs of an IR model: parameters, prefill/decode FLOPs, inference cache, activations.

An abstract interpreter over the IR: every op is costed by its rule in `rules.py`; costs are summed
per LIV part, per layer and per model as symbolic polynomials (`ir.sym.Poly`). Parameters are
unique tensors: a shared tensor is attributed to the first place it appears and counted once.
Mixture-of-Recursions layers are weighted by their step's capacity (expected costs). Active
parameters per token (MoE experts counted top_k of n) come from `active.py`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from fractions import Fraction

from livc.compiler.analysis.active import inactive_by_row
from livc.compiler.analysis.rules import RULES, OpCost, OpView
from livc.compiler.ir.nodes import Block, Model, Op, Role, TensorType, Wrap
from livc.compiler.ir.sym import ZERO, Atom, Poly
from livc.compiler.passes.rewrite import before_repeats


@dataclass(frozen=True)
class Cost:
    """Symbolic totals: prefill in L, decode in t1 (= t + 1), caches and activations in L (elements)."""

    params: int = 0
    prefill: Poly = ZERO
    decode: Poly = ZERO
    cache_min: Poly = ZERO
    cache_alloc: Poly = ZERO
    activations: Poly = ZERO

    def __add__(self, o: Cost) -> Cost:
        return Cost(
            self.params + o.params,
            self.prefill + o.prefill,
            self.decode + o.decode,
            self.cache_min + o.cache_min,
            self.cache_alloc + o.cache_alloc,
            self.activations + o.activations,
        )


def sum_costs(costs: list[Cost]) -> Cost:
    """Sum many costs at once (one dict per field, no intermediate polynomials)."""
    acc: list[dict] = [{}, {}, {}, {}, {}]
    params = 0
    for c in costs:
        params += c.params
        for target, poly in zip(acc, (c.prefill, c.decode, c.cache_min, c.cache_alloc, c.activations)):
            for mono, coeff in poly.terms.items():
                target[mono] = target.get(mono, 0) + coeff
    polys = [Poly._from(d) for d in acc]
    return Cost(params, *polys)


@dataclass(frozen=True)
class Row:
    """One line of the report: the embedding, a layer, the final norm or the head."""

    key: str  # "embedding", "0", "1", ..., "final_norm", "head", "router"
    label: str
    total: Cost
    parts: tuple[tuple[str, Cost], ...] = ()
    capacity: float = 1.0
    shared_params: int = 0  # parameters used here but counted where they first appear
    inactive_params: int = 0  # of those counted here, the routed experts a token does not use (`active`)

    @property
    def active_params(self) -> int:
        return self.total.params - self.inactive_params


@dataclass(frozen=True)
class CostReport:
    model: str
    dtype_bytes: int
    rows: tuple[Row, ...]
    total: Cost
    embedding_params: int
    inactive_params: int = 0  # routed-expert parameters a token does not use (see `active`)
    context: int | None = None  # the model's `context:` (`evaluate.default_seq`)

    @property
    def params(self) -> int:
        return self.total.params

    @property
    def active_params(self) -> int:
        """Parameters used per token: experts count top_k of n (equals `params` without MoE)."""
        return self.total.params - self.inactive_params

    @property
    def non_embedding_params(self) -> int:
        return self.total.params - self.embedding_params


def _scale_l(poly: Poly, c: float) -> Poly:
    """Scale only the terms that grow with L (a cache's per-token part)."""
    factor = c
    return Poly._from({m: coeff * (factor if any(a.name == "L" for a in m) else 1) for m, coeff in poly.terms.items()})


# Costs depend only on a block's structure (name, arguments, ops and attrs), never on parameter ids,
# so the memos are shared by every analysis in the process (bounded; the IR is immutable).
_BLOCK_MEMO: dict[object, list[tuple[str, Cost]]] = {}
_LAYER_MEMO: dict[object, Row] = {}
_MEMO_LIMIT = 4096


def _bounded(memo: dict) -> dict:
    if len(memo) > _MEMO_LIMIT:
        memo.clear()
    return memo


@dataclass
class _Walker:
    model: Model
    seen: set[str] = field(default_factory=set)
    sizes: dict[str, int] = field(default_factory=dict)
    memo: dict[object, list[tuple[str, Cost]]] = field(default_factory=lambda: _BLOCK_MEMO)
    layer_memo: dict[object, Row] = field(default_factory=lambda: _LAYER_MEMO)

    def __post_init__(self) -> None:
        self.sizes = {p.id: math.prod(p.shape) for p in self.model.params}
        _bounded(self.memo)
        _bounded(self.layer_memo)

    def new_params(self, ops: tuple[Op, ...]) -> tuple[int, int]:
        """(params first seen here, params already counted elsewhere)."""
        new = shared = 0
        for op in ops:
            for _, pid in op.params:
                if pid in self.seen:
                    shared += self.sizes[pid]
                else:
                    self.seen.add(pid)
                    new += self.sizes[pid]
        return new, shared

    def op_cost(self, op: Op, types: dict[str, TensorType], producers: dict[str, Op]) -> OpCost:
        inputs = tuple(types[name] for name in op.inputs)
        kv = None
        if op.prim == "attention":
            kv = (_pre_repeat(op.inputs[1], types, producers), _pre_repeat(op.inputs[2], types, producers))
        return RULES[op.prim](OpView(op, inputs, kv))

    def block_parts(self, block: Block, prefix: str = "") -> list[tuple[str, Cost, int]]:
        key = (
            block.name,
            block.args,
            block.input.type,
            tuple((s.role, tuple((op.prim, op.attrs) for op in s.ops)) for s in block.sections),
        )
        if key not in self.memo:
            self.memo[key] = self._block_costs(block)
        out = []
        for section, (name, cost) in zip(block.sections, self.memo[key]):
            params, shared = self.new_params(section.ops)
            out.append((prefix + name, dataclasses.replace(cost, params=params), shared))
        return out

    def _block_costs(self, block: Block) -> list[tuple[str, Cost]]:
        types = {block.input.name: block.input.type}
        producers: dict[str, Op] = {}
        parts = []
        for section in block.sections:
            costs = []
            for op in section.ops:
                costs.append(self.op_cost(op, types, producers))
                for out in op.outputs:
                    types[out.name] = out.type
                    producers[out.name] = op
            parts.append((section.role.value if section.role is not Role.BODY else block.name, _sum(costs, 0)))
        return parts


def _pre_repeat(name: str, types: dict[str, TensorType], producers: dict[str, Op]) -> TensorType:
    return types[before_repeats(name, producers)]


def _sum(costs: list[OpCost], params: int) -> Cost:
    c = Cost(params=params)
    for oc in costs:
        c = c + Cost(
            0,
            oc.prefill_linear + oc.prefill_pairs,
            oc.decode_token + oc.decode_history,
            oc.cache_min,
            oc.cache_alloc,
            oc.activations,
        )
    return c


def _sum_raw(costs: list[OpCost]) -> OpCost:
    out = OpCost()
    for c in costs:
        out = OpCost(
            out.prefill_linear + c.prefill_linear,
            out.prefill_pairs + c.prefill_pairs,
            out.decode_token + c.decode_token,
            out.decode_history + c.decode_history,
            out.cache_min + c.cache_min,
            out.cache_alloc + c.cache_alloc,
            out.activations + c.activations,
        )
    return out


def _residual(model: Model, wrap: Wrap) -> Cost:
    d = model.d_model
    if wrap is Wrap.NONE:
        return Cost()
    from livc.compiler.ir.sym import L

    return Cost(prefill=L * d, decode=Poly.const(d), activations=L * d)


def _block_key(block: Block) -> object:
    return (
        block.name,
        block.args,
        block.input.type,
        tuple((s.role, tuple((op.prim, op.attrs) for op in s.ops)) for s in block.sections),
    )


def _layer_row(w: _Walker, index: int, capacity: float, pair_power: int) -> Row:
    layer = w.model.layers[index]
    key = (
        tuple((_block_key(s.block), s.wrap, _block_key(s.norm) if s.norm else None) for s in layer.sublayers),
        capacity,
        pair_power,
    )
    cached = w.layer_memo.get(key)
    if cached is None:
        cached = w.layer_memo[key] = _layer_row_uncached(w, index, capacity, pair_power)
    return _with_params(w, index, cached)


def _with_params(w: _Walker, index: int, row: Row) -> Row:
    new = shared = 0
    for sub in w.model.layers[index].sublayers:
        for block in (sub.norm, sub.block):
            if block is not None:
                n, s = w.new_params(block.ops)
                new, shared = new + n, shared + s
    t = row.total
    return Row(
        key=str(index),
        label=row.label,
        total=Cost(new, t.prefill, t.decode, t.cache_min, t.cache_alloc, t.activations),
        parts=row.parts,
        capacity=row.capacity,
        shared_params=shared,
    )


def _layer_row_uncached(w: _Walker, index: int, capacity: float, pair_power: int) -> Row:
    layer = w.model.layers[index]
    seen = set(w.seen)
    parts: list[tuple[str, Cost]] = []
    shared_total = 0
    for j, sub in enumerate(layer.sublayers):
        if sub.norm is not None:
            for _, cost, shared in w.block_parts(sub.norm):
                parts.append((f"{j}.norm", _capacity(cost, capacity, 1, w, None)))
                shared_total += shared
        for name, cost, shared in w.block_parts(sub.block, f"{j}.{sub.block.name}."):
            parts.append((name, _capacity(cost, capacity, pair_power, w, sub.block)))
            shared_total += shared
        parts.append((f"{j}.residual", _capacity(_residual(w.model, sub.wrap), capacity, 1, w, None)))
    total = Cost()
    for _, c in parts:
        total = total + c
    label = " + ".join(s.block.name for s in layer.sublayers)
    w.seen = seen  # parameters are attributed by `_with_params`, not here
    return Row(
        key=str(index), label=label, total=total, parts=tuple(parts), capacity=capacity, shared_params=shared_total
    )


def _capacity(cost: Cost, c: float, pair_power: int, w: _Walker, block: Block | None) -> Cost:
    if c == 1.0:
        return cost
    f = c
    # Split prefill into per-token and pair terms again: pair terms are those quadratic in L or with min(L, W).
    prefill = _scale_terms(cost.prefill, f, f**pair_power)
    decode = _scale_terms(cost.decode, f, f * (f if pair_power == 2 else 1), history=True)
    return Cost(cost.params, prefill, decode, _scale_l(cost.cache_min, c), cost.cache_alloc, cost.activations * f)


def _scale_terms(poly: Poly, linear_f: float, pair_f: float, history: bool = False) -> Poly:
    def is_pair(mono: tuple[Atom, ...]) -> bool:
        if history:
            return any(a.name == "t1" for a in mono)
        return sum(a.name == "L" and a.kind != "log" for a in mono) >= 2 or any(a.kind == "min" for a in mono)

    return Poly._from({m: coeff * (pair_f if is_pair(m) else linear_f) for m, coeff in poly.terms.items()})


def _row(w: _Walker, key: str, block: Block | None) -> Row | None:
    if block is None:
        return None
    parts = w.block_parts(block)
    total = Cost()
    for _, c, _ in parts:
        total = total + c
    return Row(
        key=key,
        label=block.name,
        total=total,
        parts=tuple((n, c) for n, c, _ in parts),
        shared_params=sum(s for _, _, s in parts),
    )


def exact(c: float) -> Fraction:
    """A capacity as an exact fraction, so expected costs do not depend on summation order."""
    return Fraction(c).limit_denominator(10**6)


def _capacities(model: Model) -> tuple[dict[int, float], int]:
    rec = model.recursion
    if rec is None:
        return {}, 1
    caps = {layer: exact(rec.capacities[r]) for r, step in enumerate(rec.steps) for layer in step}
    return caps, (2 if rec.kv == "recursion_wise" else 1)


def _router_row(w: _Walker) -> Row | None:
    rec = w.model.recursion
    if rec is None:
        return None
    from livc.compiler.ir.sym import L

    d = w.model.d_model
    params = sum(w.sizes[p] for p in rec.router_params)
    if rec.router == "expert_choice":
        entering = [Fraction(1)] + [exact(c) for c in rec.capacities[:-1]]
        flops = sum(entering) * 2 * d
    else:
        flops = 2 * d * rec.recursions
    valid = L * rec.recursions if rec.kv == "recursion_wise" else ZERO  # per-step key validity rows (allocated)
    return Row(
        key="router",
        label=f"MoR {rec.router} router",
        total=Cost(params, L * flops, Poly.const(flops), cache_alloc=valid),
    )


def analyze(model: Model) -> CostReport:
    """The full static cost report of a model (any IR stage gives the same numbers)."""
    w = _Walker(model)
    caps, pair_power = _capacities(model)
    embedding = _row(w, "embedding", model.embedding)
    assert embedding is not None
    embedding_params = embedding.total.params
    rows = [embedding] + [_layer_row(w, i, caps.get(i, 1.0), pair_power) for i in range(len(model.layers))]
    rows += [r for r in (_row(w, "final_norm", model.final_norm), _row(w, "head", model.head), _router_row(w)) if r]
    total = sum_costs([r.total for r in rows])
    inactive = inactive_by_row(model)
    rows = [dataclasses.replace(r, inactive_params=inactive[r.key]) if r.key in inactive else r for r in rows]
    return CostReport(
        model=model.name,
        dtype_bytes=model.dtype.bytes,
        rows=tuple(rows),
        total=total,
        embedding_params=embedding_params,
        inactive_params=sum(inactive.values()),
        context=model.context,
    )


__all__ = ["analyze", "CostReport", "Cost", "Row", "_sum_raw"]
