"""Hypothesis strategies for whole .liv models that compile cleanly, valid by construction (no filter / assume).

`drawn_models()` draws a `DrawnModel`: the metadata of a random backbone over every stdlib operator, whose
`source` property renders it as .liv text; `liv_sources()` draws just the text and `sources_with_metadata()`
draws `(source, model)`. `drawn_models(sharing=True)` always has a share declaration, `drawn_models(mor=True)`
always a `recursion: mor(...)`; `kv_sharing_models()` has 2..4 attention layers of one K/V head layout and at
least one `share features k, v`. What makes every draw valid:

- widths: d is a multiple of 8 in 8..64 (so every stdlib default that divides d is valid), vocab <= 64, at most
  6 layers; each operator's arguments are drawn inside its `require`s and the shape rules (head_dim even under
  RoPE, kv_heads dividing heads, GLA key/value widths multiples of heads, Hyena-Y kernel in 3..128, Hyena-SE/MR
  groups dividing d, MoE top_k <= experts, odd Hyena emb_dim >= 3, ...); an optional argument is left to its
  default only where the default is valid;
- sharing: `share weights` only between identical layers or sublayers (wrapper included), `share featurizer`
  only between equal instances of a LIV with a featurizer, `share features k, v` (always both: one cache)
  only between softmax-attention LIVs with the same K/V head layout (heads, kv_heads, head_dim; windows may
  differ), from an earlier layer to a later one; a sublayer is the target of at most one declaration and
  never both a source and a target;
- Mixture-of-Recursions: the layer list is built from the recursion pattern (cycle `U U U`, sequence
  `aa bb`, middle_* adding unique first and last layers), so every layer of a recursion step equals the layer
  of step 0 it reuses; capacities are non-increasing in (0, 1]; MoR models have no share declarations or
  overrides;
- budgets: generous limits that every drawn model meets.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from hypothesis import strategies as st
from hypothesis.strategies import DrawFn

Strategy = st.SearchStrategy

WIDTHS = (8, 16, 24, 32, 40, 48, 56, 64)
MAX_LAYERS = 6
DTYPES = ("f32", "bf16", "f16")
_GRID = (1.0, 0.875, 0.75, 0.667, 0.5, 0.333, 0.25, 0.125)
_WRAPPERS = (
    "post_norm(LayerNorm(d))",
    "post_norm(RMSNorm(d, eps = 1e-06))",
    "pre_norm(RMSNorm(d))",
    "pre_norm(LayerNorm(d, bias = false))",
    "no_residual()",
)
_BUDGETS = (
    "params <= 1G",
    "non_embedding_params <= 999M",  # not implied by `params <= 1G` (that would be W0004)
    "cache(batch = 4, seq = 32K, dtype = f32) <= 1024TiB",
    "cache_alloc(batch = 2, seq = 4K, dtype = bf16) <= 1024TiB",
    "activations(seq = 1K) <= 1024TiB",
    "flops_per_token(seq = 32K) < 1000T",
    "prefill_flops(batch = 1, seq = 8K) <= 1000T",
)


@dataclass(frozen=True)
class SublayerSpec:
    """One sublayer: an operator instance and an optional `with` wrapper (rendered text)."""

    op: OpSpec
    wrapper: str | None = None

    def render(self, qualify: dict[str, str]) -> str:
        call = self.op.render(qualify)
        return f"({call} with {self.wrapper})" if self.wrapper else call


LayerSpec = tuple[SublayerSpec, ...]


@dataclass(frozen=True)
class MoRSpec:
    """A `recursion: mor(...)` field; `capacities` None means expert_choice's default (or token_choice)."""

    recursions: int
    sharing: str
    router: str
    capacities: tuple[float, ...] | None
    kv: str

    def render(self) -> str:
        if self.router == "token_choice":
            router = "token_choice(balance_loss = 0.1, z_loss = 1e-05)"
        else:
            caps = "" if self.capacities is None else "capacities = [" + ", ".join(map(repr, self.capacities)) + "], "
            router = f"expert_choice({caps}alpha = 0.1, aux_loss = 0.001)"
        return (
            f"recursion: mor(recursions = {self.recursions}, sharing = {self.sharing}, router = {router}, "
            f"kv = {self.kv})"
        )


Segment = tuple[int, tuple[int, ...]]  # (repetitions, layer-kind indices)


@dataclass(frozen=True)
class DrawnModel:
    """Everything that was drawn; `source` renders it. Layer kinds are bound with `let l<i> = ...`."""

    name: str
    vocab: int
    d: int
    dtype: str
    kinds: tuple[LayerSpec, ...]
    segments: tuple[Segment, ...]
    overrides: tuple[tuple[int, int, int], ...] = ()  # (start, stop, kind): override layers[start..stop]
    shares: tuple[ShareSpec, ...] = ()
    recursion: MoRSpec | None = None
    budgets: tuple[str, ...] = ()
    norm: str | None = "RMSNorm(d)"
    final_norm: str | None = "RMSNorm(d, eps = 1e-05)"
    tied: bool | None = True
    context: int | None = None
    import_style: tuple[tuple[str, str], ...] = ()  # module -> "from" | "import" | "alias"
    reps_param: bool = False

    @property
    def layers(self) -> tuple[LayerSpec, ...]:
        """The flattened layer list after repetition and overrides."""
        kinds = [k for reps, unit in self.segments for k in reps * unit]
        for start, stop, kind in self.overrides:
            kinds[start:stop] = [kind] * (stop - start)
        return tuple(self.kinds[k] for k in kinds)

    @property
    def source(self) -> str:
        return render(self)

    def without_shares(self) -> DrawnModel:
        return dataclasses.replace(self, shares=())

    def without_recursion(self) -> DrawnModel:
        return dataclasses.replace(self, recursion=None)

    def with_budgets(self, lines: Sequence[str]) -> DrawnModel:
        return dataclasses.replace(self, budgets=tuple(lines))


# ---- rendering ----------------------------------------------------------------------------------------------


def _qualifiers(m: DrawnModel) -> dict[str, str]:
    prefix = {"import": "{m}.", "alias": "std_{m}."}
    return {mod: prefix[style].format(m=mod) if style in prefix else "" for mod, style in m.import_style}


def _ops_used(m: DrawnModel) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {"norms": {"RMSNorm", "LayerNorm"}, "embedding": {"Embedding", "LMHead"}}
    for layer in m.kinds:
        for sub in layer:
            used.setdefault(sub.op.module, set()).add(sub.op.name)
    return used


def _imports(m: DrawnModel, body: str) -> list[str]:
    """The imports of the operators that `body` uses (an unused import is warning W0002)."""
    styles = dict(m.import_style)
    lines = []
    for mod, names in sorted(_ops_used(m).items()):
        style = "from" if mod in ("norms", "embedding") else styles.get(mod, "from")
        used = sorted(n for n in names if re.search(rf"\b{n}\(", body))
        if not used:
            continue
        if style == "from":
            lines.append(f"from std.{mod} import {', '.join(used)}")
        else:
            lines.append(f"import std.{mod}" + (f" as std_{mod}" if style == "alias" else ""))
    return lines


def _layers_expr(m: DrawnModel) -> str:
    parts = []
    for i, (reps, unit) in enumerate(m.segments):
        listed = "[" + ", ".join(f"l{k}" for k in unit) + "]"
        count = "reps" if i == 0 and m.reps_param and reps > 1 else str(reps)
        parts.append(listed if reps == 1 and count != "reps" else f"{count} * {listed}")
    return " + ".join(parts)


def _fields(m: DrawnModel) -> list[str]:
    tied = "" if m.tied is None else f", tied = {'true' if m.tied else 'false'}"
    lines = ["embedding: Embedding(vocab, d)"]
    lines += [f"norm: {m.norm}"] if m.norm else []
    lines += [f"layers: {_layers_expr(m)}"]
    lines += [m.recursion.render()] if m.recursion else []
    lines += [f"final_norm: {m.final_norm}"] if m.final_norm else []
    lines += [f"head: LMHead(vocab, d{tied})", f"dtype: {m.dtype}"]
    return lines + ([f"context: {m.context}"] if m.context is not None else [])


def _override(start: int, stop: int, kind: int) -> str:
    where = f"{start}" if stop == start + 1 else f"{start}..{stop}"
    return f"override layers[{where}]: l{kind}"


def render(m: DrawnModel) -> str:
    """The .liv text of a drawn model."""
    qualify = _qualifiers(m)
    reps = m.segments[0][0] if m.segments else 1
    params = f"vocab: int = {m.vocab}, d: int = {m.d}" + (f", reps: int = {reps}" if m.reps_param and reps > 1 else "")
    named = {k for _, unit in m.segments for k in unit} | {kind for _, _, kind in m.overrides}
    body = [
        f"let l{i} = " + " + ".join(s.render(qualify) for s in layer)
        for i, layer in enumerate(m.kinds)
        if i in named  # an unused `let` is warning W0005
    ]
    body += _fields(m) + [_override(*o) for o in m.overrides] + [s.render() for s in m.shares]
    if m.budgets:
        body += ["budget {"] + [f"    {b}" for b in m.budgets] + ["}"]
    header = _imports(m, "\n".join(body)) + ["", f"model {m.name}({params}) {{"]
    lines = header + [f"    {line}" for line in body] + ["}", ""]
    return "\n".join(lines)


# ---- operators ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attention:
    """The head layout of a softmax-attention LIV (GQA / MHA / MQA / SWA): its feature groups k and v are
    [kv_heads, head_dim] repeated to [heads, head_dim]; it caches kv_heads * head_dim elements per group and
    token, for the last `window` tokens (None: all)."""

    heads: int
    kv_heads: int
    head_dim: int
    window: int | None

    @property
    def layout(self) -> tuple[int, int, int]:
        """What `share features k, v` needs to match: the stored and the repeated K/V head layout."""
        return self.heads, self.kv_heads, self.head_dim


@dataclass(frozen=True)
class OpSpec:
    """One LIV instance `Name(d, key = value, ...)` (values as .liv text) and what sharing needs to know."""

    name: str
    module: str
    args: tuple[tuple[str, str], ...] = ()
    attention: Attention | None = None
    featurizer: bool = True

    def render(self, qualify: dict[str, str]) -> str:
        return f"{qualify.get(self.module, '')}{self.name}(d" + "".join(f", {k} = {v}" for k, v in self.args) + ")"


def _b(flag: bool) -> str:
    return "true" if flag else "false"


def _args(draw: DrawFn, required: dict[str, str], optional: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The required arguments plus a drawn subset of the optional ones (each valid, or valid as a default)."""
    return tuple(required.items()) + tuple((k, v) for k, v in optional.items() if draw(st.booleans()))


def _divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0]


@st.composite
def head_layouts(draw: DrawFn, d: int, even: bool) -> tuple[int, int]:
    """(heads, head_dim): head_dim is d // heads (the stdlib default) or explicit; even if `even` (RoPE)."""
    heads = draw(st.integers(1, 8))
    default = d // heads
    if d % heads == 0 and (default % 2 == 0 or not even) and draw(st.booleans()):
        return heads, default
    return heads, draw(st.sampled_from((2, 4, 6, 8, 16)) if even else st.integers(1, 16))


def _head_dim_arg(draw: DrawFn, d: int, heads: int, head_dim: int) -> dict[str, str]:
    """The head_dim argument: required unless it is the default d // heads (which needs heads | d)."""
    return {"head_dim": str(head_dim)} if heads * head_dim != d or draw(st.booleans()) else {}


def _attention_kinds(heads: int, kv_heads: int, window: int | None) -> list[str]:
    """The softmax-attention LIVs that can have this K/V head layout and window."""
    return (
        ["GQA"]
        + (["SWA"] if window is not None else [])
        + (["MHA"] if kv_heads == heads else [])
        + (["MQA"] if kv_heads == 1 else [])
    )


@st.composite
def kv_layouts(draw: DrawFn, d: int, even: bool) -> tuple[int, int, int]:
    """(heads, kv_heads, head_dim) with kv_heads dividing heads."""
    heads, head_dim = draw(head_layouts(d, even))
    return heads, draw(st.sampled_from(_divisors(heads))), head_dim


@st.composite
def softmax_attention(
    draw: DrawFn, d: int, layout: tuple[int, int, int] | None = None, windows: Strategy[int | None] | None = None
) -> OpSpec:
    """GQA / MHA / MQA / SWA with a drawn (heads, kv_heads, head_dim) layout, or the given one, and a window
    from `windows` (default: none or 1..64)."""
    rope = draw(st.booleans()) and (layout is None or layout[2] % 2 == 0)
    heads, kv_heads, head_dim = layout or draw(kv_layouts(d, even=rope))
    window = draw(windows if windows is not None else st.one_of(st.none(), st.integers(1, 64)))
    name = draw(st.sampled_from(_attention_kinds(heads, kv_heads, window)))
    required = {"heads": str(heads)} | _head_dim_arg(draw, d, heads, head_dim) | ({} if rope else {"rope": "false"})
    required |= {} if window is None else {"window": str(window)}
    required |= {"kv_heads": str(kv_heads)} if name in ("GQA", "SWA") else {}
    optional = {
        "qk_norm": _b(draw(st.booleans())),
        "bias": _b(draw(st.booleans())),
        "rope_theta": draw(st.sampled_from(("10000.0", "1M", "5e5"))),
    }
    optional |= {"window": "none"} if window is None else {}
    return OpSpec(
        name=name,
        module="attention",
        args=_args(draw, required, optional),
        attention=Attention(heads=heads, kv_heads=kv_heads, head_dim=head_dim, window=window),
    )


@st.composite
def linear_attention(draw: DrawFn, d: int) -> OpSpec:
    heads, head_dim = draw(head_layouts(d, even=False))
    explicit = _head_dim_arg(draw, d, heads, head_dim)
    optional = {
        "feature_map": draw(st.sampled_from(("elu_plus_one", "relu_map", "identity_map"))),
        "normalize": _b(draw(st.booleans())),
        "bias": _b(draw(st.booleans())),
    }
    return OpSpec(
        name="LinearAttention", module="attention", args=_args(draw, {"heads": str(heads)} | explicit, optional)
    )


@st.composite
def gla(draw: DrawFn, d: int) -> OpSpec:
    heads = draw(st.sampled_from((1, 2, 4, 8)))
    defaults_ok = (d // 2) % heads == 0 and d % heads == 0
    required = {"heads": str(heads)}
    if not defaults_ok or draw(st.booleans()):
        required |= {"key_dim": str(heads * draw(st.integers(1, 4))), "value_dim": str(heads * draw(st.integers(1, 4)))}
    optional = {
        "gate_rank": str(draw(st.integers(1, 16))),
        "gate_normalizer": str(draw(st.integers(1, 16))),
        "norm_eps": "1e-06",
    }
    return OpSpec(name="GLA", module="recurrence", args=_args(draw, required, optional))


@st.composite
def mamba(draw: DrawFn, d: int) -> OpSpec:
    optional = {
        "inner": str(draw(st.integers(1, 2 * d))),
        "state": str(draw(st.integers(1, 16))),
        "dt_rank": str(draw(st.integers(1, 8))),
        "kernel": str(draw(st.integers(1, 4))),
    }
    return OpSpec(name="Mamba", module="recurrence", args=_args(draw, {}, optional))


@st.composite
def hyena(draw: DrawFn, d: int) -> OpSpec:
    optional = {
        "order": str(draw(st.sampled_from((2, 3)))),
        "filter_order": str(draw(st.integers(1, 16))),
        "short_kernel": str(draw(st.integers(1, 4))),
        "emb_dim": str(draw(st.sampled_from((3, 5, 7)))),
        "bias": _b(draw(st.booleans())),
    }
    return OpSpec(name="Hyena", module="hyena", args=_args(draw, {}, optional))


@st.composite
def hyena_xy(draw: DrawFn, d: int) -> OpSpec:
    bias = {"bias": _b(draw(st.booleans()))}
    if draw(st.booleans()):
        short = {"short_kernel": str(draw(st.integers(1, 4)))}
        return OpSpec(name="HyenaX", module="hyena", args=_args(draw, {}, short | bias))
    kernel = {"kernel": str(draw(st.integers(3, 128)))}
    return OpSpec(name="HyenaY", module="hyena", args=_args(draw, {}, kernel | bias))


@st.composite
def hyena_striped(draw: DrawFn, d: int) -> OpSpec:
    """Hyena-SE / -MR (filter groups dividing d; the default d // 16 only where it is valid) and Hyena-LI."""
    name = draw(st.sampled_from(("HyenaSE", "HyenaMR", "HyenaLI")))
    optional = {"short_kernel": str(draw(st.integers(1, 4))), "bias": _b(draw(st.booleans()))}
    if name == "HyenaLI":
        optional["state"] = str(draw(st.integers(1, 8)))
        return OpSpec(name=name, module="hyena", args=_args(draw, {}, optional))
    optional["inner"] = str(draw(st.integers(1, 9)))
    groups = {"groups": str(draw(st.sampled_from(_divisors(d))))}
    default_ok = d % 16 == 0  # the default groups d // 16 need 16 | d
    required, optional = ({}, optional | groups) if default_ok else (groups, optional)
    return OpSpec(name=name, module="hyena", args=_args(draw, required, optional))


@st.composite
def short_conv(draw: DrawFn, d: int) -> OpSpec:
    optional = {"kernel": str(draw(st.integers(1, 5))), "bias": _b(draw(st.booleans()))}
    return OpSpec(name="GatedShortConv", module="conv", args=_args(draw, {}, optional))


@st.composite
def mlp(draw: DrawFn, d: int) -> OpSpec:
    name = draw(st.sampled_from(("SwiGLU", "GLU")))
    return OpSpec(
        name=name,
        module="mlp",
        args=_args(draw, {"hidden": str(draw(st.integers(1, 96)))}, {"bias": _b(draw(st.booleans()))}),
    )


@st.composite
def moe(draw: DrawFn, d: int) -> OpSpec:
    experts = draw(st.integers(1, 8))
    required = {
        "experts": str(experts),
        "top_k": str(draw(st.integers(1, experts))),
        "hidden": str(draw(st.integers(1, 32))),
    }
    return OpSpec(
        name="MoE", module="mlp", args=_args(draw, required, {"shared": str(draw(st.integers(0, 2)))}), featurizer=False
    )


_OPERATORS = (softmax_attention, linear_attention, gla, mamba, hyena, hyena_xy, hyena_striped, short_conv, mlp, moe)
MODULES = ("attention", "conv", "hyena", "mlp", "recurrence")


def operators(d: int, softmax: bool = True) -> Strategy[OpSpec]:
    """Any stdlib LIV, with arguments valid at width d (softmax attention three times as often as another;
    never with `softmax=False`)."""
    if not softmax:
        return st.one_of(*(make(d) for make in _OPERATORS if make is not softmax_attention))
    return st.one_of(*(make(d) for make in _OPERATORS), softmax_attention(d), softmax_attention(d))


# ---- sharing ----------------------------------------------------------------------------------------------------

Ref = tuple[int, int | None]  # layers[i] (None) or layers[i][j]


@dataclass(frozen=True)
class ShareSpec:
    kind: str  # weights | featurizer | features
    source: Ref
    targets: tuple[Ref, ...]
    groups: tuple[str, ...] = ()

    def render(self) -> str:
        groups = " " + ", ".join(self.groups) if self.groups else ""
        return f"share {self.kind}{groups} from {_ref(self.source)} to " + ", ".join(map(_ref, self.targets))


def _ref(ref: Ref) -> str:
    return f"layers[{ref[0]}]" + ("" if ref[1] is None else f"[{ref[1]}]")


@dataclass
class _Used:
    sources: set[tuple[int, int]] = dataclasses.field(default_factory=set)
    targets: set[tuple[int, int]] = dataclasses.field(default_factory=set)


def _subs(layers: Sequence[LayerSpec], ref: Ref) -> set[tuple[int, int]]:
    return {(ref[0], j) for j in range(len(layers[ref[0]]))} if ref[1] is None else {(ref[0], ref[1])}


def _compatible(kind: str, a: SublayerSpec, b: SublayerSpec) -> bool:
    if kind == "weights":
        return a == b
    if kind == "featurizer":
        return a.op == b.op and a.op.featurizer
    x, y = a.op.attention, b.op.attention
    return x is not None and y is not None and x.layout == y.layout


def _refs(layers: Sequence[LayerSpec], whole: bool) -> list[Ref]:
    return (
        [(i, None) for i in range(len(layers))]
        if whole
        else [(i, j) for i, layer in enumerate(layers) for j in range(len(layer))]
    )


def _fits(layers: Sequence[LayerSpec], kind: str, src: Ref, dst: Ref) -> bool:
    if src == dst:
        return False
    if src[1] is None:
        return layers[src[0]] == layers[dst[0]]
    assert dst[1] is not None
    return _compatible(kind, layers[src[0]][src[1]], layers[dst[0]][dst[1]]) and (kind != "features" or src[0] < dst[0])


def _options(layers: Sequence[LayerSpec], kind: str, whole: bool, used: _Used) -> list[tuple[Ref, list[Ref]]]:
    """Each free source with the free targets it may share `kind` with."""
    out = []
    for src in _refs(layers, whole):
        if _subs(layers, src) & used.targets:
            continue
        blocked = used.targets | used.sources | _subs(layers, src)
        targets = [t for t in _refs(layers, whole) if not _subs(layers, t) & blocked and _fits(layers, kind, src, t)]
        if targets:
            out.append((src, targets))
    return out


GROUPS = (("k", "v"), ("v", "k"))  # an attention's K and V come from one cache: never just one of them
_SHARE_KINDS = (("weights", True), ("weights", False), ("featurizer", False), ("features", False))


@st.composite
def shares(
    draw: DrawFn,
    layers: tuple[LayerSpec, ...],
    first: tuple[str, ...] = (),
    groups: tuple[tuple[str, ...], ...] = GROUPS,
) -> tuple[ShareSpec, ...]:
    """0..3 share declarations. With `first`, at least one, the first of one of those kinds (the caller
    makes sure that one is possible). `share features` shares one of `groups`."""
    used, out = _Used(), []
    for i in range(draw(st.integers(1 if first else 0, 3))):
        kinds = [(kind, whole) for kind, whole in _SHARE_KINDS if i > 0 or not first or kind in first]
        options = [
            (kind, whole, src, tgts) for kind, whole in kinds for src, tgts in _options(layers, kind, whole, used)
        ]
        if not options:
            break
        kind, _, src, tgts = draw(st.sampled_from(options))
        chosen = tuple(draw(st.lists(st.sampled_from(tgts), min_size=1, max_size=3, unique=True)))
        names = draw(st.sampled_from(groups)) if kind == "features" else ()
        used.sources |= _subs(layers, src)
        used.targets |= {s for t in chosen for s in _subs(layers, t)}
        out.append(ShareSpec(kind=kind, source=src, targets=chosen, groups=names))
    return tuple(out)


# ---- layers ---------------------------------------------------------------------------------------------------


@st.composite
def sublayers(draw: DrawFn, d: int, softmax: bool = True) -> SublayerSpec:
    op = draw(operators(d, softmax))
    wrapper = draw(st.one_of(st.none(), st.sampled_from(_WRAPPERS)))
    return SublayerSpec(op=op, wrapper=wrapper)


@st.composite
def layer_kinds(draw: DrawFn, d: int, softmax: bool = True) -> tuple[LayerSpec, ...]:
    """1..3 distinct-by-index layer kinds, each one or two sublayers joined with `+`."""
    count = draw(st.integers(1, 3))
    return tuple(tuple(draw(st.lists(sublayers(d, softmax), min_size=1, max_size=2))) for _ in range(count))


@st.composite
def plain_segments(draw: DrawFn, kinds: int, repeated: bool) -> tuple[Segment, ...]:
    """Segments of at most MAX_LAYERS layers; `repeated` makes the first segment repeat (duplicate layers)."""
    segments: list[Segment] = []
    room = MAX_LAYERS
    while room > 0 and (not segments or draw(st.booleans())):
        width = draw(st.integers(1, min(3, room if not (repeated and not segments) else room // 2)))
        low = 2 if repeated and not segments else 1
        reps = draw(st.integers(low, max(low, room // width)))
        segments.append((reps, tuple(draw(st.lists(st.integers(0, kinds - 1), min_size=width, max_size=width)))))
        room -= reps * width
    return tuple(segments)


@st.composite
def overrides(draw: DrawFn, n_layers: int, kinds: int) -> tuple[tuple[int, int, int], ...]:
    if not draw(st.booleans()):
        return ()
    start = draw(st.integers(0, n_layers - 1))
    stop = draw(st.integers(start + 1, n_layers))
    return ((start, stop, draw(st.integers(0, kinds - 1))),)


# ---- Mixture-of-Recursions --------------------------------------------------------------------------------------


@st.composite
def mor_specs(draw: DrawFn) -> MoRSpec:
    recursions = draw(st.integers(1, 3))
    router = draw(st.sampled_from(("expert_choice", "token_choice")))
    caps = None
    if router == "expert_choice" and draw(st.booleans()):
        drawn = draw(st.lists(st.sampled_from(_GRID), min_size=recursions, max_size=recursions))
        caps = tuple(sorted(drawn, reverse=True))
    sharing = draw(st.sampled_from(("cycle", "sequence", "middle_cycle", "middle_sequence")))
    return MoRSpec(
        recursions=recursions,
        sharing=sharing,
        router=router,
        capacities=caps,
        kv=draw(st.sampled_from(("recursion_wise", "kv_share"))),
    )


@st.composite
def mor_segments(draw: DrawFn, mor: MoRSpec, kinds: int) -> tuple[Segment, ...]:
    """The unrolled layer list of a MoR model: step r repeats step 0 (cycle: U U U; sequence: a a b b)."""
    unique = 2 if mor.sharing.startswith("middle") else 0
    block = draw(st.integers(1, (MAX_LAYERS - unique) // mor.recursions))
    unit = tuple(draw(st.lists(st.integers(0, kinds - 1), min_size=block, max_size=block)))
    core: list[Segment] = (
        [(mor.recursions, unit)] if mor.sharing.endswith("cycle") else [(mor.recursions, (k,)) for k in unit]
    )
    if not unique:
        return tuple(core)
    first, last = draw(st.integers(0, kinds - 1)), draw(st.integers(0, kinds - 1))
    return ((1, (first,)), *core, (1, (last,)))


# ---- whole models -----------------------------------------------------------------------------------------------


def _n_layers(segments: Sequence[Segment]) -> int:
    return sum(reps * len(unit) for reps, unit in segments)


def _budgets_within(context: int | None) -> list[str]:
    """The budgets whose `seq` fits the model's context (a longer one is warning W0003)."""
    seqs = {b: int(m[1]) * 1000 if (m := re.search(r"seq = (\d+)K", b)) else 0 for b in _BUDGETS}
    return [b for b in _BUDGETS if context is None or seqs[b] <= context]


@st.composite
def _header(draw: DrawFn) -> DrawnModel:
    """A model without layers: name, widths, dtype, norms, head, context, budgets."""
    d = draw(st.sampled_from(WIDTHS))
    context = draw(st.sampled_from((None, 2048, 32000)))
    return DrawnModel(
        name=draw(st.sampled_from(("M", "Hybrid", "Tiny_LM", "StarNet2"))),
        vocab=draw(st.integers(1, 64)),
        d=d,
        dtype=draw(st.sampled_from(DTYPES)),
        kinds=(),
        segments=(),
        norm=draw(st.sampled_from(("RMSNorm(d)", "LayerNorm(d)", "RMSNorm(d, eps = 1e-06)", None))),
        final_norm=draw(st.sampled_from(("RMSNorm(d, eps = 1e-05)", "LayerNorm(d, bias = false)", None))),
        tied=draw(st.sampled_from((True, False, None))),
        context=context,
        budgets=tuple(draw(st.lists(st.sampled_from(_budgets_within(context)), max_size=3, unique=True))),
        import_style=tuple((mod, draw(st.sampled_from(("from", "from", "import", "alias")))) for mod in MODULES),
    )


@st.composite
def drawn_models(draw: DrawFn, mor: bool | None = None, sharing: bool | None = None) -> DrawnModel:
    """A valid model. `mor`: force (True) or forbid (False) a `recursion` field; None draws it.
    `sharing`: True forces at least one share declaration (and forbids MoR), False forbids them."""
    use_mor = False if sharing else draw(st.integers(0, 2)) == 0 if mor is None else mor
    model = draw(_header())
    kinds = draw(layer_kinds(model.d))
    model = dataclasses.replace(model, kinds=kinds)
    if use_mor:
        spec = draw(mor_specs())
        return dataclasses.replace(model, recursion=spec, segments=draw(mor_segments(spec, len(kinds))))
    segments = draw(plain_segments(len(kinds), bool(sharing)))
    n = _n_layers(segments)
    model = dataclasses.replace(
        model,
        segments=segments,
        reps_param=draw(st.booleans()),
        overrides=() if sharing else draw(overrides(n, len(kinds))),
    )
    if sharing is False:
        return model
    first = ("weights", "featurizer", "features") if sharing else ()
    return dataclasses.replace(model, shares=draw(shares(model.layers, first)))


@st.composite
def attention_layers(draw: DrawFn, d: int, layout: tuple[int, int, int], windows: Strategy[int | None]) -> LayerSpec:
    """A softmax-attention sublayer of the given K/V head layout, maybe followed by another (non-softmax)
    sublayer."""
    attention = SublayerSpec(
        op=draw(softmax_attention(d, layout, windows)), wrapper=draw(st.sampled_from((None, *_WRAPPERS)))
    )
    return (attention, *draw(st.lists(sublayers(d, softmax=False), max_size=1)))


@st.composite
def kv_sharing_models(draw: DrawFn, same_window: bool = False) -> DrawnModel:
    """A model with 2..4 softmax-attention layers of one K/V head layout (their kinds, RoPE, QK-norm, wrappers
    and, unless `same_window`, windows vary) among layers without softmax attention, and at least one
    `share features` declaration (the first)."""
    model = draw(_header())
    layout = draw(kv_layouts(model.d, even=draw(st.booleans())))
    windows = st.one_of(st.none(), st.integers(1, 64))
    windows = st.just(draw(windows)) if same_window else windows
    n_attention = draw(st.integers(2, 4))
    kinds = tuple(draw(attention_layers(model.d, layout, windows)) for _ in range(n_attention))
    kinds += draw(layer_kinds(model.d, softmax=False))
    others = draw(st.lists(st.integers(n_attention, len(kinds) - 1), max_size=MAX_LAYERS - n_attention))
    order = draw(st.permutations(list(range(n_attention)) + others))
    model = dataclasses.replace(model, kinds=kinds, segments=((1, tuple(order)),))
    return dataclasses.replace(model, shares=draw(shares(model.layers, ("features",))))


@cache
def liv_sources() -> Strategy[str]:
    """The .liv text of a valid model."""
    return drawn_models().map(lambda m: m.source)


@cache
def sources_with_metadata() -> Strategy[tuple[str, DrawnModel]]:
    """(source text, what was drawn)."""
    return drawn_models().map(lambda m: (m.source, m))


__all__ = [
    "Attention",
    "DrawnModel",
    "LayerSpec",
    "MoRSpec",
    "OpSpec",
    "Ref",
    "ShareSpec",
    "SublayerSpec",
    "drawn_models",
    "kv_sharing_models",
    "liv_sources",
    "render",
    "sources_with_metadata",
]
