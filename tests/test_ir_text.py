"""The textual IR (`livc.compiler.ir.text`): round trip, determinism, scalar types, syntax errors.

Properties, for every example model at every IR stage (build, expand, canonicalize, lower):
  - `parse_ir(print_model(m)) == m` and printing the parsed model gives the same text (so ints,
    floats, bools and None keep their types, which `==` alone would not show: 1 == 1.0 == True);
  - printing is deterministic: the same text twice, and from two separate compilations.
Hand-made models cover what the examples do not: awkward names, every scalar kind, empty op
outputs, feature records without '=', shares, strict budgets, no context. Malformed text raises
`IRSyntaxError` with the line of the problem (never a lark exception).
"""

from __future__ import annotations

import dataclasses
import math
import random
from functools import cache
from pathlib import Path

import pytest

from livc.compiler.ir.nodes import (
    Block,
    BlockKind,
    Budget,
    DType,
    Layer,
    Model,
    Op,
    Param,
    Recursion,
    Role,
    Section,
    Share,
    Sublayer,
    TensorType,
    Value,
    Wrap,
)
from livc.compiler.ir.text import IRSyntaxError, make_parser, parse_ir, print_model
from livc.compiler.pipeline import IR_STAGES, STAGE_NAMES, compile_path
from livc.dsl.diagnostics import DiagnosticSink

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.liv"))


@cache
def staged(path: Path) -> dict[str, tuple[Model, ...]]:
    """Every model of an example after each IR stage (one front-end run per file)."""
    compiled = compile_path(path, stop_after="build")
    assert compiled.ok and compiled.models, compiled.diagnostics
    models = {"build": compiled.models}
    for name, stage in IR_STAGES:
        previous = models[STAGE_NAMES[STAGE_NAMES.index(name) - 1]]
        models[name] = tuple(stage(m, DiagnosticSink()) for m in previous)
    return models


@cache
def parse_cached(text: str) -> tuple[Model, str]:
    """Stages often leave a model unchanged: parse (and re-print) each distinct text once."""
    back = parse_ir(text)
    return back, print_model(back)


def check_round_trip(model: Model) -> str:
    text = print_model(model)
    back, again = parse_cached(text)
    assert back == model
    assert again == text
    return text


# ---- examples ------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGE_NAMES)
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_round_trip(path: Path, stage: str) -> None:
    for model in staged(path)[stage]:
        check_round_trip(model)


def test_printing_is_deterministic() -> None:
    path = ROOT / "examples" / "star_shared.liv"
    fresh = compile_path(path, stop_after="lower", verify=False).models[0]
    first = staged(path)["lower"][0]
    assert fresh is not first
    assert print_model(first) == print_model(first) == print_model(fresh)


def test_text_shape() -> None:
    text = print_model(staged(ROOT / "examples" / "lfm2_350m.liv")["canonicalize"][0])
    assert text.startswith("model LFM2_350M dtype=bf16 d_model=1024 vocab=65536 context=128000 {\n")
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert "\t" not in text and not any(line != line.rstrip() for line in text.splitlines())
    assert "  param @embedding.out.weight : [65536, 1024] init=normal\n" in text
    assert "token_mix toeplitz sparsity=causal {" in text
    assert "[eps=1e-05, affine=true]" in text


def test_every_op_kind_is_covered() -> None:
    prims = {op.prim for path in EXAMPLES for m in staged(path)["expand"] for b in _blocks(m) for op in b.ops}
    assert {"shared_feature", "long_conv", "selective_scan", "attention", "causal_conv"} <= prims


def _blocks(model: Model) -> list[Block]:
    subs = [s for layer in model.layers for s in layer.sublayers]
    norms = [s.norm for s in subs if s.norm is not None]
    return [model.embedding, *(s.block for s in subs), *norms, *filter(None, [model.final_norm]), model.head]


# The fields `print_model` writes, per IR node: a field added to `nodes.py` must be added to the
# printer and the grammar too (this test then fails until it is listed here).
PRINTED_FIELDS = {
    Model: "name dtype d_model vocab embedding layers final_norm head params recursion shares budgets context span",
    Param: "id shape init span",
    Layer: "index sublayers",
    Sublayer: "block wrap norm",
    Block: "kind name args input sections output features span",
    Section: "role structure nonlinearity sparsity ops",
    Op: "prim inputs outputs params attrs span",
    Value: "name type",
    TensorType: "shape",
    Recursion: "recursions sharing router capacities kv steps router_params router_args",
    Share: "kind groups source targets span",
    Budget: "metric args limit strict span",
}


@pytest.mark.parametrize("node", PRINTED_FIELDS, ids=lambda n: n.__name__)
def test_printer_knows_every_ir_field(node: type) -> None:
    assert {f.name for f in dataclasses.fields(node)} == set(PRINTED_FIELDS[node].split())


# ---- hand-made models ----------------------------------------------------------------------


def _block(
    name: str,
    ops: tuple[Op, ...],
    output: str,
    kind: BlockKind = BlockKind.OP,
    role: Role = Role.BODY,
    width: tuple[int, ...] = (4,),
) -> Block:
    return Block(
        kind=kind,
        name=name,
        args=(("d", 4),),
        input=Value(name="x", type=TensorType(shape=width)),
        sections=(Section(role=role, structure=None, ops=ops),),
        output=output,
    )


def _op(prim: str, inputs: tuple[str, ...], out: str, shape: tuple[int, ...] = (4,), **kw: object) -> Op:
    return Op(prim=prim, inputs=inputs, outputs=(Value(name=out, type=TensorType(shape=shape)),), **kw)  # type: ignore[arg-type]


def tiny_model(**changes: object) -> Model:
    embed = _op(
        "embed", ("tokens",), "out", params=(("weight", "embedding.out.weight"),), attrs=(("vocab", 10), ("d", 4))
    )
    embedding = dataclasses.replace(
        _block("Embedding", (embed,), "out", width=()), input=Value(name="tokens", type=TensorType(shape=()))
    )
    norm = _block(
        "RMSNorm",
        (_op("rmsnorm", ("x",), "out", params=(("weight", "n.weight"),), attrs=(("eps", 1e-05), ("affine", True))),),
        "out",
    )
    mixer = _block("Mix", (_op("silu", ("x",), "y"),), "y", kind=BlockKind.LIV, role=Role.CHANNEL_MIX)
    head = _block(
        "LMHead",
        (
            _op(
                "lm_head",
                ("x",),
                "out",
                (10,),
                params=(("weight", "embedding.out.weight"),),
                attrs=(("vocab", 10), ("tied", True)),
            ),
        ),
        "out",
    )
    model = Model(
        name="Tiny",
        dtype=DType.F32,
        d_model=4,
        vocab=10,
        embedding=embedding,
        layers=(Layer(index=0, sublayers=(Sublayer(block=mixer, norm=norm),)),),
        final_norm=None,
        head=head,
        params=(Param(id="embedding.out.weight", shape=(10, 4)), Param(id="n.weight", shape=(4,))),
        context=None,
    )
    return dataclasses.replace(model, **changes)  # type: ignore[arg-type]


SCALARS = (
    0,
    -3,
    10**20,
    1.0,
    -0.5,
    1e-05,
    1e16,
    math.inf,
    -math.inf,
    True,
    False,
    None,
    "",
    "causal",
    'quote " back \\ slash',
    "tab\tnew\nline",
    "üñí ☃",
    "none",
    "true",
    "1.0",
    "%x",
    "@p",
)


def test_scalars_keep_their_type() -> None:
    attrs = tuple((f"a{i}", v) for i, v in enumerate(SCALARS))
    model = tiny_model(budgets=(Budget(metric="params", args=attrs, limit=1.5), Budget(metric="m", args=(), limit=7)))
    back = parse_ir(check_round_trip(model))
    for (_, want), (_, got) in zip(attrs, back.budgets[0].args, strict=True):
        assert type(got) is type(want) and got == want
    assert [type(b.limit) for b in back.budgets] == [float, int]


def test_nan_attr_round_trips_as_nan() -> None:
    back = parse_ir(print_model(tiny_model(budgets=(Budget(metric="m", args=(("x", math.nan),), limit=1),))))
    assert math.isnan(back.budgets[0].args[0][1])  # type: ignore[arg-type]


AWKWARD = (
    "model",
    "none",
    "layer",
    "head",
    "norm",
    "op",
    "a b",
    'q"uote',
    "ünï",
    "3d",
    "x-y",
    "",
    "with.dots",
    "=",
    "strict",
    "inf",
    "features",
    "recursion",
    "layers",
    "from",
    "-inf",
    "1e5",
)


@pytest.mark.parametrize("name", AWKWARD)
def test_awkward_names_round_trip(name: str) -> None:
    op = Op(
        prim=name or "p",
        inputs=("x",),
        outputs=(Value(name=name or "v", type=TensorType(shape=(4,))),),
        params=((name or "r", name or "pid"),),
        attrs=((name or "k", name),),
    )
    block = Block(
        kind=BlockKind.LIV,
        name=name,
        args=((name or "a", name),),
        input=Value(name="x", type=TensorType(shape=(4,))),
        sections=(Section(role=Role.TOKEN_MIX, structure=name, nonlinearity=name, sparsity=name, ops=(op,)),),
        output=name or "v",
        features=(
            Value(name=f"{name}={name or 'v'}", type=TensorType(shape=(4,))),
            Value(name=name, type=TensorType(shape=(1, 2))),
        ),
    )
    model = tiny_model(
        name=name,
        layers=(Layer(index=0, sublayers=(Sublayer(block=block, wrap=Wrap.NONE),)),),
        params=(Param(id=name or "pid", shape=(), init=name),),
        shares=(Share(kind=name, groups=(name, name), source=(0, None), targets=((0, 0),)),),
    )
    check_round_trip(model)


def test_model_records_round_trip() -> None:
    rec = Recursion(
        recursions=2,
        sharing="cycle",
        router="token_choice",
        capacities=(1, 0.5),
        kv="kv_share",
        steps=((0,), (1,)),
        router_params=("recursion.router.weight", "r w"),
        router_args=(("alpha", 1.0), ("activation", "sigmoid"), ("z", None)),
    )
    shares = (
        Share(kind="features", groups=("k", "v"), source=(1, 0), targets=((4, 0), (5, None))),
        Share(kind="weights", groups=(), source=(0, None), targets=()),
    )
    budgets = (Budget(metric="cache", args=(("batch", 1), ("dtype", "bf16")), limit=1024, strict=True),)
    layer = tiny_model().layers[0]
    model = tiny_model(
        recursion=rec,
        shares=shares,
        budgets=budgets,
        context=2048,
        dtype=DType.BF16,
        layers=(layer, dataclasses.replace(layer, index=1)),
        final_norm=layer.sublayers[0].norm,
    )
    text = check_round_trip(model)
    assert 'router=token_choice(alpha=1.0, activation="sigmoid", z=none)' in text
    assert parse_ir(text.replace("router=token_choice(alpha", 'router="token_choice"(alpha')) == model
    assert parse_ir(text.replace('(alpha=1.0, activation="sigmoid", z=none)', "")).recursion == dataclasses.replace(
        rec, router_args=()
    )
    assert "share features [k, v] from layers[1][0] to [layers[4][0], layers[5]]" in text
    assert 'budget cache(batch=1, dtype="bf16") <= 1024 strict' in text


def test_empty_outputs_and_empty_shapes_round_trip() -> None:
    op = Op(prim="sink", inputs=("x", "x"), outputs=())
    block = _block("Sink", (op, _op("neg", ("x",), "y", ())), "y", role=Role.FEATURIZER)
    text = check_round_trip(tiny_model(layers=(Layer(index=0, sublayers=(Sublayer(block=block),)),)))
    assert "() = sink(%x, %x)" in text and "%y: [] = neg(%x)" in text


def test_comments_and_whitespace_are_ignored() -> None:
    text = print_model(tiny_model())
    noisy = "// leading comment\n" + text.replace("{\n", "{ // trailing\n\n").replace("  ", "\t")
    assert parse_ir(noisy) == tiny_model()


def test_grammar_is_strict() -> None:
    make_parser(strict=True)  # raises if two terminals collide or the grammar has an LALR conflict


# ---- syntax errors -------------------------------------------------------------------------

TINY = print_model(tiny_model())
TINY_LINES = TINY.splitlines()


def _edit(line: int, old: str, new: str) -> str:
    lines = list(TINY_LINES)
    assert old in lines[line - 1], (old, lines[line - 1])
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    return "\n".join(lines)


def _line_of(fragment: str) -> int:
    return next(i for i, line in enumerate(TINY_LINES, 1) if fragment in line)


BAD = {
    "unexpected token": (_edit(_line_of("rmsnorm("), "=", "=="), _line_of("rmsnorm("), "unexpected '='"),
    "unexpected character": (_edit(_line_of("silu("), "silu", "si$lu"), _line_of("silu("), "unexpected character"),
    "unknown role": (
        _edit(_line_of("channel_mix {"), "channel_mix", "chanel_mix"),
        _line_of("channel_mix {"),
        "unknown section role 'chanel_mix'",
    ),
    "unknown wrapper": (
        _edit(_line_of("sublayer"), "pre_norm", "prenorm"),
        _line_of("sublayer"),
        "unknown sublayer wrapper",
    ),
    "unknown dtype": (_edit(1, "f32", "f31"), 1, "unknown dtype 'f31'"),
    "unknown key": (_edit(1, "vocab=", "vocabulary="), 1, "unknown key 'vocabulary'"),
    "repeated key": (_edit(1, "vocab=10", "vocab=10 vocab=10"), 1, "key 'vocab' given twice"),
    "missing key": (_edit(1, "d_model=4 ", ""), 1, "missing key 'd_model'"),
    "int expected": (_edit(1, "d_model=4", "d_model=4.0"), 1, "'d_model' expects an int"),
    "bad escape": (
        _edit(_line_of("embedding op"), "Embedding", '"Emb\\qedding"'),
        _line_of("embedding op"),
        "bad string literal",
    ),
    "bad shape": (_edit(_line_of("silu("), "[4]", "[4,,4]"), _line_of("silu("), "malformed shape"),
    "spaced shape": (_edit(_line_of("silu("), "[4]", "[4 4]"), _line_of("silu("), "malformed shape"),
    "float shape": (_edit(_line_of("silu("), "[4]", "[4.5]"), _line_of("silu("), "unexpected"),
    "negative layer": (_edit(_line_of("layer 0"), "layer 0", "layer -1"), _line_of("layer 0"), "non-negative int"),
    "budget limit": (TINY.replace("\n}", '\n  budget params() <= "lots"\n}'), len(TINY_LINES), "must be a number"),
    "truncated": (TINY[: len(TINY) // 2], None, "unexpected end of input"),
    "empty": ("", 1, "unexpected end of input"),
    "recursion key": (TINY.replace("\n}", "\n  recursion kv=kv_share\n}"), len(TINY_LINES), "missing key 'recursions'"),
    "not IR": ("def f(x):\n    return x\n", 1, "unexpected"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_syntax_errors_are_located(case: str) -> None:
    text, line, message = BAD[case]
    with pytest.raises(IRSyntaxError) as info:
        parse_ir(text)
    assert message in info.value.message
    assert info.value.line == (line if line is not None else text.count("\n") + 1)
    assert info.value.column >= 1
    assert str(info.value).startswith(f"{info.value.line}:{info.value.column}: ")


def test_deeply_nested_lists_do_not_crash() -> None:
    with pytest.raises(IRSyntaxError):
        parse_ir(TINY.replace("\n}", "\n  recursion steps=" + "[" * 5000 + "]" * 5000 + "\n}"))


FUZZ_PIECES = (
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "=",
    ",",
    ":",
    "%",
    "@",
    '"',
    "\\",
    "-",
    ".",
    " ",
    "\n",
    "none",
    "true",
    "layer",
    "1",
    "1.5",
    "e",
    "recursions=",
    "steps=[[1]]",
    "[1 4]",
)


def test_random_edits_raise_only_ir_syntax_errors() -> None:
    rng = random.Random(0)
    for _ in range(150):
        text = TINY
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(FUZZ_PIECES) + text[at + rng.randint(0, 4) :]
        try:
            parse_ir(text)
        except IRSyntaxError as exc:
            assert exc.line >= 1 and exc.column >= 1
