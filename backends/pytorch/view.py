"""View model: everything the template needs, computed in Python from an IR model.

Classes are deduplicated by structure (same LIV, arguments and ops -> one class); instances carry
their parameter prefix, wrapper, norm, KV owners (per shared attention: the cache entry it reads) and exported
feature groups. Parameters are created
by each block under their IR ids; sharing becomes `tie(model, target, source)` calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from livc.backends.pytorch.emit_ops import EMITTERS, BackendError, CacheAxis, Ctx, Emitted
from livc.backends.pytorch.inference import InferenceView, inference_view
from livc.backends.pytorch.names import Scope, method_scope, module_scope
from livc.compiler.ir.nodes import Block, Model, Op, Role, Section, TensorType
from livc.compiler.passes.expand import cache_key
from livc.compiler.passes.rewrite import all_blocks, before_repeats

_PREFIX = re.compile(r"^(layers\.\d+\.\d+\.norm|layers\.\d+\.\d+|embedding|head|final_norm)\.(.+)$")
HELPER_ORDER = (
    "base",
    "rmsnorm",
    "layernorm",
    "rope",
    "conv",
    "grouped",
    "attention",
    "scan",
    "linear_attention",
    "selective_scan",
    "long_conv",
    "token_dense",
    "moe",
    "mor",
    "sampling",
)


@dataclass(frozen=True)
class ClassView:
    name: str
    doc: str
    init: tuple[str, ...]
    body: tuple[str, ...]


@dataclass(frozen=True)
class InstanceView:
    prefix: str
    class_name: str
    norm: str | None = None
    wrap: str = "pre_norm"
    kv_owner: tuple[tuple[str, str], ...] = ()  # (attention output, the owner's cache key stem it reads)
    exports: tuple[str, ...] = ()

    def expr(self) -> str:
        args = [f'"{self.prefix}"']
        if self.norm:
            args.append(f"norm={self.norm}")
        if self.wrap != "pre_norm":
            args.append(f'wrap="{self.wrap}"')
        if self.kv_owner:
            args.append(f"kv_owner={dict(self.kv_owner)!r}".replace("'", '"'))
        if self.exports:
            args.append(f"exports={self.exports!r}")
        return f"{self.class_name}({', '.join(args)})"


@dataclass
class ModelView:
    class_name: str
    doc: str
    classes: list[ClassView] = field(default_factory=list)
    helpers: list[str] = field(default_factory=list)
    embedding: str = ""
    layers: list[list[str]] = field(default_factory=list)
    final_norm: str | None = None
    head: str = ""
    ties: list[tuple[str, str]] = field(default_factory=list)
    cache: list[tuple[str, str]] = field(default_factory=list)
    positions: list[CacheAxis] = field(default_factory=list)  # position-indexed cache entries
    inference: InferenceView = field(default_factory=InferenceView)
    has_aux: bool = False
    recursion: list[str] | None = None
    max_len_limit: int | None = None
    prefix_layers: list[int] = field(default_factory=list)
    suffix_layers: list[int] = field(default_factory=list)


def param_base(pid: str, role: str) -> str:
    match = _PREFIX.match(pid)
    if match is None or not match[2].endswith("." + role):
        raise BackendError(f"unexpected parameter id {pid}")
    return match[2][: -len(role) - 1]


def _types(block: Block) -> dict[str, TensorType]:
    types = {block.input.name: block.input.type, "x": block.input.type, "tokens": block.input.type}
    types.update({o.name: o.type for op in block.ops for o in op.outputs})
    return types


def _unrepeated(block: Block) -> dict[str, str]:
    """Every repeat_heads output -> the value it repeats the heads of (through chains of repeats). Attention
    reads K/V before the repeat (grouped heads), so its cache holds kv_heads heads, as the cost model counts."""
    producers = {o.name: op for op in block.ops for o in op.outputs}
    return {
        op.outputs[0].name: before_repeats(op.outputs[0].name, producers)
        for op in block.ops
        if op.prim == "repeat_heads"
    }


def _gqa_aliases(block: Block, unrepeated: dict[str, str]) -> dict[str, str]:
    """repeat_heads whose output only feeds attention K/V (directly or through other such repeats) is not
    materialised. An output also used as a query, or by any other op, is computed."""
    uses: dict[str, list[Op]] = {}
    for op in block.ops:
        for name in op.inputs:
            uses.setdefault(name, []).append(op)
    aliases: dict[str, str] = {}
    for op in reversed(block.ops):
        out = op.outputs[0].name
        if (
            op.prim == "repeat_heads"
            and out != block.output
            and uses.get(out)
            and all((u.prim == "attention" and u.inputs[0] != out) or u.outputs[0].name in aliases for u in uses[out])
        ):
            aliases[out] = unrepeated[out]
    return aliases


def _check_shared_uses(block: Block) -> None:
    """Shared K/V arrive with their stored (un-repeated) heads, so only attention may consume them."""
    shared = {op.outputs[0].name for op in block.ops if op.prim == "shared_feature"}
    for op in block.ops:
        if shared & set(op.inputs) and op.prim != "attention":
            raise BackendError(
                f"{block.name}: shared feature used by {op.prim}; the PyTorch backend shares "
                "features only into attention"
            )


MAX_LINE = 100  # statement width inside a method (8 columns of indentation are added by the template)
LAYER_LINE = 103  # an entry of the layer list: 16 columns of indentation and a comma make 120


def _split_args(text: str) -> list[str]:
    """Split a call's argument text at top-level commas (brackets and quotes respected)."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def wrap_statement(line: str, width: int = MAX_LINE) -> str:
    """Break a call or dict literal longer than `width` one argument per line, recursively."""
    if len(line) <= width or not line.endswith((")", "}")):
        return line
    close = line[-1]
    opener = "(" if close == ")" else "{"
    head, _, rest = line.partition(opener)
    if not rest:
        return line
    args = [wrap_statement(a, width - 4).replace("\n", "\n    ") for a in _split_args(rest[:-1])]
    return head + opener + "\n" + "".join(f"    {a},\n" for a in args) + close


def _section_comment(section: Section) -> str | None:
    if section.role is Role.BODY:
        return None
    if section.role is Role.TOKEN_MIX:
        extra = "".join(f", {a}" for a in (section.nonlinearity, section.sparsity) if a != "none")
        return f"# token mixing: {section.structure}{extra}"
    return f"# {'featurizer' if section.role is Role.FEATURIZER else 'channel mixing'}: {section.structure}"


@dataclass
class BlockEmitter:
    block: Block
    param_shapes: dict[str, tuple[int, ...]]
    exports: tuple[str, ...]
    emitted: list[Emitted] = field(default_factory=list)

    def ctx(self) -> Ctx:
        _check_shared_uses(self.block)
        unrepeated = _unrepeated(self.block)
        aliases = {"tokens": "x", **_gqa_aliases(self.block, unrepeated)}
        c = Ctx(
            types=_types(self.block),
            base=lambda op, role: param_base(dict(op.params)[role], role),
            aliases=aliases,
            locals=block_locals(self.block, aliases),
            unrepeated=unrepeated,
        )
        c.param_shapes = self.param_shapes  # type: ignore[attr-defined]
        return c

    def body(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        ctx = self.ctx()
        init: list[str] = []
        lines: list[str] = []
        for section in self.block.sections:
            comment = _section_comment(section)
            lines += [comment] if comment else []
            for op in section.ops:
                if op.outputs[0].name in ctx.aliases:
                    continue
                em = EMITTERS[op.prim](op, ctx)
                self.emitted.append(em)
                init += [wrap_statement(em.init)] if em.init and wrap_statement(em.init) not in init else []
                lines += [wrap_statement(line) for line in em.lines]
            if section.role is Role.FEATURIZER and self.exports:
                groups = ", ".join(
                    f'"{f.name.split("=")[0]}": {ctx.kv(f.name.split("=")[1])}'
                    for f in self.block.features
                    if f.name.split("=")[0] in self.exports
                )
                lines.append(f"self.export(features, {{{groups}}})")
        lines.append(f"return {ctx.v(self.block.output)}")
        return tuple(init), tuple(lines)

    @property
    def cache(self) -> tuple[tuple[str, str], ...]:
        return tuple(c for em in self.emitted for c in em.cache)

    @property
    def positions(self) -> tuple[CacheAxis, ...]:
        return tuple(a for em in self.emitted for a in em.positions)

    @property
    def helpers(self) -> set[str]:
        return {h for em in self.emitted for h in em.helpers} | {"base"}


def _doc(block: Block) -> str:
    args = ", ".join(f"{k}={v}" for k, v in block.args)
    parts = [f"{s.role.value} {s.structure}" for s in block.sections if s.role is not Role.BODY]
    return f"{block.kind.value} {block.name}({args})" + (": " + "; ".join(parts) if parts else "")


def _class_key(block: Block, exports: tuple[str, ...]) -> object:
    ops = tuple(
        (
            op.prim,
            tuple(op.inputs),
            tuple(o.name for o in op.outputs),
            tuple(r for r, _ in op.params),
            tuple((k, v) for k, v in op.attrs if k not in ("cache_owner", "cache_entry")),
            tuple(param_base(p, r) for r, p in op.params),
            bool(op.attr("cache_owner")),
        )
        for op in block.ops
    )
    return (block.name, block.args, tuple((s.role, s.structure) for s in block.sections), ops, block.output, exports)


def block_locals(block: Block, aliases: dict[str, str]) -> dict[str, str]:
    """The Python local of every IR value of `block` (one `names.method_scope` per forward; the input is `x`).
    Values are renamed where the IR name is a keyword, builtin, runtime name or already taken; a value defined
    twice is an IR bug, reported rather than trusted."""
    scope, names = method_scope(), {block.input.name: "x", "x": "x"}
    for op in block.ops:
        for value in op.outputs:
            if value.name in names:
                raise BackendError(f"{block.name}: IR value %{value.name} is defined twice")
            if value.name not in aliases:
                names[value.name] = scope.claim(value.name)
    _check_params(block)
    return names


def _check_params(block: Block) -> None:
    """Each op owns its parameter ids (sharing across blocks is `tie`); the IR must not reuse one in a block."""
    ids = [pid for op in block.ops for _, pid in op.params]
    repeated = sorted({pid for pid in ids if ids.count(pid) > 1})
    if repeated:
        raise BackendError(f"{block.name}: parameter {repeated[0]} is used by two ops of one block")


def model_class_name(model: Model) -> str:
    """The generated model class: the model's name, unless that would clash (it is claimed first)."""
    return module_scope().claim(model.name)


@dataclass
class Builder:
    model: Model
    view: ModelView
    classes: dict[object, ClassView] = field(default_factory=dict)
    scope: Scope = field(default_factory=module_scope)  # module-level names (classes)
    helpers: set[str] = field(default_factory=set)
    exported: dict[str, set[str]] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.shapes = {p.id: p.shape for p in self.model.params}  # once: build_view is linear in layers

    def instance(self, block: Block, prefix: str) -> str:
        groups = tuple(sorted(self.exported.get(prefix, ())))
        emitter = BlockEmitter(block, self.shapes, groups)
        key = _class_key(block, groups)
        if key not in self.classes:
            self.classes[key] = self._class(block, emitter)
        else:
            emitter.body()
        self.helpers |= emitter.helpers
        self.view.cache += [(f"{prefix}.{name}", shape) for name, shape in emitter.cache]
        self.view.positions += [CacheAxis(f"{prefix}.{a.key}", a.axis, a.window) for a in emitter.positions]
        self._ties(block, prefix)
        kv_owner = self._owner_keys(block, prefix)
        return InstanceView(prefix, self.classes[key].name, kv_owner=kv_owner, exports=groups).expr()

    def _owner_keys(self, block: Block, prefix: str) -> tuple[tuple[str, str], ...]:
        """Each shared attention -> the owner's cache entry it reads (`expand.cache_key`), which an earlier
        layer must have allocated: a missing one is an IR bug, reported rather than read as another entry."""
        owned = {key for key, _ in self.view.cache}
        keys = []
        for op in block.ops:
            stem = cache_key(op) if op.prim == "attention" else None
            if stem is None:
                continue
            if f"{stem}.k" not in owned:
                raise BackendError(f"{prefix}: attention %{op.outputs[0].name} reads cache {stem}, which no layer owns")
            keys.append((op.outputs[0].name, stem))
        return tuple(keys)

    def _class(self, block: Block, emitter: BlockEmitter) -> ClassView:
        init, body = emitter.body()
        cls = ClassView(self.scope.claim(block.name), _doc(block), init, body)
        self.view.classes.append(cls)
        return cls

    def _ties(self, block: Block, prefix: str) -> None:
        for op in block.ops:
            for role, pid in op.params:
                natural = f"{prefix}.{param_base(pid, role)}.{role}"
                if natural != pid:
                    self.view.ties.append((natural, pid))


def _exports(model: Model) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for layer in model.layers:
        for sub in layer.sublayers:
            for op in sub.block.ops:
                if op.prim == "shared_feature":
                    source = re.sub(r"\[(\d+)\]", r".\1", str(op.attr("source"))).lstrip(".")
                    prefix, group = source.rsplit(".", 1)
                    out.setdefault(prefix, set()).add(group)
    return out


def _recursion(model: Model, view: ModelView) -> None:
    rec = model.recursion
    if rec is None:
        return
    args = dict(rec.router_args)
    in_steps = {i for step in rec.steps for i in step}
    first = min(in_steps)
    view.prefix_layers = [i for i in range(len(model.layers)) if i not in in_steps and i < first]
    view.suffix_layers = [i for i in range(len(model.layers)) if i not in in_steps and i > first]
    alpha = args.get("alpha", 0.1 if rec.router == "expert_choice" else 1.0)
    coeff = args.get("aux_loss", args.get("balance_loss", 0.0))
    view.recursion = [
        wrap_statement(arg, MAX_LINE - 4)
        for arg in [
            f"d={model.d_model}",
            f"steps={rec.steps!r}",
            f'kind="{rec.router}"',
            f"capacities={rec.capacities!r}",
            f"alpha={alpha!r}",
            f"aux_coeff={coeff!r}",
            f'kv="{rec.kv}"',
            f"z_loss={args.get('z_loss', 0.0)!r}",
        ]
    ]
    if rec.kv == "recursion_wise":
        view.cache += [(f"recursion.{r}.valid", "(batch, max_len)") for r in range(rec.recursions)]
        view.positions.append(CacheAxis("recursion.0.valid", 1))


def build_view(model: Model) -> ModelView:
    scope = module_scope()
    view = ModelView(class_name=scope.claim(model.name), doc=f"{model.name}: generated by livc")
    b = Builder(model, view, scope=scope, exported=_exports(model))
    view.embedding = b.instance(model.embedding, "embedding")
    for layer in model.layers:
        row = []
        for j, sub in enumerate(layer.sublayers):
            prefix = f"layers.{layer.index}.{j}"
            norm = b.instance(sub.norm, f"{prefix}.norm") if sub.norm is not None else None
            inst = b.instance(sub.block, prefix)
            inst = _with_wrap(inst, norm, sub.wrap.value)
            row.append(wrap_statement(inst, LAYER_LINE))
        view.layers.append(row)
    view.final_norm = b.instance(model.final_norm, "final_norm") if model.final_norm else None
    view.head = b.instance(model.head, "head")
    _recursion(model, view)
    limits = [int(op.attr("max_len")) for blk in all_blocks(model) for op in blk.ops if op.prim == "token_dense"]
    view.max_len_limit = min(limits) if limits else None
    if model.recursion is not None:
        b.helpers.add("mor")
    view.inference = inference_view(model, view.positions)
    view.helpers = [h for h in HELPER_ORDER if h in b.helpers | {"sampling"}]
    view.has_aux = model.recursion is not None or any(
        op.prim == "moe" for layer in model.layers for s in layer.sublayers for op in s.block.ops
    )
    return view


def _with_wrap(expr: str, norm: str | None, wrap: str) -> str:
    extra = ([f"norm={norm}"] if norm else []) + ([f'wrap="{wrap}"'] if wrap != "pre_norm" else [])
    return expr[:-1] + "".join(f", {e}" for e in extra) + ")" if extra else expr
