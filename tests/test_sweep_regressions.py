"""Regressions found by the front-end/CLI sweep (hostile programs and argument combinations, issue 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from livc.cli import main
from livc.compiler.check import check_source
from livc.compiler.pipeline import analyze_checked

MODEL = """\
from std.mlp import SwiGLU
from std.norms import RMSNorm
from std.embedding import LMHead

{defs}

model M(vocab: int = 100, d: int = 16) {{
    embedding: {embedding}
    norm: RMSNorm(d)
    layers: [{layers}]
    final_norm: RMSNorm(d)
    head: LMHead(vocab, d)
}}
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def codes(text: str) -> list[str]:
    """Every code of check + build + costs (E0315 and the shape checks come from the build)."""
    return [d.code for d in analyze_checked(check_source(text, "t.liv")).diagnostics]


def test_local_named_like_an_input_shadows_it() -> None:
    # `x = embed(...)` in the embedding and `tokens = linear(...)` in a LIV are locals, not the inputs (was E0315)
    defs = """\
op Emb(vocab: int, d: int) {
    x = embed(tokens, vocab, d)
    return x
}

liv Gate(d: int) {
    featurizer {
        tokens = linear(x, d)
    }
    token_mix diagonal {
        h = silu(tokens)
    }
    channel_mix dense {
        out = linear(h, d)
        return out
    }
}"""
    text = MODEL.format(defs=defs, embedding="Emb(vocab, d)", layers="Gate(d), SwiGLU(d, 32)")
    result = check_source(text, "t.liv")
    assert result.ok, [d.message for d in result.diagnostics]
    assert analyze_checked(result).ok


def test_input_read_before_the_local_binding_is_still_e0315() -> None:
    defs = """\
liv Gate(d: int) {
    featurizer {
        g = linear(tokens, d)
        tokens = linear(x, d)
    }
    token_mix diagonal {
        h = silu(g) * tokens
    }
    channel_mix dense {
        out = linear(h, d)
        return out
    }
}"""
    text = MODEL.format(defs=defs, embedding="Embedding(vocab, d)", layers="Gate(d), SwiGLU(d, 32)")
    text = "from std.embedding import Embedding\n" + text
    assert codes(text) == ["E0315"]


SMALL = """\
from std.embedding import Embedding, LMHead
from std.mlp import SwiGLU

model M() {{
    embedding: Embedding(10, 8)
    layers: [SwiGLU(8, 8)]
    head: LMHead(10, 8)
    {field}
}}
"""


@pytest.mark.parametrize("value", ["0", "-1", "-(2**40)"])
def test_context_below_one_token_is_e0304(value: str) -> None:
    # `context: -1` gave negative prefill FLOPs and activation bytes; `context: 0` silently meant 4096
    assert codes(SMALL.format(field=f"context: {value}")) == ["E0304"]


def test_int8_is_not_a_parameter_dtype() -> None:
    # `dtype:` is the parameters' dtype (docs/language.md 9.1: f32, bf16 or f16); int8 passed check, failed build
    assert codes(SMALL.format(field="dtype: int8")) == ["E0304"]
    assert codes(SMALL.format(field="dtype: bf16")) == []


def test_a_leading_byte_order_mark_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Windows editors write a UTF-8 BOM; it was E0101 "unexpected character '\ufeff'" at 1:1
    path = tmp_path / "bom.liv"
    path.write_bytes(b"\xef\xbb\xbf" + SMALL.format(field="").encode())
    code, out, err = run(capsys, "check", str(path))
    assert code == 0, err
    assert "ok: model M: 1 layer (1x SwiGLU)" in " ".join(out.split())  # also: "1 layers" before


def test_invalid_utf8_says_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.liv"
    path.write_bytes(b"let a = 1\n# caf\xe9\n")
    code, _, err = run(capsys, "check", str(path))
    assert code == 1 and "not UTF-8 text (byte 0xe9 on line 2)" in err


@pytest.mark.parametrize(
    ("string", "message", "column"), [('"a\\tb"', "invalid escape '\\t'", 11), ('"ab', "unterminated", 9)]
)
def test_a_bad_escape_is_not_an_unterminated_string(string: str, message: str, column: int) -> None:
    # `"\u0041"` was reported as "unterminated string ... this string is never closed"
    diags = check_source(f"let s = {string}\n", "t.liv").diagnostics
    assert [d.code for d in diags] == ["E0104"]
    span = diags[0].primary.span
    assert message in diags[0].message and span.source.line_col(span.start) == (1, column)


def budgeted(budget: str) -> str:
    return SMALL.format(field=f"context: 4096\n    budget {{ {budget} }}")


def test_a_budget_argument_given_twice_is_e0210() -> None:
    # `cache(seq = 4K, seq = 8K)` was accepted (the last one won)
    assert codes(budgeted("cache(seq = 4K, seq = 8K) <= 1T")) == ["E0210"]


def test_a_negative_budget_limit_shows_the_value() -> None:
    diags = analyze_checked(check_source(budgeted("params <= -1"), "t.liv")).diagnostics
    assert [d.code for d in diags] == ["E0301"] and diags[0].primary.message == "got -1"  # was "got int"


MOR = SMALL.replace("[SwiGLU(8, 8)]", "4 * [SwiGLU(8, 8)]")


@pytest.mark.parametrize("activation", ["causal", "tanh_gate"])
def test_a_router_activation_the_backends_ignore_is_e0311(activation: str) -> None:
    # `activation` was never read by the backends: `tanh_gate` (or `causal`) built a sigmoid router
    router = f"expert_choice(activation = {activation})"
    assert codes(MOR.format(field=f"recursion: mor(recursions = 2, sharing = cycle, router = {router})")) == ["E0311"]


def test_the_router_activation_default_can_be_written() -> None:
    # the documented default `sigmoid` was not writable (E0301: `sigmoid` is the primitive); it is `sigmoid_gate`
    router = "expert_choice(activation = sigmoid_gate)"
    assert codes(MOR.format(field=f"recursion: mor(recursions = 2, sharing = cycle, router = {router})")) == []


@pytest.mark.parametrize(
    "argv",
    [["cost", "{f}", "--batch", "0"], ["check", "{f}", "--bogus"], ["check", "{f}", "--batch=abc"], ["explain"]],
)
def test_a_bad_argument_still_prints_one_json_document(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # argparse's own errors (a `type=` check, an unknown option) printed nothing on stdout under --format json
    path = tmp_path / "m.liv"
    path.write_text(SMALL.format(field=""))
    code, out, err = run(capsys, *[a.format(f=path) for a in argv], "--format", "json")
    doc = json.loads(out)
    assert code == 2 and doc["ok"] is False and doc["command"] == argv[0]
    assert "error:" in doc["usage_error"] and doc["usage_error"] in err


@pytest.mark.parametrize("command", ["check", "cost"])
def test_a_seq_beyond_the_context_is_w0003(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # issue 7 §3: a `--seq` beyond the model's `context` (W0003 existed only for a budget's own `seq`)
    path = tmp_path / "m.liv"
    path.write_text(SMALL.format(field="context: 2048"))
    code, _, err = run(capsys, command, str(path), "--seq", "4K")
    assert code == 0 and "warning[W0003]: --seq 4,096 measures a sequence beyond the model's context of 2,048" in err
    assert f"{path}:8:14" in err  # at the `context:` value
    assert run(capsys, command, str(path), "--seq", "2K")[2] == ""
    assert run(capsys, command, str(path), "--seq", "4K", "--deny-warnings")[0] == 1


def test_the_256_bit_cap_holds_for_literals() -> None:
    # a 100-digit literal (333 bits) was accepted although `10 ** 80` and every operator result are capped
    assert [d.code for d in check_source("let z = " + "9" * 100 + "\n", "t.liv").diagnostics] == ["E0304"]
    assert check_source("let z = " + "9" * 77 + "\n", "t.liv").ok  # 256 bits


def test_a_too_long_literal_says_so() -> None:
    # was "malformed number '<5,000 digits>'" labelled "unknown suffix or fraction"
    diags = check_source("let z = " + "9" * 5000 + "\n", "t.liv").diagnostics
    assert [(d.code, d.message, d.primary.message) for d in diags] == [
        ("E0105", "number literal too long", "more than 300 digits")
    ]


@pytest.mark.parametrize(("overrides", "message"), [([("d", 1)], "must be a mapping"), ({1: 2}, "must be strings")])
def test_api_overrides_of_the_wrong_type_are_a_clear_type_error(overrides: object, message: str) -> None:
    # were AttributeError "'list' object has no attribute 'items'" and "argument of type 'int' is not iterable"
    from livc import api

    with pytest.raises(TypeError, match=message):
        api.to_overrides(overrides)  # type: ignore[arg-type]


def test_check_refuses_a_seq_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `check --seq 1:4` was silently checked at 4 (ranges are for `cost --plot`)
    path = tmp_path / "m.liv"
    path.write_text(SMALL.format(field=""))
    code, _, err = run(capsys, "check", str(path), "--seq", "1:4")
    assert code == 2 and "a range A:B is for `livc cost --plot`" in err


LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "vocab_size": 100,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
}


def test_import_hf_refuses_a_program_that_fails_the_shape_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # head_dim 7 (odd: no RoPE) was written, and then `livc check` of the written file failed with E0312
    config, out = tmp_path / "config.json", tmp_path / "m.liv"
    config.write_text(json.dumps({**LLAMA, "head_dim": 7}))
    code, _, err = run(capsys, "import-hf", str(config), "-o", str(out))
    assert code == 1 and "does not check" in err and "E0312" in err and not out.exists()


def test_import_hf_of_deeply_nested_json_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    config.write_text("[" * 100_000 + "]" * 100_000)  # was exit 70 (RecursionError in json.loads)
    code, _, err = run(capsys, "import-hf", str(config))
    assert code == 1 and "nested too deeply" in err


def test_fmt_json_carries_the_unreadable_file_diagnostic(capsys: pytest.CaptureFixture[str]) -> None:
    # was only a "messages" string, with "diagnostics": [] and "errors": 0 beside "ok": false
    code, out, _ = run(capsys, "fmt", "/nonexistent/x.liv", "--format", "json")
    doc = json.loads(out)
    assert code == 1 and doc["summary"]["errors"] == 1 and [d["code"] for d in doc["diagnostics"]] == ["E0109"]
