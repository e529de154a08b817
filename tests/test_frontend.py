"""Parser and checker behaviour: literals, identifiers, trivia, error recovery, elaboration."""

from __future__ import annotations

from pathlib import Path

import pytest

from livc.compiler.check import check_source
from livc.dsl import ast as A
from livc.dsl.diagnostics import CompileError
from livc.dsl.lexicon import identifier_problem, number_value
from livc.dsl.parser import parse_text

HEADER = """from std.mlp import SwiGLU
from std.norms import RMSNorm
from std.embedding import Embedding, LMHead
from std.attention import GQA
"""


def model(body: str, params: str = "d: int = 64") -> str:
    return f"""{HEADER}
model Tiny({params}) {{
{body}
    embedding: Embedding(100, d)
    final_norm: RMSNorm(d)
    head: LMHead(100, d)
}}
"""


def codes(text: str) -> list[str]:
    return [d.code for d in check_source(text, "t.liv").diagnostics]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("32K", 32_000),
        ("1M", 1_000_000),
        ("64MiB", 64 * 2**20),
        ("1.5G", 1_500_000_000),
        ("1_024", 1024),
        ("1e-5", 1e-5),
        ("6.5", 6.5),
        ("2KiB", 2048),
        ("3", 3),
    ],
)
def test_number_literals(text: str, value: float) -> None:
    assert number_value(text) == value
    assert type(number_value(text)) is type(value)


@pytest.mark.parametrize("text", ["3Q", "1.5K7", "0.0001K", "2e"])
def test_malformed_numbers(text: str) -> None:
    assert number_value(text) is None


@pytest.mark.parametrize("name", ["class", "lambda", "__init__", "liv", "featurizer", "a" * 65, "self"])
def test_reserved_identifiers(name: str) -> None:
    assert identifier_problem(name) is not None


def test_identifiers_are_validated_in_source() -> None:
    with pytest.raises(CompileError) as exc:
        parse_text("let lambda = 1\nlet __x = 2\n")
    assert [d.code for d in exc.value.diagnostics] == ["E0106", "E0106"]


def test_several_syntax_errors_in_one_run_without_cascades() -> None:
    text = "let a = (1\nlet b = 2\nlet c = ]\nfn f(x: int) -> int = x\n"
    with pytest.raises(CompileError) as exc:
        parse_text(text)
    diags = exc.value.diagnostics
    assert [d.code for d in diags] == ["E0102", "E0102"]
    assert [d.primary.span.source.line_col(d.primary.span.start)[0] for d in diags] == [2, 3]


def test_comments_and_blank_lines_are_kept_in_the_ast() -> None:
    module = parse_text("# head\nlet a = 1  # trailing\n\nlet b = [\n    1,  # inside\n    2,\n]\n")
    kinds = [type(item).__name__ for item in module.items]
    assert kinds == ["Comment", "Let", "Comment", "Blank", "Comment", "Let"]
    assert module.items[2] == A.Comment(text=" trailing", trailing=True)


def test_spans_are_not_part_of_equality() -> None:
    assert parse_text("let a = 1 + 2\n") == parse_text("let   a =\n 1+2\n")


def test_precedence() -> None:
    expr = parse_text("let a = 1 + 2 * 3 ** 2\n").items[0].value
    assert isinstance(expr, A.BinOp) and expr.op is A.BinOpKind.ADD
    assert isinstance(expr.right, A.BinOp) and expr.right.op is A.BinOpKind.MUL


def test_clean_model_elaborates() -> None:
    result = check_source(model("    layers: 2 * [GQA(d, heads = 4) + SwiGLU(d, 128)]\n"), "t.liv")
    assert result.ok, result.diagnostics
    (m,) = result.models
    assert len(m.layers) == 2 and [s.op.name for s in m.layers[0].sublayers] == ["GQA", "SwiGLU"]


def test_require_failure_points_at_the_instantiation_and_the_constraint() -> None:
    diags = check_source(model("    layers: [GQA(d, heads = 4, kv_heads = 3)]\n"), "t.liv").diagnostics
    assert [d.code for d in diags] == ["E0302"]
    assert diags[0].primary.span.text == "GQA(d, heads = 4, kv_heads = 3)"
    assert "heads % kv_heads" in diags[0].secondary[0].span.text
    assert "heads = 4, kv_heads = 3" in diags[0].secondary[0].message


def test_independent_errors_are_all_reported_and_poison_stops_cascades() -> None:
    body = "    let a = undefined_name * 2\n    let b = a + 1\n    let c = 1 // 0\n    layers: [SwiGLU(d, b)]\n"
    assert codes(model(body)) == ["E0201", "E0303"]


def test_unknown_keyword_suggests_the_right_one() -> None:
    diags = check_source(model("    layers: [SwiGLU(d, hiden = 3)]\n"), "t.liv").diagnostics
    assert diags[0].code == "E0203" and diags[0].help == "did you mean 'hidden'?"


def test_layer_lists_repeat_and_concatenate() -> None:
    body = "    let a = SwiGLU(d, 32)\n    let b = SwiGLU(d, 64)\n    layers: [a] + 2 * [b, a]\n"
    (m,) = check_source(model(body), "t.liv").models
    assert [layer.sublayers[0].op.arg("hidden") for layer in m.layers] == [32, 64, 32, 64, 32]


def test_override_replaces_a_range() -> None:
    body = "    layers: 4 * [SwiGLU(d, 32)]\n    override layers[1..3]: SwiGLU(d, 64)\n"
    (m,) = check_source(model(body), "t.liv").models
    assert [layer.sublayers[0].op.arg("hidden") for layer in m.layers] == [32, 64, 64, 32]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("    layers: 4 * [SwiGLU(d, 32)]\n    override layers[4]: SwiGLU(d, 64)\n", "E0306"),
        ("    layers: 4 * [SwiGLU(d, 32)]\n    share weights from layers[0] to layers[9]\n", "E0306"),
        ("    layers: [SwiGLU(d, 32), SwiGLU(d, 64)]\n    share weights from layers[0] to layers[1]\n", "E0310"),
        (
            "    layers: 5 * [SwiGLU(d, 32)]\n    recursion: mor(recursions = 2, sharing = cycle, "
            "router = token_choice())\n",
            "E0311",
        ),
        ("    layers: [SwiGLU(d, 32)]\n    budget {\n        cache(bach = 1) <= 1M\n    }\n", "E0401"),
        ("    layers: 3\n", "E0301"),
    ],
)
def test_model_level_errors(body: str, code: str) -> None:
    assert codes(model(body))[:1] == [code]


def test_import_of_relative_file(tmp_path: Path) -> None:
    (tmp_path / "blocks.liv").write_text("from std.mlp import SwiGLU\nlet width = 96\n")
    main = tmp_path / "main.liv"
    text = model("    layers: [SwiGLU(d, blocks.width)]\n")
    main.write_text(text.replace(HEADER, HEADER + 'import "./blocks.liv" as blocks\n'))
    from livc.compiler.check import check_path

    result = check_path(main)
    assert result.ok, result.diagnostics
    assert result.models[0].layers[0].sublayers[0].op.arg("hidden") == 96
