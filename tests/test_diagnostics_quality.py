"""Diagnostics a person can act on (issue 7, section 4), plus value limits (sections 1 and 2).

One root cause gives one error; undefined names that the standard library defines get the import
to add; E0110 is about real nesting and points at it; control characters are escaped; imports
follow a documented path policy; scalar arithmetic stays finite and bounded; `tokens` is only read
by the embedding.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from livc.compiler.check import check_path, check_source
from livc.compiler.pipeline import analyze_checked
from livc.dsl.diagnostics import Diagnostic, DiagnosticSink, error
from livc.dsl.formatter import format_text
from livc.dsl.render import render_all_text, render_json
from livc.dsl.source import SourceFile, Span

HEADER = """\
from std.mlp import SwiGLU
from std.norms import RMSNorm
from std.attention import GQA
from std.embedding import Embedding, LMHead
"""

WIDEN = """\
liv Widen(d: int, k: int = 1) {
    featurizer {
        a = linear(x, d)
        b = linear(x, 2 * d)
    }
    token_mix diagonal {
        y = a * b
    }
    channel_mix dense {
        return linear(y, d)
    }
}
"""


def _model(body: str, d: str = "d: int = 64") -> str:
    return f"model Tiny({d}) {{\n{body}\n}}\n"


def _errors(text: str, name: str = "<string>") -> list[Diagnostic]:
    result = analyze_checked(check_source(text, name))
    return [d for d in result.diagnostics if d.severity.value == "error"]


def _errors_at(path: Path) -> list[Diagnostic]:
    return [d for d in analyze_checked(check_path(path)).diagnostics if d.severity.value == "error"]


# ---- one root cause, one error ---------------------------------------------------------------


def test_one_broken_line_used_with_seven_argument_sets_is_one_error() -> None:
    layers = ", ".join(f"Widen(d, {k})" for k in range(1, 8))
    body = f"    layers: [{layers}]\n    embedding: Embedding(100, d)\n    norm: RMSNorm(d)\n    head: LMHead(100, d)"
    errors = _errors(HEADER + WIDEN + _model(body))
    assert [d.code for d in errors] == ["E0312"]
    assert errors[0].primary.span.text == "a * b"
    assert "the same error occurs in 6 more instantiations" in errors[0].notes


def test_sink_folds_reports_that_differ_only_in_secondary_labels() -> None:
    source = SourceFile("f.liv", "let a = 1\nlet b = 2\n")
    sink = DiagnosticSink()
    for start in (0, 10, 10):
        sink.report(error("E0304", "bad", Span(source, 4, 5), secondary=(_label(source, start),)))
    sink.report(error("E0304", "other message", Span(source, 4, 5)))
    assert [d.message for d in sink.items] == ["bad", "other message"]
    assert sink.items[0].notes == ("the same error occurs in 1 more instantiation",)


def _label(source: SourceFile, start: int):  # noqa: ANN202
    from livc.dsl.diagnostics import Label

    return Label(Span(source, start, start + 3), "here")


def test_a_wrong_embedding_width_is_one_error_at_the_embedding() -> None:
    body = (
        "    layers: [GQA(d, heads = 4) + SwiGLU(d, 128)] * 8\n    embedding: Embedding(100, 32)\n"
        "    norm: RMSNorm(d)\n    final_norm: RMSNorm(d)\n    head: LMHead(100, d)"
    )
    errors = _errors(HEADER + _model(body))
    assert [d.code for d in errors] == ["E0312"]
    assert errors[0].primary.span.text == "Embedding(100, 32)"
    assert "embedding" in errors[0].message


def test_a_misspelled_keyword_is_not_also_a_missing_argument() -> None:
    body = "    let w = SwiGLU(d, hiden = 128)\n    layers: [w]\n"
    body += "    embedding: Embedding(100, d)\n    head: LMHead(100, d)"
    errors = _errors(HEADER + "let g = GQA(64, head = 4)\n" + _model(body))
    assert [d.code for d in errors] == ["E0203", "E0203"]
    assert [d.help for d in errors] == ["did you mean 'heads'?", "did you mean 'hidden'?"]


def test_an_unknown_keyword_far_from_any_parameter_still_reports_the_missing_one() -> None:
    errors = _errors(HEADER + "let g = GQA(64, colour = 4)\n")
    assert [d.code for d in errors] == ["E0203", "E0204"]


def test_a_syntax_error_in_an_imported_file_is_reported_once_and_not_in_the_importer(tmp_path: Path) -> None:
    (tmp_path / "broken.liv").write_text("liv Foo(d: int) {\n    featurizer { a = linear(x, d\n}\n")
    main = tmp_path / "main.liv"
    main.write_text(
        'from "broken.liv" import Foo\nimport "broken.liv" as br\nlet z = br.Foo\n'
        "model M(d: int = 64) {\n    layers: [Foo(d)]\n    embedding: Foo(d)\n    head: Foo(d)\n}\n"
    )
    errors = _errors_at(main)
    assert [d.code for d in errors] == ["E0102"]
    assert errors[0].primary.span.source.name.endswith("broken.liv")


def test_names_from_a_missing_module_are_not_undefined_again() -> None:
    errors = _errors('from "./no_such_file.liv" import Foo\nlet a = Foo(1)\n', "<string>")
    assert [d.code for d in errors] == ["E0207"]


def test_number_errors_survive_beside_syntax_errors() -> None:
    errors = _errors("let a = 12Q\nlet b = 3.5X\nlet c = (\nmodel M( {\n")
    codes = [d.code for d in errors]
    assert codes.count("E0105") == 2 and "E0102" in codes
    assert [d.primary.span.text for d in errors if d.code == "E0105"] == ["12Q", "3.5X"]


# ---- the import to add ------------------------------------------------------------------------


def test_a_standard_name_that_is_not_imported_gets_the_import_to_add() -> None:
    errors = _errors("from std.mlp import SwiGLU\nlet a = GQA\nlet b = RMSNorm\nlet c = Nonexistent\n")
    helps = {d.primary.span.text: d.help for d in errors if d.code == "E0201"}
    assert helps["GQA"] == "add `from std.attention import GQA`"
    assert helps["RMSNorm"] == "add `from std.norms import RMSNorm`"
    assert helps["Nonexistent"] is None


# ---- nesting ------------------------------------------------------------------------------------


@pytest.mark.parametrize("terms", [149, 10_000])
def test_a_long_flat_sum_is_not_nesting(terms: int) -> None:
    text = "let a = " + " + ".join(["1"] * terms) + "\nlet b = " + " and ".join(["true"] * terms) + "\n"
    result = check_source(text)
    assert result.ok, [d.message for d in result.diagnostics]
    formatted = format_text(text)
    assert format_text(formatted) == formatted and formatted.count("+") == terms - 1


def test_a_long_flat_tensor_chain_in_a_body_checks() -> None:
    chain = " + ".join(["a"] * 10_000)
    text = HEADER + f"op Sum(d: int) {{\n    a = linear(x, d)\n    return {chain}\n}}\n"
    assert check_source(text).ok


def test_nesting_points_at_the_nested_construct() -> None:
    text = "let ok = 1\nlet a = " + "min(" * 80 + "1" + ")" * 80 + "\n"
    errors = _errors(text)
    assert [d.code for d in errors] == ["E0110"]
    span = errors[0].primary.span
    assert span.source.line_col(span.start) == (2, 9)
    assert span.text.startswith("min(min(")


# ---- control characters -------------------------------------------------------------------------


def test_control_characters_are_escaped_in_text_and_json() -> None:
    message = "\x1b[2J\x1b[31mboom\nerror[E9999]: fake\x85\u202e"
    literal = message.replace("\n", "\\n")  # a .liv string writes the newline as \n
    text = HEADER + f'op Bad(d: int) {{\n    require d > 100, "{literal}"\n    return x\n}}\n'
    text += _model("    layers: [Bad(d)]\n    embedding: Embedding(100, d)\n    head: LMHead(100, d)")
    diags = [d for d in _errors(text, "evil\x1b[0m\nname.liv") if d.code == "E0302"]
    rendered = render_all_text(diags)
    assert all(ch not in rendered for ch in "\x1b\x85\u202e")
    assert "\\x1b[2J" in rendered and "boom\\nerror[E9999]" in rendered and "evil\\x1b[0m\\nname.liv" in rendered
    assert all(not line.startswith("error[E9999]") for line in rendered.splitlines())
    as_json = render_json(diags)
    assert (
        "\x1b" not in as_json and "\\u001b" in as_json and json.loads(as_json)["diagnostics"][0]["message"] == message
    )


# ---- imports --------------------------------------------------------------------------------------


def test_importing_a_file_that_is_not_a_liv_source_never_shows_its_contents(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:SECRET LINE\n")
    os.symlink(secret, tmp_path / "looks_fine.liv")
    main = tmp_path / "main.liv"
    main.write_text(f'import "{secret}" as a\nimport "looks_fine.liv" as b\nimport "/etc/passwd" as c\n')
    errors = _errors_at(main)
    assert [d.code for d in errors] == ["E0109", "E0109", "E0109"]
    assert "SECRET" not in render_all_text(errors) and "root:" not in render_all_text(errors)


def test_dotdot_and_absolute_liv_imports_resolve_against_the_importing_file(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "app").mkdir()
    (tmp_path / "lib" / "consts.liv").write_text("let width = 64\n")
    main = tmp_path / "app" / "main.liv"
    absolute = tmp_path / "lib" / "consts.liv"
    main.write_text(f'from "../lib/consts.liv" import width\nimport "{absolute}" as c\nlet w = width + c.width\n')
    assert _errors_at(main) == []


# ---- values stay finite and bounded ----------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    ["1e308 * 10.0", "1e308 + 1e308", "1e300 / 1e-300", "10.0 ** 400", "1.5 ** 2000", "-(1e308) - 1e308"],
)
def test_non_finite_arithmetic_is_a_diagnostic(expr: str) -> None:
    errors = _errors(f"let a = {expr}\n")
    assert [d.code for d in errors] == ["E0304"]
    assert errors[0].primary.span.text == expr


@pytest.mark.parametrize("expr", ["int(1e300)", "ceil(1e300)", "2 ** 255 + 2 ** 255", "2 ** 256", "3 ** 10 ** 12"])
def test_huge_integers_are_a_diagnostic(expr: str) -> None:
    assert [d.code for d in _errors(f"let a = {expr}\n")] == ["E0304"]


def test_repeated_squaring_stops_at_the_first_too_large_value_quickly() -> None:
    lets = "let a = 10 ** 30\n" + "".join(f"let {n} = {p} * {p}\n" for p, n in zip("abcdefgh", "bcdefghi"))
    start = time.perf_counter()
    errors = _errors(lets)
    assert time.perf_counter() - start < 5
    assert [d.code for d in errors] == ["E0304"]
    assert errors[0].primary.span.text == "b * b"


def test_values_within_the_limits_are_unchanged() -> None:
    assert _errors("let a = 2 ** 255\nlet b = (-2) ** 255\nlet c = 1e308 * 1.0\nlet d = 1 ** 1000000\n") == []


def test_a_non_finite_model_argument_never_reaches_generated_code() -> None:
    body = "    let eps = 1e308 * 10.0\n    layers: [SwiGLU(d, 128)]\n    embedding: Embedding(100, d)\n"
    body += "    norm: RMSNorm(d, eps = eps)\n    head: LMHead(100, d)"
    assert [d.code for d in _errors(HEADER + _model(body))] == ["E0304"]


# ---- implicit inputs ---------------------------------------------------------------------------------


def test_embed_inside_a_liv_is_a_diagnostic() -> None:
    liv = "liv E(d: int) {\n    token_mix diagonal {\n        y = embed(tokens, 100, d)\n    }\n"
    liv += "    channel_mix dense {\n        return linear(y, d)\n    }\n}\n"
    body = "    layers: [E(d), E(d) + SwiGLU(d, 128)]\n    embedding: Embedding(100, d)\n    head: LMHead(100, d)"
    errors = _errors(HEADER + liv + _model(body))
    assert [d.code for d in errors] == ["E0315"]
    assert errors[0].primary.span.text == "tokens"


def test_an_embedding_that_reads_x_is_a_diagnostic() -> None:
    op = "op Emb(vocab: int, d: int) {\n    return linear(x, d)\n}\n"
    body = "    layers: [SwiGLU(d, 128)]\n    embedding: Emb(100, d)\n    head: LMHead(100, d)"
    errors = _errors(HEADER + op + _model(body))
    assert [d.code for d in errors] == ["E0315"]
    assert errors[0].primary.span.text == "x"


def test_tensor_arithmetic_in_a_let_names_tensors_and_says_how() -> None:
    """It said "cannot apply '+' to tref and tref" (an internal class name) with no way forward."""
    text = """from std.norms import RMSNorm
from std.embedding import Embedding, LMHead

op P(d: int) {
    let y = x + x
    return y
}

model M(d: int = 16) {
    embedding: Embedding(32, d)
    layers: [P(d)]
    final_norm: RMSNorm(d)
    head: LMHead(32, d)
}
"""
    result = analyze_checked(check_source(text, "let.liv"))
    errors = [d for d in result.diagnostics if d.code == "E0301"]
    assert len(errors) == 1 and "tensor and tensor" in errors[0].message
    assert errors[0].help is not None and "y = a + b" in errors[0].help


def test_a_long_tensor_chain_in_an_op_body_builds() -> None:
    """10,000 terms `x + x + ...` in one assignment: no RecursionError (names are handed out in O(1) each)."""
    terms = " + ".join(["x"] * 10_000)
    text = f"""from std.norms import RMSNorm
from std.embedding import Embedding, LMHead

op P(d: int) {{
    y = {terms}
    return y
}}

model M(d: int = 16) {{
    embedding: Embedding(32, d)
    layers: [P(d)]
    final_norm: RMSNorm(d)
    head: LMHead(32, d)
}}
"""
    result = analyze_checked(check_source(text, "chain.liv"))
    assert result.ok
    ops = result.compiled.models[0].layers[0].sublayers[0].block.ops
    assert sum(op.prim == "add" for op in ops) == 9_999


def test_instance_arguments_in_notes_are_spelled_like_liv() -> None:
    """The E0312 notes printed Python's `k = None` / `flag = True` instead of .liv's `none` / `true`."""
    text = """from std.norms import RMSNorm
from std.embedding import Embedding, LMHead

op P(d: int, k: int? = none, flag: bool = true) {
    return linear(x, d + 1) + x
}

model M(d: int = 16) {
    embedding: Embedding(32, d)
    layers: [P(d)]
    final_norm: RMSNorm(d)
    head: LMHead(32, d)
}
"""
    result = analyze_checked(check_source(text, "notes.liv"))
    notes = [n for d in result.diagnostics for n in d.notes if n.startswith("arguments:")]
    assert notes == ["arguments: d = 16, k = none, flag = true"], [d.message for d in result.diagnostics]


def test_incompatible_sharing_says_where_the_layers_differ() -> None:
    """MoR + K/V sharing said only "GQA and GQA have different operations"."""
    example = Path(__file__).resolve().parents[1] / "examples" / "mor_360m.liv"
    text = example.read_text(encoding="utf-8").replace(
        "    final_norm: RMSNorm(d, eps = eps)",
        "    share features k, v from layers[1][0] to layers[2][0]\n    final_norm: RMSNorm(d, eps = eps)",
    )
    result = analyze_checked(check_source(text, "mor_kv.liv"))
    messages = [d.primary.message for d in result.diagnostics if d.code == "E0311"]
    assert any("op 1 is `shared_feature` in the source, `linear` in the target" in m for m in messages), messages
