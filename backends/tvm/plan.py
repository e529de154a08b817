"""The build plan: which parameters are matrix weights, the entry functions' weight inputs, and the cache.

`cache_entries(model, max_len)` lists the inference state exactly as the PyTorch backend's
`init_cache(1, max_len)` allocates it (same keys, same order, same shapes; see emit_ops.py), so emitters,
artifacts and the torch reference agree. `make_plan` adds the weight inputs: every used parameter in the
IR table order (with the MoR router's), matrix weights (linear / lm_head / embed / MoE experts) in the build's
storage format (weights.storage: one input per stored array, named param id + suffix), every other one f32.

Preconditions: a canonicalize- or lower-stage ir.Model (sharing applied). Non-goal: allocating anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from livc.backends.pytorch.view import _types, _unrepeated, param_base
from livc.backends.tvm import weights
from livc.backends.tvm.errors import UNSUPPORTED, TvmError
from livc.compiler.ir.nodes import Block, Model, Op
from livc.compiler.passes.rewrite import named_blocks, used_param_ids

MATRIX_ROLES: dict[str, tuple[str, ...]] = {
    "linear": ("weight",),
    "lm_head": ("weight",),
    "embed": ("weight",),
    "moe": ("w1", "w3", "w2", "shared_w1", "shared_w3", "shared_w2"),
}


@dataclass(frozen=True)
class CacheEntry:
    """One cache tensor (batch 1). `position_axis`: the axis indexed by token position (None: a fixed-size
    state); `window`: a sliding-window ring of min(window, max_len) slots."""

    key: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    position_axis: int | None = None
    window: int | None = None


@dataclass(frozen=True)
class WeightInput:
    """One entry-function weight argument: `name` = param id + storage suffix."""

    name: str
    param: str
    suffix: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class Plan:
    fmt: str
    max_len: int
    matrices: frozenset[str]  # param ids stored in `fmt`
    shapes: tuple[tuple[str, tuple[int, ...]], ...]  # used param id -> IR shape, in the IR table order
    weight_inputs: tuple[WeightInput, ...]
    cache: tuple[CacheEntry, ...]

    def pack(self, state: dict[str, np.ndarray]) -> list[np.ndarray]:
        """f32 arrays by param id (a torch state dict) -> the weight arguments in `weight_inputs` order."""
        missing = [pid for pid, _ in self.shapes if pid not in state]
        if missing:
            raise TvmError("E0703", f"weights: parameter {missing[0]} is missing from the checkpoint")
        stored: dict[str, np.ndarray] = {}
        for pid, shape in self.shapes:
            value = np.ascontiguousarray(state[pid], dtype=np.float32)
            if value.shape != shape:
                raise TvmError("E0703", f"weights: {pid} has shape {value.shape}, the model needs {shape}")
            packed = weights.pack(value, self.fmt) if pid in self.matrices else {"": value}
            stored.update({pid + suffix: arr for suffix, arr in packed.items()})
        return [stored[w.name] for w in self.weight_inputs]


def as_stored(plan: Plan, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`state` (f32 by param id) with every matrix weight replaced by what the kernels compute from its stored
    form (weights.unpack of weights.pack): the reference a build in `plan.fmt` must match exactly."""
    out = dict(state)
    for pid, shape in plan.shapes:
        if pid in plan.matrices:
            out[pid] = weights.unpack(weights.pack(np.asarray(state[pid], dtype=np.float32), plan.fmt), plan.fmt, shape)
    return out


def checked(plan: Plan, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """`arrays` as the entry functions' weight arguments: one per `plan.weight_inputs`, in its dtype and shape
    (TvmError E0703 naming the first that is not)."""
    arrays = list(arrays)
    for w, a in zip(plan.weight_inputs, arrays, strict=False):
        if tuple(a.shape) != w.shape or str(a.dtype) != w.dtype:
            want = f"{w.dtype}{list(w.shape)}"
            raise TvmError("E0703", f"weights: {w.name} is {a.dtype}{list(a.shape)}, expected {want}")
    if len(arrays) != len(plan.weight_inputs):
        raise TvmError("E0703", f"weights: {len(arrays)} arrays for {len(plan.weight_inputs)} inputs")
    return arrays


def weight_bytes(plan: Plan) -> int:
    """Bytes of every stored weight argument (one decode step reads each once)."""
    return sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in plan.weight_inputs)


def cache_read_bytes(plan: Plan, pos: int) -> int:
    """Bytes of cache one decode step at position `pos` reads: positional entries up to `pos`, the rest whole."""
    total = 0
    for e in plan.cache:
        size = int(np.prod(e.shape)) * np.dtype(e.dtype).itemsize
        if e.position_axis is not None:
            size = size * min(pos + 1, e.shape[e.position_axis]) // e.shape[e.position_axis]
        total += size
    return total


def capacity(plan: Plan) -> int | None:
    """Positions the cache holds (like torch cache_capacity): None when every state has a fixed size."""
    sizes = [
        e.shape[e.position_axis]
        for e in plan.cache
        if e.position_axis is not None and (e.window is None or e.shape[e.position_axis] < e.window)
    ]
    return min(sizes) if sizes else None


def _matrix_ids(model: Model) -> frozenset[str]:
    blocks = named_blocks(model)
    matrix = {op.param(r) for _, b in blocks for op in b.ops for r in MATRIX_ROLES.get(op.prim, ()) if op.param(r)}
    other = {pid for _, b in blocks for op in b.ops for r, pid in op.params if r not in MATRIX_ROLES.get(op.prim, ())}
    both = sorted(matrix & other)  # type: ignore[type-var]
    if both:
        raise TvmError(UNSUPPORTED, f"parameter {both[0]} is used both as a matrix weight and as a vector parameter")
    return frozenset(p for p in matrix if p is not None)


def make_plan(model: Model, fmt: str = "f32", max_len: int = 2048) -> Plan:
    weights.check_format(fmt)
    used = used_param_ids(model) | set(model.recursion.router_params if model.recursion else ())
    shapes = tuple((p.id, p.shape) for p in model.params if p.id in used)
    matrices = _matrix_ids(model)
    inputs = []
    for pid, shape in shapes:
        specs = weights.storage(shape, fmt) if pid in matrices else (("", shape, "float32"),)
        inputs += [WeightInput(pid + suffix, pid, suffix, tuple(s), dt) for suffix, s, dt in specs]
    return Plan(fmt, max_len, matrices, shapes, tuple(inputs), cache_entries(model, max_len))


# ---- cache


def _base(op: Op) -> str:
    role, pid = op.params[0]
    return param_base(pid, role)


def _attention(op: Op, block: Block, max_len: int) -> list[CacheEntry]:
    if op.attr("cache_owner"):
        return []
    types, unrepeated = _types(block), _unrepeated(block)
    kv_heads, dk = types[unrepeated.get(op.inputs[1], op.inputs[1])].shape
    dv = types[unrepeated.get(op.inputs[2], op.inputs[2])].shape[1]
    window = op.attr("window")
    slots = max_len if window is None else min(max_len, int(window))  # type: ignore[arg-type]
    win = int(window) if window is not None else None  # type: ignore[arg-type]
    name = op.outputs[0].name
    return [
        CacheEntry(f"{name}.k", (1, kv_heads, slots, dk), position_axis=2, window=win),
        CacheEntry(f"{name}.v", (1, kv_heads, slots, dv), position_axis=2, window=win),
    ]


def _modal(op: Op) -> bool:
    return str(op.attr("filter")).split("(", 1)[0] == "modal_filter"


def _modal_state(op: Op) -> int:
    found = re.search(r"state = ([0-9]+)", str(op.attr("filter")))
    if found is None:
        raise TvmError(UNSUPPORTED, f"long_conv: cannot read the modal filter state size from {op.attr('filter')}")
    return int(found[1])


def _op_cache(op: Op, block: Block, max_len: int) -> list[CacheEntry]:
    types = _types(block)
    width = types[op.inputs[0]].numel if op.inputs else 0
    if op.prim in ("short_conv", "causal_conv"):
        return [CacheEntry(_base(op), (1, width, int(op.attr("kernel")) - 1))]  # type: ignore[arg-type]
    if op.prim == "attention":
        return _attention(op, block, max_len)
    if op.prim in ("linear_attention", "gated_scan"):
        h, dk = types[op.inputs[0]].shape
        dv = types[op.inputs[2]].shape[1]
        name = op.outputs[0].name
        if op.prim == "gated_scan":
            return [CacheEntry(name, (1, h, dk, dv))]
        z = [CacheEntry(f"{name}.z", (1, h, dk, 1))] if op.attr("normalize") else []
        return [CacheEntry(f"{name}.s", (1, h, dk, dv)), *z]
    if op.prim == "selective_scan":
        return [CacheEntry(_base(op), (1, width, int(op.attr("state"))))]  # type: ignore[arg-type]
    if op.prim == "long_conv" and _modal(op):
        return [CacheEntry(_base(op), (1, width, _modal_state(op)))]
    if op.prim in ("long_conv", "token_dense"):
        return [CacheEntry(_base(op), (1, width, max_len), position_axis=2)]
    return []


def cache_entries(model: Model, max_len: int) -> tuple[CacheEntry, ...]:
    """The inference state of `model` at batch 1, in the PyTorch `init_cache` order (without "pos")."""
    out: list[CacheEntry] = []
    for prefix, block in named_blocks(model):
        for op in block.ops:
            for e in _op_cache(op, block, max_len):
                out.append(CacheEntry(f"{prefix}.{e.key}", e.shape, e.dtype, e.position_axis, e.window))
    rec = model.recursion
    if rec is not None and rec.kv == "recursion_wise":
        out += [CacheEntry(f"recursion.{r}.valid", (1, max_len), position_axis=1) for r in range(rec.recursions)]
    return tuple(out)
