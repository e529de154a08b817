"""Shape and meaning checks (issue 7 §3) and the W-code warnings, each with its regression program.

Errors: a tied head whose vocab differs from the embedding's; a truncating default head_dim (or
Hyena filter groups); a `d` argument that is not the width of the stream (MoE, norms, head); a
`return` outside the end of channel_mix / an op body. Warnings: W0001 dead weights, W0002 unused
imports, W0003 budgets beyond `context`, W0004 budgets that can never bind, W0005 unused names.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from livc.cli import main
from livc.compiler.check import check_path, check_source
from livc.compiler.pipeline import analyze_checked, compile_source
from livc.dsl.diagnostics import Diagnostic, Severity

ROOT = Path(__file__).resolve().parent.parent
HEADER = """from std.norms import RMSNorm
from std.embedding import Embedding, LMHead
"""


def model(layers: str, *, imports: str = "", fields: str = "", head: str = "LMHead(vocab, d)") -> str:
    """A small model: `layers` is the layer list expression, `fields` extra model statements."""
    return f"""{HEADER}{imports}
model M(vocab: int = 100, d: int = 64) {{
    embedding: Embedding(vocab, d)
    norm: RMSNorm(d)
    layers: {layers}
    head: {head}
    {fields}
}}
"""


def diagnose(text: str) -> tuple[Diagnostic, ...]:
    """Every diagnostic of the whole pipeline (check, build and passes, budgets)."""
    return analyze_checked(check_source(text, "<test>")).diagnostics


def codes(text: str) -> list[str]:
    return [d.code for d in diagnose(text)]


def only(text: str, code: str) -> Diagnostic:
    found = [d for d in diagnose(text) if d.code == code]
    assert len(found) == 1, [(d.code, d.message) for d in diagnose(text)]
    return found[0]


# ---- a tied head with another vocabulary --------------------------------------------------------------


def test_tied_head_with_a_different_vocab_is_an_error_at_the_head() -> None:
    diag = only(model("[SwiGLU(d, 128)]", imports="from std.mlp import SwiGLU", head="LMHead(vocab + 1, d)"), "E0312")
    assert "101 logits" in diag.message and "100 rows" in diag.message
    assert diag.primary.span.text == "LMHead(vocab + 1, d)"
    assert [label.span.text for label in diag.secondary] == ["Embedding(vocab, d)"]


def test_untied_head_may_have_its_own_vocab() -> None:
    text = model("[SwiGLU(d, 128)]", imports="from std.mlp import SwiGLU", head="LMHead(vocab + 1, d, tied = false)")
    assert codes(text) == []


# ---- widths divided by head counts --------------------------------------------------------------------

ATTENTION = [
    ("GQA", "GQA(d, heads = 5)"),
    ("MHA", "MHA(d, heads = 5)"),
    ("MQA", "MQA(d, heads = 5)"),
    ("SWA", "SWA(d, heads = 5, window = 16)"),
    ("LinearAttention", "LinearAttention(d, heads = 5)"),
]


@pytest.mark.parametrize(("name", "call"), ATTENTION)
def test_a_head_count_that_does_not_divide_d_needs_an_explicit_head_dim(name: str, call: str) -> None:
    text = model(f"[{call}]", imports=f"from std.attention import {name}").replace("d: int = 64", "d: int = 384")
    diag = only(text, "E0302")
    assert diag.message == "heads must divide d, or give head_dim"
    assert diag.primary.span.text == call


@pytest.mark.parametrize(("name", "call"), ATTENTION)
def test_an_explicit_head_dim_is_used_as_given(name: str, call: str) -> None:
    explicit = call.replace("heads = 5", "heads = 5, head_dim = 76")
    text = model(f"[{explicit}]", imports=f"from std.attention import {name}").replace("d: int = 64", "d: int = 384")
    result = compile_source(text, "<test>")
    assert result.diagnostics == ()
    assert result.models[0].param("layers.0.0.q_proj.weight").shape == (380, 384)


def test_the_default_head_dim_is_d_over_heads() -> None:
    text = model("[GQA(d, heads = 4, kv_heads = 2)]", imports="from std.attention import GQA")
    result = compile_source(text, "<test>")
    assert result.diagnostics == ()
    assert result.models[0].param("layers.0.0.k_proj.weight").shape == (32, 64)


@pytest.mark.parametrize("name", ["HyenaSE", "HyenaMR"])
def test_default_filter_groups_need_d_to_be_a_multiple_of_16(name: str) -> None:
    text = model(f"[{name}(d)]", imports=f"from std.hyena import {name}").replace("d: int = 64", "d: int = 24")
    assert "multiple of 16" in only(text, "E0302").message
    assert codes(text.replace(f"{name}(d)", f"{name}(d, groups = 2)")) == []


# ---- a `d` argument that is not the stream's width ----------------------------------------------------


@pytest.mark.parametrize(
    ("layers", "head", "culprit"),
    [
        (
            "[MoE(32, experts = 4, top_k = 2, hidden = 16)]",
            "LMHead(vocab, d)",
            "MoE(32, experts = 4, top_k = 2, hidden = 16)",
        ),
        ("[RMSNorm(32)]", "LMHead(vocab, d)", "RMSNorm(32)"),
        ("[MoE(d, experts = 4, top_k = 2, hidden = 16)]", "LMHead(vocab, 32)", "LMHead(vocab, 32)"),
    ],
)
def test_a_d_argument_must_be_the_width_of_the_stream(layers: str, head: str, culprit: str) -> None:
    diag = only(model(layers, imports="from std.mlp import MoE", head=head), "E0312")
    assert diag.primary.span.text == culprit
    assert "64-wide" in diag.message
    assert [label.span.text for label in diag.secondary] == ["Embedding(vocab, d)"]


def test_moe_with_the_model_width_checks() -> None:
    assert codes(model("3 * [MoE(d, experts = 4, top_k = 2, hidden = 16)]", imports="from std.mlp import MoE")) == []


def test_a_wrong_d_in_many_layers_is_reported_once() -> None:
    text = model("6 * [MoE(32, experts = 4, top_k = 2, hidden = 16)]", imports="from std.mlp import MoE")
    assert codes(text) == ["E0312"]


# ---- where `return` may stand -------------------------------------------------------------------------


def _liv(featurizer: str, token_mix: str, channel_mix: str) -> str:
    body = f"""liv L(d: int) {{
    featurizer {{
{featurizer}
    }}
    token_mix diagonal {{
{token_mix}
    }}
    channel_mix dense {{
{channel_mix}
    }}
}}
"""
    return body + model("[L(d)]")


GOOD_FEATURIZER = "        a = linear(x, d)"
GOOD_TOKEN_MIX = "        y = silu(a)"
GOOD_CHANNEL_MIX = "        out = linear(y, d)\n        return out"


def test_the_return_placement_program_is_valid() -> None:
    assert codes(_liv(GOOD_FEATURIZER, GOOD_TOKEN_MIX, GOOD_CHANNEL_MIX)) == []


@pytest.mark.parametrize(
    ("featurizer", "token_mix", "channel_mix", "message", "where"),
    [
        (GOOD_FEATURIZER + "\n        return a", GOOD_TOKEN_MIX, GOOD_CHANNEL_MIX, "featurizer section", "return a"),
        (GOOD_FEATURIZER, GOOD_TOKEN_MIX + "\n        return y", GOOD_CHANNEL_MIX, "token_mix section", "return y"),
        (
            GOOD_FEATURIZER,
            "        if d > 1 {\n            return a\n        }\n" + GOOD_TOKEN_MIX,
            GOOD_CHANNEL_MIX,
            "token_mix section",
            "return a",
        ),
        (
            GOOD_FEATURIZER,
            GOOD_TOKEN_MIX,
            GOOD_CHANNEL_MIX + "\n        z = silu(out)",
            "after `return`",
            "z = silu(out)",
        ),
        (
            GOOD_FEATURIZER,
            GOOD_TOKEN_MIX,
            "        out = linear(y, d)\n        if d > 1 {\n            return y\n        }\n        return out",
            "before the end",
            "return y",
        ),
    ],
)
def test_misplaced_returns_are_errors(
    featurizer: str, token_mix: str, channel_mix: str, message: str, where: str
) -> None:
    diag = only(_liv(featurizer, token_mix, channel_mix), "E0211")
    assert message in diag.message
    assert diag.primary.span.text == where


def test_a_final_if_else_may_return_in_both_branches() -> None:
    channel = "        out = linear(y, d)\n        if d > 1 {\n            return out\n        } else {\n"
    channel += "            return y\n        }"
    assert codes(_liv(GOOD_FEATURIZER, GOOD_TOKEN_MIX, channel)) == []


def test_statements_after_an_op_return_are_errors() -> None:
    text = "op N(d: int) {\n    return rmsnorm(x)\n    y = silu(x)\n}\n" + model("[N(d)]")
    assert only(text, "E0211").primary.span.text == "y = silu(x)"


# ---- W0001: weights that never reach the output -------------------------------------------------------


def test_a_dead_weight_is_dropped_and_reported_once_at_its_call() -> None:
    featurizer = GOOD_FEATURIZER + "\n        gate = linear(x, 2 * d)\n        g = sigmoid(gate)"
    text = _liv(featurizer, GOOD_TOKEN_MIX, GOOD_CHANNEL_MIX).replace("[L(d)]", "4 * [L(d)]")
    result = analyze_checked(check_source(text, "<test>"))
    assert result.ok and [d.code for d in result.diagnostics] == ["W0001"]
    diag = result.diagnostics[0]
    assert diag.severity is Severity.WARNING and "'gate'" in diag.message
    assert diag.primary.span.text == "linear(x, 2 * d)"
    assert not any(".gate." in p.id for p in result.compiled.models[0].params)


# ---- W0002: unused imports ----------------------------------------------------------------------------


def test_unused_imports_are_reported_per_name() -> None:
    text = model("[SwiGLU(d, 128)]", imports="from std.mlp import SwiGLU, GLU\nimport std.attention")
    found = [(d.code, d.primary.span.text) for d in diagnose(text)]
    assert found == [("W0002", "GLU"), ("W0002", "std.attention")]


def test_qualified_and_aliased_imports_count_as_used() -> None:
    text = model("[mlp.SwiGLU(d, 128), a.GQA(d, heads = 4)]", imports="import std.mlp\nimport std.attention as a")
    assert codes(text) == []


# ---- W0003: budgets beyond the context ----------------------------------------------------------------

ATTN = {"layers": "[GQA(d, heads = 4)]", "imports": "from std.attention import GQA"}


@pytest.mark.parametrize(
    ("context", "seq", "warned"), [(4096, "32K", True), (4096, "4096", False), (None, "32K", False)]
)
def test_a_budget_beyond_the_context_is_a_warning(context: int | None, seq: str, warned: bool) -> None:
    fields = (f"context: {context}\n" if context else "") + f"    budget {{ cache(seq = {seq}) <= 1GiB }}"
    diags = diagnose(model(**ATTN, fields=fields))
    assert [d.code for d in diags] == (["W0003"] if warned else [])
    if warned:
        assert diags[0].primary.span.text == "seq = 32K"


# ---- W0004: budgets that can never bind ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("budgets", "never_binds"),
    [
        (["params <= 1M", "params <= 2M"], ["params <= 2M"]),
        (["params <= 1M", "params <= 1M"], ["params <= 1M"]),
        (["params < 1M", "params <= 1M"], ["params <= 1M"]),
        (["params <= 1M", "params < 1M"], ["params <= 1M"]),
        (["params <= 1M", "non_embedding_params <= 1M"], ["non_embedding_params <= 1M"]),
        (["non_embedding_params <= 1M", "params <= 2M"], []),
        (["cache(seq = 8K) <= 4MiB", "cache(seq = 4K) <= 8MiB"], ["cache(seq = 4K) <= 8MiB"]),
        (["cache(seq = 4K) <= 4MiB", "cache(seq = 8K) <= 8MiB"], []),
        (["cache(seq = 8K, dtype = f32) <= 4MiB", "cache(seq = 4K, dtype = bf16) <= 8MiB"], []),
        (["cache(seq = 8K) <= 4MiB", "cache(seq = 4K, batch = 1) <= 8MiB"], []),
        (["flops_per_token(seq = 4K) <= 1G", "prefill_flops(seq = 4K) <= 2G"], []),
    ],
)
def test_a_budget_implied_by_another_is_a_warning(budgets: list[str], never_binds: list[str]) -> None:
    fields = "context: 8192\n    budget {\n" + "\n".join(f"        {b}" for b in budgets) + "\n    }"
    diags = [d for d in diagnose(model(**ATTN, fields=fields)) if d.code != "E0402"]
    assert [d.code for d in diags] == ["W0004"] * len(never_binds)
    assert [d.primary.span.text for d in diags] == never_binds


# ---- W0005: unused parameters and lets ----------------------------------------------------------------


def test_unused_parameters_and_lets_are_reported() -> None:
    text = "fn half(n: int, unused: int) -> int = n // 2\n" + model(
        "[SwiGLU(d, half(d, 1))]", imports="from std.mlp import SwiGLU", fields="let spare = 3"
    ).replace("d: int = 64", "d: int = 64, heads: int = 4")
    found = [(d.code, d.primary.span.text) for d in diagnose(text)]
    assert found == [("W0005", "unused"), ("W0005", "heads"), ("W0005", "spare")]


def test_d_underscore_names_and_require_only_uses_count_as_used() -> None:
    liv = """liv Scale(d: int, _spare: int = 0, k: int = 2) {
    require k >= 1
    token_mix diagonal {
        y = silu(x)
    }
    channel_mix diagonal {
        let _tmp = 1
        s = scale(y)
        return s
    }
}
"""
    assert codes(liv + model("[Scale(d)]")) == []


# ---- policy -------------------------------------------------------------------------------------------


def test_warnings_are_not_reported_next_to_errors() -> None:
    text = model("[SwiGLU(d, 128)]", imports="from std.mlp import SwiGLU, GLU", fields="let spare = missing")
    assert codes(text) == ["E0201"]


def test_warnings_reach_every_entry_point_and_do_not_fail_the_check() -> None:
    text = model("[SwiGLU(d, 128)]", imports="from std.mlp import SwiGLU, GLU")
    checked = check_source(text, "<test>")
    assert checked.ok and [d.code for d in checked.diagnostics] == ["W0002"]
    assert [d.code for d in compile_source(text, "<test>").diagnostics] == ["W0002"]


SOURCES = sorted((ROOT / "examples").glob("*.liv")) + sorted((ROOT / "stdlib").glob("*.liv"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_examples_and_stdlib_check_without_warnings(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = analyze_checked(check_path(path))
    assert result.diagnostics == (), [(d.code, d.message) for d in result.diagnostics]
    assert main(["check", str(path)]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.out + captured.err
