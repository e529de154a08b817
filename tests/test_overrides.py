"""Model parameters from everywhere (issue 7 §5): `-D` overrides, the Python API, instances of
another file's model (`model Small = M(d = 512)`), the `context:` default sequence length, and
MoE active parameters (checked against a hand computation and Mixtral-8x7B's model card)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import GOLDEN, assert_golden
from hypothesis import given, settings
from hypothesis import strategies as st

import livc
from livc import api
from livc.compiler.analysis.budgets import check_budgets, parse_cli_budget
from livc.compiler.analysis.evaluate import DEFAULT_SEQ, Context, default_seq
from livc.compiler.analysis.report import summary_lines
from livc.compiler.analysis.report_json import report_json
from livc.compiler.check import check_path, check_source
from livc.compiler.elaboration.overrides import Override, OverrideSyntaxError, parse_define, python_to_liv
from livc.compiler.pipeline import analyze_path, compile_path, compile_source
from livc.dsl import ast as A
from livc.dsl.formatter import expr, flat
from livc.dsl.parser import parse_text
from livc.dsl.render import render_all_text

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
LFM2 = EXAMPLES / "lfm2_350m.liv"
MIXTRAL = Path(__file__).parent / "models" / "mixtral_8x7b.liv"
CASES = GOLDEN / "overrides"

# A model whose parameter count has a closed form in d: tied embedding V*d, per layer a pre-norm
# SwiGLU of width 4d (3 * d * 4d weights + d norm), final norm d.
DENSE = """\
from std.embedding import Embedding, LMHead
from std.mlp import SwiGLU
from std.norms import RMSNorm

model Dense(vocab: int = 1000, d: int = 64, n_layers: int = 2) {
    embedding: Embedding(vocab, d)
    norm: RMSNorm(d)
    layers: n_layers * [SwiGLU(d, 4 * d)]
    final_norm: RMSNorm(d)
    head: LMHead(vocab, d)
}
"""


def dense_params(vocab: int, d: int, n_layers: int) -> int:
    return vocab * d + n_layers * (12 * d * d + d) + d


def defines(*texts: str) -> tuple[Override, ...]:
    return tuple(parse_define(t) for t in texts)


def codes(diagnostics: tuple) -> list[str]:
    return [d.code for d in diagnostics]


# ---- parse_define ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("d=512", Override("d", "512")),
        ("LFM2_350M.d=512", Override("d", "512", "LFM2_350M")),
        ("qk_norm=true", Override("qk_norm", "true")),
        ("rope_theta=1M", Override("rope_theta", "1M")),
        (" d =512", Override("d", "512")),
        ("name=a=b", Override("name", "a=b")),
    ],
)
def test_parse_define(text: str, expected: Override) -> None:
    assert parse_define(text) == expected


@pytest.mark.parametrize("text", ["d", "=512", "d=", "d=  ", "a.b.c=1", "1d=2", "d-x=1", ".d=1", "M.=1", "d x=1"])
def test_parse_define_rejects_malformed_specs(text: str) -> None:
    with pytest.raises(OverrideSyntaxError) as info:
        parse_define(text)
    assert info.value.text == text and info.value.reason


@given(st.text(max_size=20))
@settings(max_examples=200, deadline=None)
def test_parse_define_accepts_only_names_and_round_trips(text: str) -> None:
    try:
        override = parse_define(text)
    except OverrideSyntaxError as exc:
        assert exc.reason
        return
    assert override.name.isidentifier() and override.text.strip()
    assert parse_define(override.display) == override


@pytest.mark.parametrize(
    ("value", "text"),
    [(True, "true"), (512, "512"), (0.5, "0.5"), (1e-5, "1e-05"), ("a\"b\n", '"a\\"b\\n"'), (None, "none"),
     ([1, 2], "[1, 2]"), ((1.5,), "[1.5]")],
)  # fmt: skip
def test_python_values_become_liv_literals(value: object, text: str) -> None:
    assert python_to_liv(value) == text


def test_python_values_without_a_liv_spelling_are_type_errors() -> None:
    with pytest.raises(TypeError):
        python_to_liv({"a": 1})
    with pytest.raises(TypeError):
        livc.compile(LFM2, d=object())


# ---- -D through check, cost and build ------------------------------------------------------------


def test_override_changes_every_stage_of_the_dense_model() -> None:
    result = compile_source(DENSE, overrides=defines("d=128", "n_layers=3"))
    assert result.ok
    assert result.models[0].d_model == 128 and len(result.models[0].layers) == 3
    report = api.cost(_write_dense(), d=128, n_layers=3)
    assert report.params == dense_params(1000, 128, 3)


def _write_dense(path: Path = Path("/tmp/livc_test_overrides_dense.liv")) -> Path:
    path.write_text(DENSE, encoding="utf-8")
    return path


@given(st.integers(1, 64).map(lambda k: 8 * k), st.integers(1, 4), st.integers(1, 5000))
@settings(max_examples=25, deadline=None)
def test_overriding_d_scales_params_as_the_closed_form(d: int, n_layers: int, vocab: int) -> None:
    result = check_source(DENSE, overrides=defines(f"d={d}", f"n_layers={n_layers}", f"vocab={vocab}"))
    assert result.ok
    from livc.compiler.pipeline import analyze_checked

    assert analyze_checked(result).reports[0].params == dense_params(vocab, d, n_layers)


def _param_defaults(path: Path) -> list[tuple[str, str]]:
    model = next(i for i in parse_text(path.read_text(encoding="utf-8")).items if isinstance(i, A.Def))
    return [(p.name.name, flat(expr(p.default))) for p in model.params if p.default is not None]


EXAMPLE_DEFAULTS = [
    (path, name, text) for path in sorted(EXAMPLES.glob("*.liv")) for name, text in _param_defaults(path)
]


@given(st.sampled_from(EXAMPLE_DEFAULTS))
@settings(max_examples=20, deadline=None)
def test_overriding_a_parameter_with_its_default_gives_the_same_ir(case: tuple[Path, str, str]) -> None:
    path, name, default = case
    plain = compile_path(path)
    overridden = compile_path(path, overrides=(Override(name, default),))
    assert plain.ok and overridden.ok, render_all_text(overridden.diagnostics)
    assert overridden.models == plain.models


def test_model_qualified_override_beats_a_bare_one() -> None:
    both = analyze_path(LFM2, overrides=defines("d=512", "LFM2_350M.d=256"))
    only = analyze_path(LFM2, overrides=defines("d=256"))
    assert both.ok and both.reports[0].params == only.reports[0].params


def test_dtype_and_symbol_parameters_take_names_and_python_strings(tmp_path: Path) -> None:
    src = DENSE.replace("n_layers: int = 2)", "n_layers: int = 2, dt: dtype = f32)").replace(
        "head: LMHead(vocab, d)", "head: LMHead(vocab, d)\n    dtype: dt"
    )
    path = tmp_path / "dense.liv"
    path.write_text(src, encoding="utf-8")
    assert api.cost(path).dtype_bytes == 4
    assert api.cost(path, dt="bf16").dtype_bytes == 2
    assert analyze_path(path, overrides=defines("dt=bf16")).reports[0].dtype_bytes == 2


def test_python_api_compile_builds_the_overridden_module() -> None:
    torch = pytest.importorskip("torch")
    built = livc.compile(_write_dense(), d=32, n_layers=1, vocab=100)
    with torch.device("meta"):
        module = built.model_class()
    assert sum(p.numel() for p in module.parameters()) == dense_params(100, 32, 1)
    assert built.ir.d_model == 32
    default = livc.compile(_write_dense())
    assert default.code != built.code  # the overrides take part in the header digest too


def test_python_api_errors_carry_rendered_diagnostics() -> None:
    with pytest.raises(api.LivcError) as info:
        livc.compile(LFM2, d=1.5)
    assert "error[E0301]" in str(info.value) and "<-D d=1.5>" in str(info.value)
    assert codes(info.value.diagnostics) == ["E0301"]
    assert not api.check(LFM2, overrides={"LFM2_350M.heads": 0}).ok
    with pytest.raises(OverrideSyntaxError):
        api.check(LFM2, overrides={"not a name": 1})


def test_a_python_string_is_never_evaluated() -> None:
    result = api.check(LFM2, d="__import__('os').system('false')")
    assert codes(result.diagnostics) == ["E0301"]


# ---- diagnostics ---------------------------------------------------------------------------------

DIAGNOSTIC_CASES = {
    "unknown_bare": (("dd=5",), "E0203"),
    "unknown_qualified": (("LFM2_350M.head=3",), "E0203"),
    "unknown_model": (("LFM2.d=3",), "E0201"),
    "wrong_type": (("d=1.5",), "E0301"),
    "bool_for_float": (("eps=true",), "E0301"),
    "not_literal": (("d=min(1, 2)",), "E0301"),
    "unknown_name": (("d=big",), "E0201"),
    "non_finite": (("eps=inf",), "E0304"),
    "twice": (("d=512", "d=256"), "E0210"),
}
# Diagnostics whose wording belongs to the parser or the evaluator: the code and the caret only.
SHARED_CASES = {
    "syntax": ("d=512 +", "E0103", 7),
    "malformed_number": ("d=3X", "E0105", 2),
    "too_large": ("d=10**10000", "E0304", 2),
}


@pytest.mark.parametrize("case", sorted(DIAGNOSTIC_CASES))
def test_override_diagnostics(case: str, update_golden: bool) -> None:
    specs, code = DIAGNOSTIC_CASES[case]
    result = check_path(LFM2, defines(*specs))
    assert codes(result.diagnostics) == [code]
    assert_golden(CASES / f"{case}.txt", render_all_text(result.diagnostics), update_golden)


@pytest.mark.parametrize("case", sorted(SHARED_CASES))
def test_override_value_errors_point_into_the_override(case: str) -> None:
    spec, code, offset = SHARED_CASES[case]
    (diag,) = check_path(LFM2, defines(spec)).diagnostics
    span = diag.primary.span
    assert diag.code == code and span.source.name == f"<-D {spec}>" and span.start == offset


def test_unknown_parameter_suggests_a_close_name() -> None:
    (diag,) = check_path(LFM2, defines("n_head=3", "LFM2_350M.kv_head=2")).diagnostics[:1]
    assert diag.code == "E0203" and diag.help == "did you mean 'heads'?"


def test_out_of_range_values_are_diagnosed_by_the_models_requires() -> None:
    assert "E0302" in codes(check_path(LFM2, defines("heads=0")).diagnostics)
    assert "E0302" in codes(check_path(LFM2, defines("d=-5")).diagnostics)


# ---- instances of another file's model ----------------------------------------------------------

SMALL = """\
from "lfm2_350m.liv" import LFM2_350M
import "lfm2_350m.liv" as lfm

model Small = LFM2_350M(d = 512, ff_dim = 2048)
model Tiny = Small(vocab = 1000)
model Positional = lfm.LFM2_350M(1000, 256)
"""


@pytest.fixture
def small(tmp_path: Path) -> Path:
    (tmp_path / "lfm2_350m.liv").write_text(LFM2.read_text(encoding="utf-8"), encoding="utf-8")
    path = tmp_path / "small.liv"
    path.write_text(SMALL, encoding="utf-8")
    return path


def _params(path: Path, *specs: str) -> dict[str, int]:
    result = analyze_path(path, overrides=defines(*specs))
    assert result.ok, render_all_text(result.diagnostics)
    return {m.name: r.params for m, r in zip(result.compiled.models, result.reports)}


def test_instances_equal_overridden_definitions(small: Path) -> None:
    got = _params(small)
    assert got["Small"] == _params(LFM2, "d=512", "ff_dim=2048")["LFM2_350M"]
    assert got["Tiny"] == _params(LFM2, "d=512", "ff_dim=2048", "vocab=1000")["LFM2_350M"]
    assert got["Positional"] == _params(LFM2, "vocab=1000", "d=256")["LFM2_350M"]


def test_overrides_apply_to_instances(small: Path) -> None:
    got = _params(small, "Tiny.d=128")
    assert got["Tiny"] == _params(LFM2, "d=128", "ff_dim=2048", "vocab=1000")["LFM2_350M"]
    assert got["Small"] == _params(small)["Small"]
    everywhere = _params(small, "d=128")
    assert everywhere["Positional"] == _params(LFM2, "vocab=1000", "d=128")["LFM2_350M"]


def test_an_instance_compiles_under_its_own_name(small: Path) -> None:
    torch = pytest.importorskip("torch")
    built = livc.compile(small, model="Tiny", d=64, ff_dim=256, vocab=100)
    assert built.ir.name == "Tiny" and built.model_class.__name__ == "Tiny"
    with torch.device("meta"):
        assert (
            sum(p.numel() for p in built.model_class().parameters())
            == api.cost(small, model="Tiny", d=64, ff_dim=256, vocab=100).params
        )
    with pytest.raises(ValueError, match="several models"):
        api.cost(small)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("model A = B()\nmodel B = A()\n", "E0307"),
        ("from std.attention import GQA\nmodel C = GQA(d = 5)\n", "E0301"),
        ("model E = 3\n", "E0309"),
        ('from "lfm2_350m.liv" import LFM2_350M\nmodel D = LFM2_350M(dd = 5)\n', "E0203"),
        ('from "lfm2_350m.liv" import LFM2_350M\nmodel D = LFM2_350M(d = 5, d = 6)\n', "E0210"),
        ('from "lfm2_350m.liv" import LFM2_350M\nmodel D = LFM2_350M(1, 2, 3, 4, 5, 6, 7, 8, 9)\n', "E0206"),
        ('from "lfm2_350m.liv" import LFM2_350M\nmodel D = LFM2_350M(d = 1.5)\n', "E0301"),
        ('from "lfm2_350m.liv" import LFM2_350M\nmodel D = Nope(d = 1)\n', "E0201"),
        ('from "lfm2_350m.liv" import LFM2_350M\nlet x = LFM2_350M(d = 1)\n', "E0202"),
    ],
)
def test_instance_errors(small: Path, text: str, code: str) -> None:
    small.write_text(text, encoding="utf-8")
    result = check_path(small)
    assert codes(result.diagnostics)[:1] == [code], render_all_text(result.diagnostics)


def test_calling_a_model_suggests_an_instance(small: Path) -> None:
    small.write_text('from "lfm2_350m.liv" import LFM2_350M\nlet x = LFM2_350M(d = 1)\n', encoding="utf-8")
    (diag,) = [d for d in check_path(small).diagnostics if d.code == "E0202"]
    assert diag.help is not None and "model Mine = LFM2_350M(...)" in diag.help


def test_instances_round_trip_through_the_formatter() -> None:
    from livc.dsl.formatter import format_text

    assert format_text(SMALL) == SMALL
    assert format_text("model S = (M)(d=1)\n") == "model S = M(d = 1)\n"


# ---- context: the default sequence length ------------------------------------------------------


def test_default_seq_is_the_models_context() -> None:
    compiled = compile_path(LFM2)
    assert default_seq(compiled.models[0]) == 128000 == default_seq(compiled.check.models[0])
    assert default_seq(analyze_path(LFM2).reports[0]) == 128000
    assert default_seq(compile_source(DENSE).models[0]) == DEFAULT_SEQ == 4096


# ---- MoE active parameters ---------------------------------------------------------------------


def mixtral_hand(layers: int = 32, d: int = 4096, f: int = 14336, n: int = 8, k: int = 2) -> tuple[int, int]:
    vocab, kv = 32000, 8 * 128
    attention = 2 * d * d + 2 * d * kv
    per_layer = attention + n * d + 2 * d  # router and the two norms count fully
    total = layers * (per_layer + n * 3 * d * f) + 2 * vocab * d + d
    active = layers * (per_layer + k * 3 * d * f) + 2 * vocab * d + d
    return total, active


def test_mixtral_active_params_match_the_hand_count_and_the_model_card() -> None:
    result = analyze_path(MIXTRAL)
    assert result.ok, render_all_text(result.diagnostics)
    report = result.reports[0]
    assert (report.params, report.active_params) == mixtral_hand() == (46_702_792_704, 12_879_925_248)
    assert round(report.params / 1e9, 1) == 46.7 and round(report.active_params / 1e9, 1) == 12.9
    assert sum(r.active_params for r in report.rows) == report.active_params


@given(st.integers(1, 8), st.integers(1, 3))
@settings(max_examples=10, deadline=None)
def test_active_params_follow_top_k(experts: int, layers: int) -> None:
    top_k = min(2, experts)
    d, f = 64, 128
    result = analyze_path(MIXTRAL, overrides=defines(f"d={d}", f"ffn={f}", f"experts={experts}", f"top_k={top_k}",
                                                      f"n_layers={layers}", "heads=4", "kv_heads=2"))  # fmt: skip
    report = result.reports[0]
    assert report.params - report.active_params == layers * (experts - top_k) * 3 * d * f


def test_shared_experts_count_fully(tmp_path: Path) -> None:
    src = DENSE.replace("SwiGLU(d, 4 * d)", "MoE(d, 4, 1, 32, shared = 2)").replace(
        "std.mlp import SwiGLU", "std.mlp import MoE"
    )
    path = tmp_path / "moe.liv"
    path.write_text(src, encoding="utf-8")
    report = api.cost(path, d=16)
    d, f = 16, 32
    per_layer_total = 4 * d + (4 + 2) * 3 * d * f + d
    per_layer_active = 4 * d + (1 + 2) * 3 * d * f + d
    assert report.params == 1000 * d + 2 * per_layer_total + d
    assert report.active_params == 1000 * d + 2 * per_layer_active + d


def test_dense_models_have_all_params_active() -> None:
    report = analyze_path(LFM2).reports[0]
    assert report.active_params == report.params
    assert "active" not in summary_lines(report, Context())[0]


def test_active_params_in_text_json_and_budgets() -> None:
    result = analyze_path(MIXTRAL, overrides=defines("top_k=3"))
    assert codes(result.diagnostics) == ["E0402"]
    assert "active_params = 18,517,069,824" in result.diagnostics[0].message
    report = result.reports[0]
    assert "active per token 12,879,925,248" in summary_lines(analyze_path(MIXTRAL).reports[0], Context())[0]
    document = report_json(report, Context())
    assert document["active_params"] == report.active_params
    assert sum(row["active_params"] for row in document["rows"]) == report.active_params
    plain = analyze_path(MIXTRAL)
    model, report = plain.compiled.models[0], plain.reports[0]
    (diag,) = check_budgets(model, report, (parse_cli_budget("active_params<=12G"),))
    assert diag.code == "E0402" and "batch" not in diag.message
    assert check_budgets(model, report, (parse_cli_budget("active_params<=13G"),)) == []


def test_build_with_overrides_names_them_in_the_header(tmp_path: Path) -> None:
    """`livc build -D` and `livc.compile(d=...)` write the same header: the file, the overrides, one digest."""
    from livc.cli import main

    example = Path(__file__).resolve().parents[1] / "examples" / "lfm2_350m.liv"
    out = tmp_path / "m.py"
    assert main(["build", str(example), "-D", "d=512", "-o", str(out)]) == 0
    cli_header = out.read_text(encoding="utf-8").splitlines()[:2]
    api_header = livc.compile(example, d=512).code.splitlines()[:2]
    plain = livc.compile(example).code.splitlines()[:2]
    assert cli_header == api_header and cli_header[0].endswith(f"from {example} -D d=512")
    assert plain[1] != cli_header[1]  # the digest covers the overrides
