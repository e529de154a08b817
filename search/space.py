"""The search space: operator classes over the standard library, and the backbone they fill.

    space = SearchSpace(width=128, slots=4, per_layer=2, pattern=("*", "GMemless"))

A `SearchSpace` has `slots` LIV slots. Slot `s` is sublayer `s % per_layer` of layer `s // per_layer`,
each sublayer in a pre-norm residual (`layout = "pre_norm"`, the only layout). `pattern` cycles over
the slots and names the classes each may take ("*" = every class; e.g. `("*", "GMemless")` is the
STAR/LFM2 [operator, SwiGLU] alternation); without a pattern every slot takes every class.

An `OpClass` is a STAR LIV class mapped onto one stdlib LIV (`Ctor`): its hyper genes are keyword
arguments (`Hyper(name, values)`, the gene is an index into `values`); `fg_strategies` lists the
feature-group sharing strategies legal for the class (strategy i + 1 shares the groups
`fg_strategies[i]`, 0 shares none); `featurizer` says whether featurizer sharing is legal. A hyper
flagged `featurizer` shapes featurizer weights (equal across a featurizer-sharing group), one flagged
`features` shapes a shareable feature group (equal across a feature-sharing group): repair copies it
from the group's source.

`default_pool(width)` is the STAR-like pool (class names below). Feature-group sharing is offered
for the attention classes only: SA-1, SA-2 and SWA ({k, v}) and DiffSA ({k1, k2, v}; each of its two attentions
reads its own owner's cache entry, tests/test_kv_share_multi.py): the PyTorch backend shares features only into
attention (BackendError otherwise), so SEARCH-NOTES' conv-gate / Mamba {b, c} / SwiGLU {w1} strategies wait
for backend support; featurizer sharing is offered for every class with a featurizer.
Invalid spaces raise ValueError (search/config.py turns it into E0801). Non-goals: classes built from
several LIVs per slot, searched norms or residual wrappers, widths that change inside a backbone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

Literal = int | float | bool


@dataclass(frozen=True)
class Hyper:
    """One hyper gene: a keyword argument of the class's LIV and its legal values."""

    name: str
    values: tuple[int, ...]
    featurizer: bool = False
    features: bool = False

    def __post_init__(self) -> None:
        if not self.values or len(set(self.values)) != len(self.values):
            raise ValueError(f"hyper '{self.name}' needs distinct values, got {self.values}")


@dataclass(frozen=True)
class Ctor:
    """How a slot of the class is written: `liv(d, **fixed, **hypers)`, imported from `module`."""

    module: str
    liv: str
    fixed: tuple[tuple[str, Literal], ...] = ()


@dataclass(frozen=True)
class OpClass:
    name: str
    ctor: Ctor
    hypers: tuple[Hyper, ...] = ()
    fg_strategies: tuple[tuple[str, ...], ...] = ()
    featurizer: bool = True


@dataclass(frozen=True)
class Sharing:
    """Which STAR sharing genes are searched (off: the genes are fixed at 'none')."""

    featurizer: bool = True
    features: bool = True


LAYOUTS = ("pre_norm",)


@dataclass(frozen=True)
class SearchSpace:
    """`classes` default to `default_pool(width)`; classes given explicitly must be built for this width
    (their hyper values are absolute widths)."""

    width: int = 64
    slots: int = 4
    vocab: int = 64
    classes: tuple[OpClass, ...] = ()
    sharing: Sharing = field(default_factory=Sharing)
    seeds: tuple[str, ...] = ()
    layout: str = "pre_norm"
    per_layer: int = 1
    pattern: tuple[tuple[str, ...], ...] = ()
    context: int | None = None
    dtype: str | None = None

    def __post_init__(self) -> None:
        if not self.classes:
            object.__setattr__(self, "classes", default_pool(self.width))
        object.__setattr__(self, "sharing", _sharing(self.sharing))
        object.__setattr__(self, "pattern", _pattern(self.pattern))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        _validate(self)

    def allowed(self, slot: int) -> tuple[int, ...]:
        """Indices into `classes` that slot `slot` may take."""
        if not self.pattern:
            return tuple(range(len(self.classes)))
        names = self.pattern[slot % len(self.pattern)]
        if "*" in names:
            return tuple(range(len(self.classes)))
        return tuple(i for i, c in enumerate(self.classes) if c.name in names)

    def ref(self, slot: int) -> tuple[int, int]:
        """(layer, sublayer) of a slot."""
        return divmod(slot, self.per_layer)

    def class_index(self, name: str) -> int:
        for i, c in enumerate(self.classes):
            if c.name == name:
                return i
        raise ValueError(f"no operator class '{name}' in this space")


def _sharing(value: object) -> Sharing:
    if isinstance(value, Sharing):
        return value
    if isinstance(value, bool):
        return Sharing(featurizer=value, features=value)
    if isinstance(value, Mapping):
        unknown = set(value) - {"featurizer", "features"}
        if unknown:
            raise ValueError(f"sharing takes featurizer and features, not {sorted(unknown)}")
        return Sharing(**{k: bool(v) for k, v in value.items()})
    raise ValueError(f"sharing must be a bool or a table, not {type(value).__name__}")


def _pattern(value: object) -> tuple[tuple[str, ...], ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError("pattern must be a list of class names or lists of class names")
    return tuple((p,) if isinstance(p, str) else tuple(p) for p in value)


def _validate(space: SearchSpace) -> None:
    for name in ("width", "slots", "vocab", "per_layer"):
        value = getattr(space, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if space.layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {space.layout!r}")
    if space.slots % space.per_layer:
        raise ValueError(f"slots ({space.slots}) must be a multiple of per_layer ({space.per_layer})")
    names = [c.name for c in space.classes]
    if len(set(names)) != len(names):
        raise ValueError(f"operator class names must be distinct: {names}")
    known = set(names) | {"*"}
    for entry in space.pattern:
        bad = [n for n in entry if n not in known]
        if bad or not entry:
            raise ValueError(f"pattern entry {list(entry)} names unknown classes {bad} (classes: {', '.join(names)})")
    if space.context is not None and space.context < 1:
        raise ValueError(f"context must be positive, got {space.context}")
    if space.dtype not in (None, "f32", "bf16", "f16"):
        raise ValueError(f"dtype must be f32, bf16 or f16, got {space.dtype!r}")


# ---- the default pool ---------------------------------------------------------------------------


def _heads(width: int) -> int:
    """Attention heads: the most of 16, 12, 8, 4, 2, 1 that divide width into an even head_dim (RoPE)
    of at least min(64, width / 8)."""
    floor = min(64, max(2, width // 8))
    fits = [h for h in (16, 12, 8, 4, 2, 1) if width % h == 0 and width // h % 2 == 0]
    return next((h for h in fits if width // h >= floor), fits[-1])


def _kv_heads(heads: int) -> tuple[int, ...]:
    """K/V head counts with a repeat factor of at most 8 (STAR SA-1 / SA-4 / SA-3 = x1 / x2 / x4)."""
    return tuple(k for k in range(heads, 0, -1) if heads % k == 0 and heads // k <= 8)


def _distinct(values: Sequence[int]) -> tuple[int, ...]:
    return tuple(sorted({v for v in values if v >= 1}))


def _swiglu_widths(width: int) -> tuple[int, ...]:
    """2d, 8d/3 rounded up to a multiple of 64 (the Llama rule), 4d."""
    llama = -(-8 * width // (3 * 64)) * 64
    return _distinct([2 * width, llama, 4 * width])


KV = ("k", "v")
DIFF_KV = ("k1", "k2", "v")  # DiffGQA: both key streams and the value stream (two attentions, one owner each)


def _attention(width: int) -> tuple[OpClass, ...]:
    h = _heads(width)
    kv = Hyper("kv_heads", _kv_heads(h), featurizer=True, features=True)
    heads = (("heads", h),)
    return (
        OpClass("SA-1", Ctor("std.attention", "GQA", heads), (kv,), (KV,)),
        OpClass(
            "SA-2",
            Ctor("std.search_pool", "ConvGQA", heads),
            (kv, Hyper("short_kernel", (3, 4), featurizer=True)),
            (KV,),
        ),
        OpClass(
            "SWA", Ctor("std.attention", "SWA", heads), (Hyper("window", (32, 64, 128, 256), features=True), kv), (KV,)
        ),
        OpClass("DiffSA", Ctor("std.search_pool", "DiffGQA", heads), (kv,), (DIFF_KV,)),
        OpClass(
            "LinAttn",
            Ctor("std.attention", "LinearAttention"),
            (Hyper("heads", _distinct([h, max(1, h // 2)])[::-1], features=True),),
        ),
    )


def _recurrences(width: int) -> tuple[OpClass, ...]:
    gla_heads = 4 if width % 8 == 0 else 1
    return (
        OpClass(
            "Rec-1",
            Ctor("std.recurrence", "Mamba"),
            (Hyper("inner", (2 * width, width), featurizer=True), Hyper("state", (16, 8, 32), True, True)),
        ),
        OpClass(
            "Rec-2",
            Ctor("std.recurrence", "GLA", (("heads", gla_heads),)),
            (Hyper("key_dim", (width // 2, width), True, True),),
        ),
    )


def _convolutions() -> tuple[OpClass, ...]:
    return (
        OpClass("GConv-1", Ctor("std.conv", "GatedShortConv"), (Hyper("kernel", (3, 4, 7)),)),
        OpClass(
            "GConv-2",
            Ctor("std.hyena", "Hyena", (("order", 2),)),
            (Hyper("filter_order", (64, 16, 32)),),
        ),
        OpClass("HyenaX", Ctor("std.hyena", "HyenaX"), (Hyper("short_kernel", (4, 3, 7), featurizer=True),)),
        OpClass("HyenaY", Ctor("std.hyena", "HyenaY"), (Hyper("kernel", (4, 3, 7, 16, 32, 64, 128)),)),
        OpClass(
            "DiffGConv",
            Ctor("std.search_pool", "DiffGatedShortConv"),
            (Hyper("kernel", (3, 4, 7)),),
        ),
    )


def _memoryless(width: int) -> tuple[OpClass, ...]:
    hidden = _swiglu_widths(width)
    return (
        OpClass("GMemless", Ctor("std.mlp", "SwiGLU"), (Hyper("hidden", hidden, True, True),)),
        OpClass(
            "MoE",
            Ctor("std.mlp", "MoE"),
            (Hyper("experts", (4, 8)), Hyper("top_k", (1, 2)), Hyper("hidden", _distinct([width, 2 * width]))),
            featurizer=False,
        ),
    )


def default_pool(width: int) -> tuple[OpClass, ...]:
    """The STAR-like pool at `width`: SA-1, SA-2, SWA, DiffSA, LinAttn, Rec-1, Rec-2, GConv-1, GConv-2,
    HyenaX, HyenaY, DiffGConv, GMemless, MoE."""
    if not isinstance(width, int) or isinstance(width, bool) or width < 2 or width % 2:
        raise ValueError(f"the default pool needs an even width (RoPE needs an even head_dim), got {width!r}")
    return _attention(width) + _recurrences(width) + _convolutions() + _memoryless(width)


def with_classes(space: SearchSpace, names: Sequence[str]) -> SearchSpace:
    """The same space restricted to the named classes of its pool, in that order."""
    pool = {c.name: c for c in space.classes}
    return dataclasses.replace(space, classes=tuple(pool[n] for n in names))
