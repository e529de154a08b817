"""One emitter per primitive: the `__init__` line, forward lines, cache entries and helpers it needs.

Emitters only compute strings from the IR; they never see .liv text. Every name they print is an
Python name the view allocated (`Ctx.v` for values, `names.attribute` for parameter modules) or a
literal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from livc.backends.pytorch.names import attribute
from livc.compiler.ir.nodes import Op, Scalar, TensorType


class BackendError(Exception):
    """The IR uses something this backend does not implement (reported, never silently wrong)."""


def lit(value: Scalar) -> str:
    if isinstance(value, float):
        return repr(value)
    return repr(value) if not isinstance(value, str) else f'"{value}"'


@dataclass
class Ctx:
    types: dict[str, TensorType]
    base: Callable[[Op, str], str]  # (op, role) -> key of the op's parameter module (state-dict and cache key)
    aliases: dict[str, str] = field(default_factory=dict)
    locals: dict[str, str] = field(default_factory=dict)  # IR value -> Python local (names.method_scope)
    unrepeated: dict[str, str] = field(default_factory=dict)  # repeat_heads output -> the value it repeats

    def v(self, name: str) -> str:
        return self.locals[self.aliases.get(name, name)]

    def t(self, name: str) -> TensorType:
        return self.types[self.aliases.get(name, name)]

    def kv(self, name: str) -> str:
        """Attention K/V (and exported feature groups) before any repeat_heads: attention does grouped heads."""
        return self.v(self.unrepeated.get(name, name))

    def kv_type(self, name: str) -> TensorType:
        return self.t(self.unrepeated.get(name, name))


@dataclass(frozen=True)
class CacheAxis:
    """A cache entry whose `axis` is indexed by token position: `max_len` slots, or for a sliding `window` a
    ring buffer of min(window, max_len) slots (one of `window` slots holds any number of positions)."""

    key: str
    axis: int
    window: int | None = None


@dataclass
class Emitted:
    init: str | None = None
    lines: tuple[str, ...] = ()
    cache: tuple[tuple[str, str], ...] = ()  # (key suffix, shape expression in batch/max_len)
    helpers: tuple[str, ...] = ()
    positions: tuple[CacheAxis, ...] = ()  # cache entries indexed by token position (see CacheAxis)


def _out(op: Op, ctx: Ctx, i: int = 0) -> str:
    return ctx.v(op.outputs[i].name)


def _param_base(op: Op, ctx: Ctx) -> str:
    return ctx.base(op, op.params[0][0])


def _attr(op: Op, ctx: Ctx) -> str:
    """The expression of the op's parameter module in its block (`self.w1`, `self._modules["forward"]`)."""
    return attribute(_param_base(op, ctx))


def _has(op: Op, role: str) -> bool:
    return op.param(role) is not None


def _params_ctor(specs: list[tuple[str, tuple[int, ...], str]]) -> str:
    parts = []
    for role, shape, init in specs:
        key = role if "." not in role and role.isidentifier() else None
        shape_text = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        parts.append(f'{key}=({shape_text}, "{init}")' if key else f'**{{"{role}": ({shape_text}, "{init}")}}')
    return "Params(" + ", ".join(parts) + ")"


def linear(op: Op, ctx: Ctx) -> Emitted:
    attr = _attr(op, ctx)
    n_in, n_out = ctx.t(op.inputs[0]).numel, op.outputs[0].type.numel
    init = f"{attr} = linear({n_in}, {n_out}, bias={_has(op, 'bias')})"
    return Emitted(init, (f"{_out(op, ctx)} = {attr}({ctx.v(op.inputs[0])})",), helpers=("base",))


def grouped_linear(op: Op, ctx: Ctx) -> Emitted:
    attr = _attr(op, ctx)
    n_in, n_out, g = ctx.t(op.inputs[0]).numel, op.outputs[0].type.numel, op.attr("groups")
    specs = [("weight", (n_out, n_in // int(g)), "normal")] + (
        [("bias", (n_out,), "zeros")] if _has(op, "bias") else []
    )  # type: ignore[arg-type]
    bias = f"{attr}.bias" if _has(op, "bias") else "None"
    line = f"{_out(op, ctx)} = grouped_linear({ctx.v(op.inputs[0])}, {attr}.weight, {bias}, {g})"
    return Emitted(f"{attr} = {_params_ctor(specs)}", (line,), helpers=("grouped",))


def split(op: Op, ctx: Ctx) -> Emitted:
    outs = ", ".join(ctx.v(o.name) for o in op.outputs)
    return Emitted(lines=(f"{outs} = {ctx.v(op.inputs[0])}.chunk({len(op.outputs)}, dim=-1)",))


def split_heads(op: Op, ctx: Ctx) -> Emitted:
    return Emitted(lines=(f"{_out(op, ctx)} = {ctx.v(op.inputs[0])}.unflatten(-1, ({op.attr('n')}, -1))",))


def merge_heads(op: Op, ctx: Ctx) -> Emitted:
    return Emitted(lines=(f"{_out(op, ctx)} = {ctx.v(op.inputs[0])}.flatten(-2)",))


def repeat_heads(op: Op, ctx: Ctx) -> Emitted:
    line = f"{_out(op, ctx)} = {ctx.v(op.inputs[0])}.repeat_interleave({op.attr('times')}, dim=-2)"
    return Emitted(lines=(line,))


def conv(op: Op, ctx: Ctx) -> Emitted:
    base = _param_base(op, ctx)
    attr = _attr(op, ctx)
    w = op.param("weight")
    channels, k = ctx.t(op.inputs[0]).numel, int(op.attr("kernel"))  # type: ignore[arg-type]
    groups = op.attr("groups")
    rows = int(groups) if groups is not None else channels  # type: ignore[arg-type]
    specs = [("weight", (rows, k), "conv")] + ([("bias", (channels,), "zeros")] if _has(op, "bias") else [])
    bias = f"{attr}.bias" if _has(op, "bias") else "None"
    state = f'self.state(cache, "{base}")'
    line = f"{_out(op, ctx)} = causal_conv({ctx.v(op.inputs[0])}, {attr}.weight, {bias}, {state}, pos)"
    assert w is not None
    return Emitted(
        f"{attr} = {_params_ctor(specs)}", (line,), ((base, f"(batch, {channels}, {k - 1})"),), ("base", "conv")
    )


def rope(op: Op, ctx: Ctx) -> Emitted:
    line = (
        f"{_out(op, ctx)} = apply_rope({ctx.v(op.inputs[0])}, pos, {lit(op.attr('theta'))}, {lit(op.attr('fraction'))})"
    )
    return Emitted(lines=(line,), helpers=("base", "rope"))


def rmsnorm(op: Op, ctx: Ctx) -> Emitted:
    n = op.outputs[0].type.shape[-1]
    if not _has(op, "weight"):
        return Emitted(
            lines=(f"{_out(op, ctx)} = rms_norm({ctx.v(op.inputs[0])}, None, {lit(op.attr('eps'))})",),
            helpers=("rmsnorm",),
        )
    attr = _attr(op, ctx)
    line = f"{_out(op, ctx)} = rms_norm({ctx.v(op.inputs[0])}, {attr}.weight, {lit(op.attr('eps'))})"
    return Emitted(f"{attr} = {_params_ctor([('weight', (n,), 'ones')])}", (line,), helpers=("base", "rmsnorm"))


def layernorm(op: Op, ctx: Ctx) -> Emitted:
    n = op.outputs[0].type.shape[-1]
    specs = ([("weight", (n,), "ones")] if _has(op, "weight") else []) + (
        [("bias", (n,), "zeros")] if _has(op, "bias") else []
    )
    base = _param_base(op, ctx) if specs else ""
    attr = attribute(base) if specs else ""
    w = f"{attr}.weight" if _has(op, "weight") else "None"
    b = f"{attr}.bias" if _has(op, "bias") else "None"
    line = f"{_out(op, ctx)} = layer_norm({ctx.v(op.inputs[0])}, {w}, {b}, {lit(op.attr('eps'))})"
    return Emitted(f"{attr} = {_params_ctor(specs)}" if specs else None, (line,), helpers=("base", "layernorm"))


def attention(op: Op, ctx: Ctx) -> Emitted:
    q, k, v = ctx.v(op.inputs[0]), ctx.kv(op.inputs[1]), ctx.kv(op.inputs[2])
    kv_heads, dk = ctx.kv_type(op.inputs[1]).shape
    dv = ctx.kv_type(op.inputs[2]).shape[1]
    name = op.outputs[0].name
    causal = op.attr("mask") != "bidirectional"
    window = op.attr("window")
    line = (
        f'{_out(op, ctx)} = attention({q}, {k}, {v}, *self.kv(cache, "{name}"), pos, {causal}, {lit(window)}, '
        f"{lit(not op.attr('cache_owner'))}, self.key_mask(features), {lit(op.attr('softcap'))})"
    )
    if op.attr("cache_owner"):
        return Emitted(lines=(line,), helpers=("base", "attention"))
    slots = "max_len" if window is None else f"min(max_len, {window})"  # a sliding window keeps a ring buffer
    cache = ((f"{name}.k", f"(batch, {kv_heads}, {slots}, {dk})"), (f"{name}.v", f"(batch, {kv_heads}, {slots}, {dv})"))
    axis = CacheAxis(f"{name}.k", 2, int(window) if window is not None else None)  # type: ignore[arg-type]
    return Emitted(lines=(line,), cache=cache, helpers=("base", "attention"), positions=(axis,))


def _no_shared_state(op: Op) -> None:
    if op.attr("cache_owner"):
        raise BackendError(f"{op.prim} with shared features: only softmax attention can share another layer's state")


def linear_attention(op: Op, ctx: Ctx) -> Emitted:
    _no_shared_state(op)
    q, k, v = (ctx.v(i) for i in op.inputs)
    h, dk = ctx.t(op.inputs[0]).shape
    dv = ctx.t(op.inputs[2]).shape[1]
    name = op.outputs[0].name
    norm = bool(op.attr("normalize"))
    line = (
        f'{_out(op, ctx)} = linear_attention({q}, {k}, {v}, "{op.attr("feature_map")}", {norm}, '
        f'self.state(cache, "{name}.s"), self.state(cache, "{name}.z") if {norm} else None, pos)'
    )
    cache = ((f"{name}.s", f"(batch, {h}, {dk}, {dv})"),) + (((f"{name}.z", f"(batch, {h}, {dk}, 1)"),) if norm else ())
    return Emitted(lines=(line,), cache=cache, helpers=("base", "scan", "linear_attention"))


def gated_scan(op: Op, ctx: Ctx) -> Emitted:
    _no_shared_state(op)
    q, k, v, g = (ctx.v(i) for i in op.inputs)
    h, dk = ctx.t(op.inputs[0]).shape
    dv = ctx.t(op.inputs[2]).shape[1]
    name = op.outputs[0].name
    line = f'{_out(op, ctx)} = gated_scan({q}, {k}, {v}, {g}, self.state(cache, "{name}"), pos)'
    return Emitted(lines=(line,), cache=((name, f"(batch, {h}, {dk}, {dv})"),), helpers=("base", "scan"))


def selective_scan(op: Op, ctx: Ctx) -> Emitted:
    _no_shared_state(op)
    base = _param_base(op, ctx)
    attr = _attr(op, ctx)
    u, dt, b, c = (ctx.v(i) for i in op.inputs)
    e, n = ctx.t(op.inputs[0]).numel, int(op.attr("state"))  # type: ignore[arg-type]
    init = f"{attr} = {_params_ctor([('A_log', (e, n), 'a_log'), ('D', (e,), 'ones')])}"
    line = (
        f"{_out(op, ctx)} = selective_scan({u}, {dt}, {b}, {c}, {attr}.A_log, {attr}.D, "
        f'self.state(cache, "{base}"), pos)'
    )
    return Emitted(init, (line,), ((base, f"(batch, {e}, {n})"),), ("base", "selective_scan"))


def _filter_spec(text: str) -> dict[str, object]:
    kind = text.split("(", 1)[0]
    values = {k: float(v) for k, v in re.findall(r"(\w+) = ([0-9.eE+-]+)", text)}
    return {
        "kind": kind,
        **{k: (int(v) if v.is_integer() and k != "decay_fast" and k != "decay_slow" else v) for k, v in values.items()},
    }


def long_conv(op: Op, ctx: Ctx) -> Emitted:
    _no_shared_state(op)
    base = _param_base(op, ctx)
    attr = _attr(op, ctx)
    spec = _filter_spec(str(op.attr("filter")))
    channels = ctx.t(op.inputs[0]).numel
    roles = {r for r, _ in op.params}
    specs = [(r, ctx_shape, _filter_init(r)) for r, ctx_shape in ctx_param_shapes(op, ctx) if r in roles]
    bias = f"{attr}.bias" if _has(op, "bias") else "None"
    state = (
        f"(batch, {channels}, {int(spec['state'])})"
        if spec["kind"] == "modal_filter"
        else f"(batch, {channels}, max_len)"
    )
    cache_arg = f'self.state(cache, "{base}")'
    line = f"{_out(op, ctx)} = long_conv({ctx.v(op.inputs[0])}, {attr}, {spec!r}, {bias}, {cache_arg}, pos)"
    history = () if spec["kind"] == "modal_filter" else (CacheAxis(base, 2),)
    init = f"{attr} = {_params_ctor(specs)}"
    return Emitted(init, (line,), ((base, state),), ("base", "long_conv"), positions=history)


def _filter_init(role: str) -> str:
    if role in ("skip", "filter_freq"):
        return "ones"
    if role.endswith("bias"):
        return "zeros"
    return "poles" if role == "poles" else "normal"


def ctx_param_shapes(op: Op, ctx: Ctx) -> list[tuple[str, tuple[int, ...]]]:
    return [(role, ctx.param_shapes[pid]) for role, pid in op.params]  # type: ignore[attr-defined]


def token_dense(op: Op, ctx: Ctx) -> Emitted:
    base = _param_base(op, ctx)
    attr = _attr(op, ctx)
    n, channels = int(op.attr("max_len")), ctx.t(op.inputs[0]).numel  # type: ignore[arg-type]
    line = f'{_out(op, ctx)} = token_dense({ctx.v(op.inputs[0])}, {attr}.weight, self.state(cache, "{base}"), pos)'
    return Emitted(
        f"{attr} = {_params_ctor([('weight', (n, n), 'normal')])}",
        (line,),
        ((base, f"(batch, {channels}, max_len)"),),
        ("base", "token_dense"),
        positions=(CacheAxis(base, 2),),
    )


def scale(op: Op, ctx: Ctx) -> Emitted:
    attr = _attr(op, ctx)
    n = op.outputs[0].type.shape[-1]
    return Emitted(
        f"{attr} = {_params_ctor([('weight', (n,), 'value=' + repr(float(op.attr('init', 1.0))))])}",
        (f"{_out(op, ctx)} = {ctx.v(op.inputs[0])} * {attr}.weight",),
        helpers=("base",),
    )


def moe(op: Op, ctx: Ctx) -> Emitted:
    attr = _attr(op, ctx)
    specs = [(role, ctx.param_shapes[pid], "normal") for role, pid in op.params]  # type: ignore[attr-defined]
    line = f'{_out(op, ctx)} = moe({ctx.v(op.inputs[0])}, {attr}, {op.attr("top_k")}, features.get("aux"))'
    return Emitted(f"{attr} = {_params_ctor(specs)}", (line,), helpers=("base", "moe"))


def embed(op: Op, ctx: Ctx) -> Emitted:
    attr = _attr(op, ctx)
    init = f'{attr} = Params(weight=(({op.attr("vocab")}, {op.attr("d")}), "normal"))'
    return Emitted(init, (f"{_out(op, ctx)} = F.embedding({ctx.v(op.inputs[0])}, {attr}.weight)",), helpers=("base",))


def lm_head(op: Op, ctx: Ctx) -> Emitted:
    attr = _attr(op, ctx)
    vocab, d = op.outputs[0].type.numel, ctx.t(op.inputs[0]).numel
    init = f'{attr} = Params(weight=(({vocab}, {d}), "normal"))'
    return Emitted(init, (f"{_out(op, ctx)} = F.linear({ctx.v(op.inputs[0])}, {attr}.weight)",), helpers=("base",))


def shared_feature(op: Op, ctx: Ctx) -> Emitted:
    source = str(op.attr("source"))
    key = re.sub(r"\[(\d+)\]", r".\1", source).lstrip(".")
    return Emitted(lines=(f'{_out(op, ctx)} = features["{key}"]',))


_UNARY = {
    "silu": "F.silu({})",
    "gelu": "F.gelu({})",
    "relu": "F.relu({})",
    "sigmoid": "torch.sigmoid({})",
    "softplus": "F.softplus({})",
    "tanh": "torch.tanh({})",
    "exp": "torch.exp({})",
    "sin": "torch.sin({})",
    "elu_plus_one": "(F.elu({}) + 1.0)",
    "logsigmoid": "F.logsigmoid({})",
    "neg": "-{}",
}
_BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


def unary(op: Op, ctx: Ctx) -> Emitted:
    return Emitted(lines=(f"{_out(op, ctx)} = {_UNARY[op.prim].format(ctx.v(op.inputs[0]))}",))


def binary(op: Op, ctx: Ctx) -> Emitted:
    attrs, names = dict(op.attrs), iter(op.inputs)
    operands = [lit(attrs[side]) if side in attrs else ctx.v(next(names)) for side in ("left", "right")]
    return Emitted(lines=(f"{_out(op, ctx)} = {operands[0]} {_BINARY[op.prim]} {operands[1]}",))


EMITTERS: dict[str, Callable[[Op, Ctx], Emitted]] = {
    "linear": linear,
    "grouped_linear": grouped_linear,
    "split": split,
    "split_heads": split_heads,
    "merge_heads": merge_heads,
    "repeat_heads": repeat_heads,
    "short_conv": conv,
    "causal_conv": conv,
    "apply_rope": rope,
    "rmsnorm": rmsnorm,
    "layernorm": layernorm,
    "attention": attention,
    "linear_attention": linear_attention,
    "gated_scan": gated_scan,
    "selective_scan": selective_scan,
    "long_conv": long_conv,
    "token_dense": token_dense,
    "scale": scale,
    "moe": moe,
    "embed": embed,
    "lm_head": lm_head,
    "shared_feature": shared_feature,
    **{name: unary for name in _UNARY},
    **{name: binary for name in _BINARY},
}
