"""TVM deployment (H5): targets, the artifact directory, checkpoints and the CLI (`build --target`, `run`, `bench`).

A tiny LFM2-like model (conv + GQA + SwiGLU, d 32, vocab 64) is built once per weight source. The numerical
reference is the PyTorch backend with the same weights: a perturbed torch module saved as a safetensors
checkpoint (livc ids), and a randomly initialised transformers LFM2 saved as a Hugging Face directory. The
x86 native runner must reproduce the in-process Session token for token. aarch64 + qemu: test_tvm_aarch64.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tvm")
safetensors_torch = pytest.importorskip("safetensors.torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from tvm_util import torch_module  # noqa: E402

from livc.backends.tvm import artifact, native, targets  # noqa: E402
from livc.backends.tvm.errors import TvmError  # noqa: E402
from livc.backends.tvm.runtime import Session  # noqa: E402
from livc.cli import main  # noqa: E402

TINY = """
from std.norms import RMSNorm
from std.embedding import Embedding, LMHead
from std.attention import GQA
from std.conv import GatedShortConv
from std.mlp import SwiGLU

model Tiny(vocab: int = 64, d: int = 32) {
    let conv = GatedShortConv(d, kernel = 3) + SwiGLU(d, 64)
    let attn = GQA(d, heads = 4, kv_heads = 2, qk_norm = true, rope_theta = 10000.0) + SwiGLU(d, 64)

    embedding: Embedding(vocab, d)
    norm: RMSNorm(d, eps = 1e-5)
    layers: [conv, attn]
    final_norm: RMSNorm(d, eps = 1e-5)
    head: LMHead(vocab, d, tied = true)
    dtype: f32
}
"""
PROMPT = (5, 17, 3, 42, 8)
STEPS = 6
TOL = 1e-4


def torch_reference(module: Any, prompt: tuple[int, ...], steps: int, max_len: int) -> tuple[list[int], np.ndarray]:
    """Greedy tokens and the logits of every step (prefill's last position, then each decode)."""
    cache = module.init_cache(1, max_len)
    out, logits = [], []
    with torch.no_grad():
        step = module.prefill(torch.tensor([prompt]), cache, last_only=True)[0, -1]
        for s in range(steps):
            logits.append(step.numpy())
            out.append(int(step.argmax()))
            if s + 1 < steps:
                step = module.decode_step(torch.tensor([[out[-1]]]), cache)[0, -1]
    return out, np.stack(logits)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tvm_artifact")
    (root / "tiny.liv").write_text(TINY, encoding="utf-8")
    module = torch_module(TINY, seed=3)
    safetensors_torch.save_file(
        {k: v.clone().contiguous() for k, v in module.state_dict().items()}, str(root / "ckpt.safetensors")
    )
    torch.save(module, root / "module.pt")
    return root


@pytest.fixture(scope="module")
def reference(work: Path) -> tuple[list[int], np.ndarray]:
    module = torch.load(work / "module.pt", weights_only=False)
    return torch_reference(module, PROMPT, STEPS, 32)


def livc(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def built_x86(work: Path) -> Path:
    out = work / "out_x86"
    ckpt = str(work / "ckpt.safetensors")
    assert (
        main(
            [
                "build",
                str(work / "tiny.liv"),
                "--target",
                "x86",
                "--max-len",
                "32",
                "--checkpoint",
                ckpt,
                "-o",
                str(out),
            ]
        )
        == 0
    )
    return out


# ---- targets


def test_targets_resolve_and_fail_with_the_fix() -> None:
    probe = targets.Probe(which=lambda exe: None if "aarch64" in exe else f"/usr/bin/{exe}", host_cpu="znver3")
    x86 = targets.resolve("x86", probe)
    assert x86.llvm_dict["mtriple"] == "x86_64-linux-gnu" and x86.llvm_dict["mcpu"] == "znver3" and x86.runs_here
    with pytest.raises(TvmError) as missing:
        targets.resolve("arm64-linux", probe)
    assert missing.value.code == "E0702" and "apt-get install -y g++-aarch64-linux-gnu" in str(missing.value)
    android = targets.resolve("arm64-android", probe)  # needs no local toolchain: an archive + the NDK command
    assert android.library == "model.tar" and android.linker is None
    assert "aarch64-linux-android28-clang++ -shared" in (android.link_command or "")
    for name, words in (("vulkan", "USE_VULKAN=OFF"), ("opencl", "name the GPU"), ("riscv", "unknown target")):
        with pytest.raises(TvmError) as err:
            targets.resolve(name, probe)
        assert err.value.code == "E0702" and words in str(err.value) and "arm64-linux" in str(err.value)


def test_host_features_the_kernel_hides_are_masked() -> None:
    assert targets.host_feature_mask(frozenset({"avx2", "fma", "f16c", "avx512f"})) == ()
    assert targets.host_feature_mask(frozenset({"avx2", "fma", "f16c"})) == ("-avx512f",)
    probe = targets.Probe(which=lambda exe: exe, cpu_flags=frozenset({"sse2"}), host_cpu="znver4")
    assert targets.resolve("x86", probe).llvm_dict["mattr"] == ["-avx512f", "-avx2", "-fma", "-f16c"]
    assert targets.resolve("arm64-linux", probe).llvm_dict["mattr"] == ["+neon"]  # never the host's mask


# ---- artifact: contents, numerics, atomicity, validation


def test_artifact_manifest_describes_the_entry_functions(built_x86: Path) -> None:
    art = artifact.read(built_x86)
    m = art.manifest
    assert sorted(p.name for p in built_x86.iterdir()) == ["manifest.json", "model.so", "weights.safetensors"]
    assert m["target"]["name"] == "x86" and m["vocab"] == 64 and m["max_len"] == 32 and m["weights"]["format"] == "f32"
    assert len(m["source"]["sha256"]) == 64 and m["model"] == "Tiny"
    keys = [c["key"] for c in m["cache"]]
    assert keys == ["layers.0.0.conv", "layers.1.0.y.k", "layers.1.0.y.v"]  # torch init_cache order
    module = torch.load(built_x86.parent / "module.pt", weights_only=False)
    torch_cache = module.init_cache(1, 32)
    for c in m["cache"]:
        assert tuple(torch_cache[c["key"]].shape) == tuple(c["shape"]) and c["bytes"] == 4 * np.prod(c["shape"])
    args = m["entries"]["decode_step"]["args"]
    assert args[:2] == ["tokens", "pos"] and args[2:5] == [f"cache:{k}" for k in keys]
    assert args[5:] == [f"weight:{w['name']}" for w in m["weight_inputs"]]
    assert m["entries"]["prefill"]["args"] == ["tokens", *args[2:]]
    assert m["entries"]["prefill"]["outputs"] == ["logits", *args[2:5]]
    stored = safetensors_numpy.load_file(str(built_x86 / "weights.safetensors"))  # the official reader agrees
    assert sorted(stored) == sorted(w["name"] for w in m["weight_inputs"])
    assert all(list(stored[w["name"]].shape) == w["shape"] for w in m["weight_inputs"])


def test_artifact_session_matches_torch(built_x86: Path, reference: tuple[list[int], np.ndarray]) -> None:
    art = artifact.read(built_x86)
    session = Session(art, packed=art.load_weights())
    tokens, logits = reference
    got = [session.prefill(list(PROMPT))[0]]
    for t in tokens[:-1]:
        got.append(session.decode(t)[0])
    assert np.abs(np.stack(got) - logits).max() < TOL


def test_native_runner_x86_matches_session(
    built_x86: Path, work: Path, reference: tuple[list[int], np.ndarray]
) -> None:
    runner = native.build_runner("x86_64", work / "runner-cache")
    result = native.run(runner, built_x86, PROMPT, STEPS, "x86_64", logits=work / "logits.bin")
    tokens, logits = reference
    assert list(result.tokens) == tokens and result.prompt_tokens == len(PROMPT) and result.decode_tokens == STEPS - 1
    assert result.logits is not None and np.abs(result.logits.reshape(STEPS, 64) - logits).max() < TOL


def test_native_runner_errors_are_E0703(built_x86: Path, work: Path) -> None:
    runner = native.build_runner("x86_64", work / "runner-cache")
    for prompt, steps, words in (
        ((1,) * 30, 8, "need 37 positions; the artifact's cache holds 32"),
        ((99,), 2, "outside"),
    ):
        with pytest.raises(TvmError) as err:
            native.run(runner, built_x86, prompt, steps, "x86_64")
        assert err.value.code == "E0703" and words in str(err.value)


def test_a_model_without_decode_has_no_decode_entry(built_x86: Path) -> None:
    plan = artifact.read(built_x86).plan
    assert set(artifact.entries(plan, decodes=False)) == {"prefill"}
    assert artifact.entries(plan)["decode_step"]["args"][1] == "pos"


def test_quantized_weights_are_stored_in_their_format(work: Path, reference: tuple[list[int], np.ndarray]) -> None:
    out = work / "out_q8"
    ckpt = str(work / "ckpt.safetensors")
    assert (
        main(
            [
                "build",
                str(work / "tiny.liv"),
                "--target",
                "x86",
                "--weights",
                "q8",
                "--max-len",
                "32",
                "--checkpoint",
                ckpt,
                "-o",
                str(out),
            ]
        )
        == 0
    )
    art = artifact.read(out)
    dtypes = {w["dtype"] for w in art.manifest["weight_inputs"]}
    assert {"int8", "float16", "float32"} <= dtypes and art.manifest["weights"]["format"] == "q8"
    assert (out / "weights.safetensors").stat().st_size < (work / "out_x86" / "weights.safetensors").stat().st_size
    session = Session(art, packed=art.load_weights())
    assert np.abs(session.prefill(list(PROMPT))[0] - reference[1][0]).max() < 0.05  # q8 error, not a wrong layout


def _export_fails(_: Path) -> Path:
    raise RuntimeError("the linker crashed")


def test_write_is_atomic(built_x86: Path, work: Path) -> None:
    art = artifact.read(built_x86)
    before = (built_x86 / "manifest.json").read_bytes()
    contents = artifact.Contents(
        art.plan,
        64,
        art.manifest["target"],
        "model.so",
        artifact.Source("Tiny", "t", "0" * 64),
        art.load_weights(),
        _export_fails,
    )
    with pytest.raises(RuntimeError, match="linker crashed"):
        artifact.write(built_x86, contents)
    assert (built_x86 / "manifest.json").read_bytes() == before
    assert not [p for p in built_x86.parent.iterdir() if p.name.startswith(".out_x86")]  # no temporary left over
    stranger = work / "not_an_artifact"
    stranger.mkdir(exist_ok=True)
    (stranger / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(TvmError, match="not a livc artifact"):
        artifact.write(stranger, contents)
    assert (stranger / "notes.txt").read_text(encoding="utf-8") == "mine"


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda d: (d / "manifest.json").unlink(), "cannot read manifest.json"),
        (lambda d: (d / "manifest.json").write_text('{"format": "other"}'), "not a livc-tvm-artifact"),
        (lambda d: (d / "model.so").unlink(), "model.so is missing"),
        (lambda d: (d / "weights.safetensors").write_bytes(b"\x08\x00"), "has 2 bytes"),
        (lambda d: _edit(d, lambda m: m["weight_inputs"][0].update(shape=[3, 3])), "the manifest says"),
        (lambda d: _edit(d, lambda m: m.update(format_version=99)), "format version 99"),
    ],
)
def test_bad_artifacts_are_E0703(built_x86: Path, tmp_path: Path, damage: Any, words: str) -> None:
    copy = tmp_path / "art"
    shutil.copytree(built_x86, copy)
    damage(copy)
    with pytest.raises(TvmError) as err:
        artifact.read(copy)
    assert err.value.code == "E0703" and words in str(err.value)


def _edit(d: Path, change: Any) -> None:
    doc = json.loads((d / "manifest.json").read_text())
    change(doc)
    (d / "manifest.json").write_text(json.dumps(doc))


# ---- checkpoints


def test_hf_directory_checkpoint_matches_transformers(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.Lfm2Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        block_auto_adjust_ff_dim=False,
        layer_types=["conv", "full_attention"],
    )
    torch.manual_seed(0)
    hf = transformers.Lfm2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            p.uniform_(0.5, 1.5) if "norm" in name else p.normal_(0.0, 0.1)
    hf.save_pretrained(work / "hf")
    assert main(["import-hf", str(work / "hf" / "config.json"), "-o", str(work / "hf.liv")]) == 0
    out = work / "out_hf"
    code, _, err = livc(
        "build",
        str(work / "hf.liv"),
        "--target",
        "x86",
        "--max-len",
        "16",
        "--checkpoint",
        str(work / "hf"),
        "-o",
        str(out),
        capsys=capsys,
    )
    assert code == 0, err
    art = artifact.read(out)
    session = Session(art, packed=art.load_weights())
    with torch.no_grad():
        ref = hf(torch.tensor([PROMPT])).logits[0, -1].numpy()
    assert np.abs(session.prefill(list(PROMPT))[0] - ref).max() < TOL


def test_checkpoint_errors_are_E0703(work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.safetensors"
    safetensors_torch.save_file({"model.layers.0.operator_norm.weight": torch.zeros(3)}, str(bad))
    odd = tmp_path / "odd.safetensors"
    safetensors_torch.save_file({"w": torch.zeros(3)}, str(odd))
    cases = (
        (bad, "the lfm2 checkpoint does not match the livc model"),
        (odd, "neither the model's parameter ids"),
        (tmp_path / "missing.safetensors", "does not exist"),
    )
    for ckpt, words in cases:
        code, _, err = livc(
            "build",
            str(work / "tiny.liv"),
            "--target",
            "x86",
            "--checkpoint",
            str(ckpt),
            "-o",
            str(tmp_path / "o"),
            capsys=capsys,
        )
        assert code == 1 and "error[E0703]" in err and words in err and "Traceback" not in err
        assert not (tmp_path / "o").exists()


# ---- CLI


def test_cli_run_prints_tokens_and_timings(
    built_x86: Path, work: Path, reference: tuple[list[int], np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    ids = ",".join(map(str, PROMPT))
    code, out, _ = livc("run", str(built_x86), "--prompt-ids", ids, "--max-new-tokens", str(STEPS), capsys=capsys)
    assert code == 0 and out.splitlines()[0] == "tokens: " + " ".join(map(str, reference[0]))
    assert "prefill: 5 tokens in" in out and "decode: 5 tokens in" in out and "tokens/s" in out
    cache = str(work / "runner-cache")
    code, native_out, _ = livc(
        "run",
        str(built_x86),
        "--prompt-ids",
        ids,
        "--max-new-tokens",
        str(STEPS),
        "--native",
        "--runner-cache",
        cache,
        capsys=capsys,
    )
    assert code == 0 and native_out.splitlines()[0] == out.splitlines()[0]


@pytest.mark.parametrize(
    "argv, status, words",
    [
        (
            ["build", "{liv}", "--target", "vulkan", "-o", "{tmp}/o"],
            1,
            "error[E0702]: target 'vulkan' is not available",
        ),
        (["build", "{liv}", "--target", "riscv", "-o", "{tmp}/o"], 1, "error[E0702]: unknown target 'riscv'"),
        (["build", "{liv}", "--target", "x86"], 2, "writes an artifact directory: give -o DIR"),
        (["build", "{liv}", "--target", "x86", "-o", "{tmp}/no/such/dir"], 2, "does not exist"),
        (["build", "{liv}", "--target", "x86", "-o", "{work}"], 2, "not a livc artifact (it is never replaced)"),
        (["build", "{liv}", "--weights", "q4"], 2, "only for the TVM targets"),
        (["build", "{liv}", "--target", "x86", "--weights", "q3", "-o", "{tmp}/o"], 2, "invalid choice: 'q3'"),
        (["run", "{tmp}", "--prompt-ids", "1"], 1, "error[E0703]"),
        (["run", "{art}", "--prompt-ids", "1,x"], 2, "expected comma-separated token ids"),
        (["run", "{art}", "--prompt-ids", "64"], 2, "outside the vocabulary (0..63)"),
        (["run", "{art}", "--prompt-ids", "1", "--max-new-tokens", "40"], 2, "the artifact holds 32"),
        (["bench", "{liv}", "--target", "arm64-android"], 2, "bench measures this host"),
        (["bench", "{liv}", "--weights", "f32,q3"], 2, "expected formats from f32, f16, bf16, q8, q4"),
    ],
)
def test_cli_errors_are_diagnostics(
    built_x86: Path,
    work: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    status: int,
    words: str,
) -> None:
    filled = [a.format(liv=work / "tiny.liv", tmp=tmp_path, art=built_x86, work=work) for a in argv]
    code, _, err = livc(*filled, capsys=capsys)
    assert code == status and words in err and "Traceback" not in err


def test_cli_run_refuses_device_only_artifacts(
    built_x86: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("arm64-android", "adreno"):
        copy = tmp_path / name
        shutil.copytree(built_x86, copy)
        _edit(copy, lambda m, n=name: m["target"].update(name=n))
        code, _, err = livc("run", str(copy), "--prompt-ids", "1", capsys=capsys)
        assert code == 2 and f"a {name} artifact runs on its device" in err


def test_cli_bench_prints_both_backends(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = livc(
        "bench", str(work / "tiny.liv"), "--weights", "bf16,q4", "-p", "8", "-n", "4", "-r", "1", capsys=capsys
    )
    assert code == 0, err
    rows = [line.split("|")[1:-1] for line in out.splitlines()[2:]]
    assert [(r[1].strip().split()[0], r[2].strip(), r[3].strip()) for r in rows] == [
        ("tvm", "bf16", "pp8"),
        ("tvm", "bf16", "tg4"),
        ("tvm", "q4", "pp8"),
        ("tvm", "q4", "tg4"),
        ("torch", "f32", "pp8"),
        ("torch", "f32", "tg4"),
    ]
    assert all(float(r[4].split("±")[0]) > 0 for r in rows)


def test_cli_tune_refuses_targets_it_cannot_time(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = livc("tune", str(work / "tiny.liv"), "--target", "arm64-linux", capsys=capsys)
    assert code == 1 and "error[E0702]" in err and "RPC runner" in err


@pytest.mark.slow  # MetaSchedule: about a minute even for 4 trials (task extraction, builder workers)
def test_cli_tune_then_build_with_the_database(work: Path, built_x86: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = work / "tune-db"
    code, out, err = livc(
        "tune", str(work / "tiny.liv"), "--trials", "4", "--max-len", "32", "--db", str(db), capsys=capsys
    )
    assert code == 0, err
    assert "records in" in out and "--db" in out and any(db.iterdir())
    tuned = work / "out_tuned"
    ckpt = str(work / "ckpt.safetensors")
    argv = ["build", str(work / "tiny.liv"), "--target", "x86", "--max-len", "32", "--checkpoint", ckpt]
    assert main([*argv, "--db", str(db), "-o", str(tuned)]) == 0
    ids = ",".join(map(str, PROMPT))
    outs = [livc("run", str(d), "--prompt-ids", ids, capsys=capsys)[1].splitlines()[0] for d in (tuned, built_x86)]
    assert outs[0] == outs[1]
