"""The external check: HF config -> .liv -> generated PyTorch module -> HF weights -> same logits as transformers.

No downloads: small randomly initialised transformers models (hidden 64, 4 layers, vocab 97), all fp32.
Prompt logits and 16 decode steps (our prefill + decode_step against HF forward on the growing sequence)
must agree to 1e-4; parameter counts must be equal; weights load from a state_dict, a safetensors file,
a sharded directory and a list of files; mismatches and unsupported configs fail with clear errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from livc.backends.pytorch.hf import (  # noqa: E402
    HFImportError,
    HFWeightsError,
    hf_state_dict_to_livc,
    import_hf,
    load_hf_weights,
)
from livc.backends.pytorch.load import generate_from_path, load_code  # noqa: E402
from livc.cli import main  # noqa: E402
from livc.compiler.check import check_source  # noqa: E402
from livc.compiler.pipeline import analyze_checked, compile_source  # noqa: E402
from livc.dsl.formatter import format_text  # noqa: E402

TOL = 1e-4
SMALL = dict(vocab_size=97, hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2)

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    # mixed conv/attention, QK-norm, the auto-adjusted FFN width rule (200 -> 133 -> 172 -> 192), tied head
    "lfm2": (
        "Lfm2",
        dict(
            SMALL,
            intermediate_size=200,
            block_ffn_dim_multiplier=1.3,
            block_multiple_of=24,
            layer_types=["conv", "full_attention", "conv", "full_attention"],
        ),
    ),
    # legacy full_attn_idxs, conv biases, kernel 4, untied head, no width adjustment
    "lfm2-legacy": (
        "Lfm2",
        dict(
            SMALL,
            intermediate_size=96,
            block_auto_adjust_ff_dim=False,
            full_attn_idxs=[0, 3],
            conv_bias=True,
            conv_L_cache=4,
            tie_word_embeddings=False,
        ),
    ),
    "llama": (
        "Llama",
        dict(SMALL, intermediate_size=96, rope_parameters={"rope_type": "default", "rope_theta": 5000.0}),
    ),
    # tied head, all biases, head_dim decoupled from hidden / heads
    "llama-tied": (
        "Llama",
        dict(SMALL, intermediate_size=96, tie_word_embeddings=True, attention_bias=True, mlp_bias=True, head_dim=24),
    ),
    "qwen2": ("Qwen2", dict(SMALL, intermediate_size=96)),
    "qwen2-swa": (
        "Qwen2",
        dict(SMALL, intermediate_size=96, use_sliding_window=True, sliding_window=4, max_window_layers=2),
    ),
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    """Tiny matrices: intra-op threads only add synchronisation (seconds per forward on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def hf_model(kind: str, **overrides: Any) -> Any:
    """A randomly initialised transformers model with every parameter (norms, biases) perturbed."""
    prefix, kwargs = CASES[kind]
    config = getattr(transformers, f"{prefix}Config")(**{**kwargs, **overrides})
    torch.manual_seed(0)
    model = getattr(transformers, f"{prefix}ForCausalLM")(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.1)
    return model


def livc_model(config: dict[str, Any], tmp_path: Path) -> tuple[Any, Any]:
    """import_hf -> .liv file -> generated module; returns (IR model, module instance)."""
    path = tmp_path / "imported.liv"
    path.write_text(import_hf(config), encoding="utf-8")
    ir, code = generate_from_path(path)
    module = load_code(code, f"livc_hf_{ir.name.lower()}_{abs(hash(str(tmp_path)))}")
    return ir, getattr(module, ir.name)().eval()


def max_diffs(hf: Any, ours: Any, steps: int = 16) -> tuple[float, float]:
    """Max |logits diff| for a prompt (batch 2, length 11) and over `steps` decode steps."""
    gen = torch.Generator().manual_seed(1)
    vocab = hf.config.vocab_size
    prompt = torch.randint(0, vocab, (2, 11), generator=gen)
    with torch.no_grad():
        ref = hf(prompt).logits
        prompt_diff = max((ours(prompt).logits - ref).abs().max().item(), 0.0)
        cache = ours.init_cache(2, prompt.shape[1] + steps)
        prompt_diff = max(prompt_diff, (ours.prefill(prompt, cache) - ref).abs().max().item())
        seq, decode_diff = prompt, 0.0
        for _ in range(steps):
            token = torch.randint(0, vocab, (2, 1), generator=gen)
            seq = torch.cat([seq, token], dim=1)
            step = ours.decode_step(token, cache)
            decode_diff = max(decode_diff, (step - hf(seq).logits[:, -1:]).abs().max().item())
    return prompt_diff, decode_diff


def n_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("kind", list(CASES))
def test_logits_match_transformers(kind: str, tmp_path: Path) -> None:
    hf = hf_model(kind)
    ir, ours = livc_model(hf.config.to_dict(), tmp_path)
    load_hf_weights(ours, hf.state_dict())
    assert n_params(ours) == n_params(hf)
    converted = hf_state_dict_to_livc(type(hf).__name__, hf.state_dict(), ir)
    assert set(converted) == {p.id for p in ir.params}
    prompt, decode = max_diffs(hf, ours)
    print(f"{kind}: prompt {prompt:.2e}, decode {decode:.2e}")
    assert prompt <= TOL and decode <= TOL


def test_sliding_window_decodes_past_max_len_like_transformers(tmp_path: Path) -> None:
    """Qwen2 with every layer sliding (window 4): the ring-buffer cache holds 4 positions, init_cache(max_len=6)
    decodes to position 29 and matches transformers' forward over the whole sequence."""
    hf = hf_model("qwen2-swa", max_window_layers=0)
    ir, ours = livc_model(hf.config.to_dict(), tmp_path)
    load_hf_weights(ours, hf.state_dict())
    ids = torch.randint(0, 97, (2, 30), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = hf(ids).logits
        cache = ours.init_cache(2, 6)
        assert ours.capacity(cache) is None
        assert all(t.shape[2] == 4 for key, t in cache.items() if key != "pos")
        diff = (ours.prefill(ids[:, :5], cache) - ref[:, :5]).abs().max().item()
        for t in range(5, 30):
            diff = max(diff, (ours.decode_step(ids[:, t : t + 1], cache)[:, 0] - ref[:, t]).abs().max().item())
    print(f"qwen2 all-sliding, 25 steps past a 6-position cache: {diff:.2e}")
    assert diff <= TOL


@pytest.mark.parametrize("kind", ["lfm2", "llama-tied", "qwen2"])
def test_load_from_safetensors(kind: str, tmp_path: Path) -> None:
    from safetensors.torch import save_model

    hf = hf_model(kind)
    single = tmp_path / "single"
    single.mkdir()
    save_model(hf, str(single / "weights.safetensors"))  # drops the tied lm_head.weight
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="100KB")  # index + shards + config.json
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    shards = sorted((tmp_path / "sharded").glob("*.safetensors"))
    assert len(shards) > 1
    _, ours = livc_model(hf.config.to_dict(), tmp_path)
    for source in (single / "weights.safetensors", str(tmp_path / "sharded"), shards):
        for p in ours.parameters():
            torch.nn.init.zeros_(p)
        load_hf_weights(ours, source)
        prompt, _ = max_diffs(hf, ours, steps=1)
        assert prompt <= TOL, source


def test_wrong_hidden_size_is_a_clear_error(tmp_path: Path) -> None:
    hf = hf_model("llama")
    _, ours = livc_model(dict(hf.config.to_dict(), hidden_size=48), tmp_path)
    with pytest.raises(HFWeightsError) as err:
        load_hf_weights(ours, hf.state_dict())
    text = str(err.value)
    assert "wrong shape" in text
    assert "model.embed_tokens.weight -> embedding.out.weight: checkpoint (97, 64), livc (97, 48)" in text


def test_wrong_layer_types_list_missing_and_unexpected(tmp_path: Path) -> None:
    hf = hf_model("lfm2")
    config = dict(hf.config.to_dict(), layer_types=["conv", "conv", "conv", "full_attention"])
    _, ours = livc_model(config, tmp_path)
    with pytest.raises(HFWeightsError) as err:
        load_hf_weights(ours, hf.state_dict())
    text = str(err.value)
    assert "missing from the checkpoint" in text and "model.layers.1.conv.in_proj.weight" in text
    assert "unexpected in the checkpoint" in text and "model.layers.1.self_attn.q_proj.weight" in text


def test_tied_config_with_untied_checkpoint_is_an_error(tmp_path: Path) -> None:
    hf = hf_model("llama")
    _, ours = livc_model(dict(hf.config.to_dict(), tie_word_embeddings=True), tmp_path)
    with pytest.raises(HFWeightsError, match="tied"):
        load_hf_weights(ours, hf.state_dict())
    _, untied = livc_model(hf.config.to_dict(), tmp_path)
    state = {k: v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    with pytest.raises(HFWeightsError, match=r"lm_head\.weight \(-> head\.out\.weight\)"):
        load_hf_weights(untied, state)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}}, "rope_parameters"),
        ({"rope_scaling": {"type": "linear", "factor": 2.0}}, "rope_scaling"),
        (
            {"rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5}},
            "partial_rotary_factor",
        ),
        ({"partial_rotary_factor": 0.5}, "partial_rotary_factor"),
        ({"hidden_act": "gelu"}, "hidden_act"),
        ({"architectures": ["MistralForCausalLM"]}, "architectures"),
        ({"num_key_value_heads": 3}, "num_key_value_heads"),
        ({"hidden_size": "64"}, "hidden_size"),
    ],
)
def test_unsupported_configs_raise(change: dict[str, Any], key: str) -> None:
    config = {**CASES["llama"][1], "architectures": ["LlamaForCausalLM"], **change}
    with pytest.raises(HFImportError, match=key):
        import_hf(config)


def test_lfm2_qk_norm_eps_must_be_expressible() -> None:
    config = dict(CASES["lfm2"][1], architectures=["Lfm2ForCausalLM"], norm_eps=1e-6)
    with pytest.raises(HFImportError, match="norm_eps"):
        import_hf(config)
    config["layer_types"] = ["conv"] * 4  # no attention, so no QK-norm: any eps is fine
    assert "eps: float = 1e-06" in import_hf(config)


@pytest.mark.parametrize("prefix", ["Lfm2", "Llama", "Qwen2"])
def test_absent_keys_take_transformers_defaults(prefix: str) -> None:
    config = getattr(transformers, f"{prefix}Config")().to_dict()
    assert import_hf({"architectures": [f"{prefix}ForCausalLM"]}, name="M") == import_hf(config, name="M")


LFM2_350M_CONFIG = {  # LiquidAI/LFM2-350M config.json (legacy keys as released)
    "architectures": ["Lfm2ForCausalLM"],
    "block_auto_adjust_ff_dim": True,
    "block_dim": 1024,
    "block_ff_dim": 6656,
    "block_ffn_dim_multiplier": 1.0,
    "block_multiple_of": 256,
    "block_norm_eps": 1e-05,
    "conv_L_cache": 3,
    "conv_bias": False,
    "hidden_size": 1024,
    "intermediate_size": 6656,
    "layer_types": [
        "conv",
        "conv",
        "full_attention",
        "conv",
        "conv",
        "full_attention",
        "conv",
        "conv",
        "full_attention",
        "conv",
        "full_attention",
        "conv",
        "full_attention",
        "conv",
        "full_attention",
        "conv",
    ],
    "max_position_embeddings": 128000,
    "model_type": "lfm2",
    "norm_eps": 1e-05,
    "num_attention_heads": 16,
    "num_hidden_layers": 16,
    "num_key_value_heads": 8,
    "rope_theta": 1000000.0,
    "tie_embedding": True,
    "torch_dtype": "bfloat16",
    "vocab_size": 65536,
    "_name_or_path": "LiquidAI/LFM2-350M",
}


def test_lfm2_350m_config_matches_the_model_card() -> None:
    text = import_hf(LFM2_350M_CONFIG)
    assert "model LFM2_350M(" in text and "dtype: bf16" in text
    analyzed = analyze_checked(check_source(text, "lfm2_350m_hf.liv"))
    assert analyzed.ok and analyzed.reports[0].params == 354_483_968
    assert import_hf(LFM2_350M_CONFIG) == text  # deterministic
    assert format_text(text) == text  # `livc fmt --check` clean


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(LFM2_350M_CONFIG), encoding="utf-8")
    out = tmp_path / "model.liv"
    assert main(["import-hf", str(config), "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == import_hf(LFM2_350M_CONFIG)
    assert main(["import-hf", str(config)]) == 0
    assert capsys.readouterr().out.endswith(import_hf(LFM2_350M_CONFIG))
    config.write_text(json.dumps(dict(LFM2_350M_CONFIG, rope_scaling={"rope_type": "yarn", "factor": 4.0})))
    assert main(["import-hf", str(config), "-o", str(tmp_path / "bad.liv")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "rope_scaling" in err and not (tmp_path / "bad.liv").exists()
    assert main(["import-hf", str(tmp_path / "nope.json")]) == 1
    assert capsys.readouterr().err.startswith("error: cannot read")


@pytest.mark.parametrize(("multiplier", "auto", "width"), [(1.3, True, 192), (None, True, 133), (1.3, False, 200)])
def test_lfm2_ffn_width_rule(multiplier: float | None, auto: bool, width: int) -> None:
    """transformers' Lfm2MLP: 2/3, then (if a multiplier is set) scale and round up to block_multiple_of."""
    config = dict(
        CASES["lfm2"][1],
        architectures=["Lfm2ForCausalLM"],
        block_ffn_dim_multiplier=multiplier,
        block_auto_adjust_ff_dim=auto,
    )
    compiled = compile_source(import_hf(config), "width.liv", stop_after="canonicalize")
    shapes = {p.id: p.shape for p in compiled.models[0].params}
    assert shapes["layers.0.1.w1.weight"] == (width, 64)
