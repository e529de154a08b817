"""Shape rules: one function per primitive, from argument types and scalars to result types and
parameter shapes. A rule raises `ShapeError` with a message; the builder turns it into E0312.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from livc.compiler.ir.nodes import Scalar, TensorType
from livc.compiler.ir.primitives import BINARY_OPS, UNARY_OPS

Shape = tuple[int, ...]


class ShapeError(Exception):
    pass


@dataclass(frozen=True)
class Typed:
    """A rule's result: output shapes and (role, shape) of each parameter the op owns."""

    outputs: tuple[Shape, ...]
    params: tuple[tuple[str, Shape], ...] = ()


Args = dict[str, object]  # tensors as TensorType, scalars as Python values, filters as dicts
Rule = Callable[[Args], Typed]


def _t(args: Args, name: str) -> Shape:
    value = args[name]
    assert isinstance(value, TensorType)
    return value.shape


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ShapeError(message)


def _flat(args: Args, name: str = "t") -> int:
    shape = _t(args, name)
    _require(len(shape) == 1, f"'{name}' must be a flat [C] tensor, got {list(shape)} (use merge_heads)")
    return shape[0]


def _headed(args: Args, name: str) -> Shape:
    shape = _t(args, name)
    _require(len(shape) == 2, f"'{name}' must be headed [H, hd], got {list(shape)} (use split_heads)")
    return shape


def _positive(value: object, what: str) -> int:
    _require(isinstance(value, int) and value >= 1, f"{what} must be at least 1, got {value}")
    assert isinstance(value, int)
    return value


def _bias(args: Args, width: int, key: str = "bias") -> tuple[tuple[str, Shape], ...]:
    return (("bias", (width,)),) if args.get(key) else ()


def linear(a: Args) -> Typed:
    c, out = _flat(a), _positive(a["out"], "out")
    return Typed(((out,),), (("weight", (out, c)),) + _bias(a, out))


def grouped_linear(a: Args) -> Typed:
    c, out, g = _flat(a), _positive(a["out"], "out"), _positive(a["groups"], "groups")
    _require(c % g == 0 and out % g == 0, f"groups = {g} must divide both widths ({c} -> {out})")
    return Typed(((out,),), (("weight", (out, c // g)),) + _bias(a, out))


def split(a: Args) -> Typed:
    c, parts = _flat(a), _positive(a["parts"], "parts")
    _require(c % parts == 0, f"cannot split {c} channels into {parts} equal groups")
    return Typed(tuple((c // parts,) for _ in range(parts)))


def split_heads(a: Args) -> Typed:
    c, n = _flat(a), _positive(a["n"], "number of heads")
    _require(c % n == 0, f"{c} channels do not split into {n} heads")
    return Typed(((n, c // n),))


def merge_heads(a: Args) -> Typed:
    h, hd = _headed(a, "t")
    return Typed(((h * hd,),))


def repeat_heads(a: Args) -> Typed:
    h, hd = _headed(a, "t")
    return Typed(((h * _positive(a["times"], "times"), hd),))


def _kernel(a: Args) -> int:
    k = a["kernel"]
    _require(isinstance(k, int) and k >= 1, f"kernel length must be at least 1, got {k}")
    assert isinstance(k, int)
    return k


def short_conv(a: Args) -> Typed:
    c, k = _flat(a), _kernel(a)
    return Typed(((c,),), (("weight", (c, k)),) + _bias(a, c))


def causal_conv(a: Args) -> Typed:
    c, k, groups = _flat(a), _kernel(a), a.get("groups")
    if groups is None:
        return Typed(((c,),), (("weight", (c, k)),) + _bias(a, c))
    g = _positive(groups, "groups")
    _require(c % g == 0, f"{g} filter groups do not divide {c} channels")
    return Typed(((c,),), (("weight", (g, k)),) + _bias(a, c))


def rope(a: Args) -> Typed:
    h, hd = _headed(a, "t")
    fraction = a.get("fraction", 1.0)
    rot = int(hd * float(fraction))  # type: ignore[arg-type]
    _require(0 < rot <= hd and rot % 2 == 0, f"rotary dims int({hd} * {fraction}) = {rot} must be even and > 0")
    return Typed(((h, hd),))


def norm(a: Args, with_bias: bool) -> Typed:
    shape = _t(a, "t")
    _require(len(shape) >= 1, "cannot normalise a scalar")
    params: tuple[tuple[str, Shape], ...] = (("weight", (shape[-1],)),) if a.get("affine", True) else ()
    return Typed((shape,), params + (_bias(a, shape[-1]) if with_bias else ()))


def _same_heads(q: Shape, k: Shape, v: Shape) -> None:
    _require(q[0] == k[0] == v[0], f"head counts differ: q {q[0]}, k {k[0]}, v {v[0]} (repeat K/V heads first)")
    _require(q[1] == k[1], f"query and key head dims differ: {q[1]} vs {k[1]}")


def attention(a: Args) -> Typed:
    q, k, v = _headed(a, "q"), _headed(a, "k"), _headed(a, "v")
    _same_heads(q, k, v)
    _require(a.get("mask") in ("causal", "bidirectional"), f"mask must be causal or bidirectional, got {a.get('mask')}")
    if a.get("window") is not None:
        _positive(a["window"], "window")
    return Typed(((q[0], v[1]),))


def linear_attention(a: Args) -> Typed:
    q, k, v = _headed(a, "q"), _headed(a, "k"), _headed(a, "v")
    _same_heads(q, k, v)
    return Typed(((q[0], v[1]),))


def gated_scan(a: Args) -> Typed:
    q, k, v, g = _headed(a, "q"), _headed(a, "k"), _headed(a, "v"), _headed(a, "log_decay")
    _same_heads(q, k, v)
    _require(g == k, f"log_decay must have the key shape {list(k)}, got {list(g)}")
    return Typed(((q[0], v[1]),))


def selective_scan(a: Args) -> Typed:
    e, dt, b, c = _flat(a, "u"), _flat(a, "dt"), _flat(a, "b"), _flat(a, "c")
    n = _positive(a["state"], "state")
    _require(dt == e, f"dt has {dt} channels, u has {e}")
    _require(b == n and c == n, f"b and c must have state = {n} channels, got {b} and {c}")
    return Typed(((e,),), (("A_log", (e, n)), ("D", (e,))))


def long_conv(a: Args) -> Typed:
    c = _flat(a)
    spec = a["filter"]
    assert isinstance(spec, dict)
    params = implicit_filter_params(spec, c) if spec["kind"] == "implicit_filter" else modal_filter_params(spec, c)
    return Typed(((c,),), params + _bias(a, c))


def implicit_filter_params(spec: dict[str, object], c: int) -> tuple[tuple[str, Shape], ...]:
    order, emb, inner = _positive(spec["order"], "order"), _positive(spec["emb_dim"], "emb_dim"), spec["inner_layers"]
    _require(isinstance(inner, int) and inner >= 0, f"inner_layers must be >= 0, got {inner}")
    assert isinstance(inner, int)
    layers = [("filter_in.weight", (order, emb)), ("filter_in.bias", (order,)), ("filter_freq", (order,))]
    for i in range(inner):
        layers += [(f"filter_{i}.weight", (order, order)), (f"filter_{i}.bias", (order,))]
    return tuple(layers) + (("filter_out.weight", (c, order)), ("skip", (c,)))


def modal_filter_params(spec: dict[str, object], c: int) -> tuple[tuple[str, Shape], ...]:
    s = _positive(spec["state"], "state")
    return (("poles", (c, s)), ("residues", (c, s)), ("skip", (c,)))


def token_dense(a: Args) -> Typed:
    c, n = _flat(a), _positive(a["max_len"], "max_len")
    return Typed(((c,),), (("weight", (n, n)),))


def scale(a: Args) -> Typed:
    shape = _t(a, "t")
    return Typed((shape,), (("weight", (shape[-1],)),))


def moe(a: Args) -> Typed:
    d = _flat(a)
    n, k, f = (_positive(a[key], key) for key in ("experts", "top_k", "hidden"))
    shared = a.get("shared", 0)
    _require(k <= n, f"top_k = {k} exceeds experts = {n}")
    _require(isinstance(shared, int) and shared >= 0, f"shared must be >= 0, got {shared}")
    assert isinstance(shared, int)
    params = [("router", (n, d)), ("w1", (n, f, d)), ("w3", (n, f, d)), ("w2", (n, d, f))]
    if shared:
        params += [("shared_w1", (shared * f, d)), ("shared_w3", (shared * f, d)), ("shared_w2", (d, shared * f))]
    return Typed(((d,),), tuple(params))


def embed(a: Args) -> Typed:
    v, d = _positive(a["vocab"], "vocab"), _positive(a["d"], "d")
    return Typed(((d,),), (("weight", (v, d)),))


def lm_head(a: Args) -> Typed:
    d, v = _flat(a), _positive(a["vocab"], "vocab")
    return Typed(((v,),), () if a.get("tied") else (("weight", (v, d)),))


def unary(a: Args) -> Typed:
    return Typed((_t(a, "t"),))


def binary(a: Args) -> Typed:
    left, right = a["left"], a["right"]
    shapes = [x.shape for x in (left, right) if isinstance(x, TensorType)]
    _require(
        len(set(shapes)) == 1, f"elementwise operands differ in shape: {' vs '.join(str(list(s)) for s in shapes)}"
    )
    return Typed((shapes[0],))


RULES: dict[str, Rule] = {
    "linear": linear,
    "grouped_linear": grouped_linear,
    "split": split,
    "split_heads": split_heads,
    "merge_heads": merge_heads,
    "repeat_heads": repeat_heads,
    "short_conv": short_conv,
    "apply_rope": rope,
    "rmsnorm": lambda a: norm(a, False),
    "layernorm": lambda a: norm(a, True),
    "attention": attention,
    "linear_attention": linear_attention,
    "gated_scan": gated_scan,
    "selective_scan": selective_scan,
    "causal_conv": causal_conv,
    "long_conv": long_conv,
    "token_dense": token_dense,
    "scale": scale,
    "moe": moe,
    "embed": embed,
    "lm_head": lm_head,
    **{n: unary for n in UNARY_OPS},
    **{n: binary for n in BINARY_OPS},
}

ScalarArgs = dict[str, Scalar]
