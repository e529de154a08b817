"""aarch64 deployment under emulation (H5): `livc build --target arm64-linux`, the native C++ runner
cross-compiled against the official aarch64 TVM wheels' runtime, run under `qemu-aarch64-static` without a
root filesystem, must give the host's tokens and logits (host TVM Session of the same format, and torch).

Needs g++-aarch64-linux-gnu and qemu-user-static (.ci/run installs them) and the aarch64 wheels (pip download,
cached by pip). A missing tool fails the test with the install command: it is never skipped silently.
The arm64-android archive is also linked with its own link.sh, the NDK's clang replaced by the glibc cross
g++ (no NDK here), and run the same way: that checks the archive and the link command, not bionic.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tvm")
safetensors_torch = pytest.importorskip("safetensors.torch")

from tvm_util import torch_module  # noqa: E402

from livc.backends.tvm import artifact, native  # noqa: E402
from livc.backends.tvm.runtime import Session  # noqa: E402
from livc.cli import main  # noqa: E402

TINY = """
from std.norms import RMSNorm
from std.embedding import Embedding, LMHead
from std.attention import GQA
from std.conv import GatedShortConv
from std.mlp import SwiGLU

model Tiny(vocab: int = 48, d: int = 32) {
    let conv = GatedShortConv(d, kernel = 3) + SwiGLU(d, 64)
    let attn = GQA(d, heads = 4, kv_heads = 2, rope_theta = 10000.0) + SwiGLU(d, 64)

    embedding: Embedding(vocab, d)
    norm: RMSNorm(d, eps = 1e-5)
    layers: [attn, conv]
    final_norm: RMSNorm(d, eps = 1e-5)
    head: LMHead(vocab, d, tied = false)
    dtype: f32
}
"""
VOCAB, PROMPT, STEPS, MAX_LEN = 48, (7, 1, 30, 12), 6, 24
TOOLS = {"aarch64-linux-gnu-g++": "g++-aarch64-linux-gnu", "qemu-aarch64-static": "qemu-user-static"}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [pkg for exe, pkg in TOOLS.items() if shutil.which(exe) is None]
    assert not missing, f"install the cross toolchain and qemu: apt-get install -y {' '.join(missing)}"
    root = tmp_path_factory.mktemp("tvm_aarch64")
    (root / "tiny.liv").write_text(TINY, encoding="utf-8")
    module = torch_module(TINY, seed=5)
    state = {k: v.clone().contiguous() for k, v in module.state_dict().items()}
    safetensors_torch.save_file(state, str(root / "ckpt.safetensors"))
    torch.save(module, root / "module.pt")
    return root


@functools.cache
def build(work: Path, target: str, weights: str) -> Path:
    out = work / f"{target}-{weights}"
    argv = ["build", str(work / "tiny.liv"), "--target", target, "--weights", weights, "--max-len", str(MAX_LEN)]
    assert main([*argv, "--checkpoint", str(work / "ckpt.safetensors"), "-o", str(out)]) == 0
    return out


def torch_logits(work: Path, tokens: list[int]) -> np.ndarray:
    """torch f32 logits of the prefill's last position and of each decode step of `tokens` (teacher-forced)."""
    module = torch.load(work / "module.pt", weights_only=False)
    cache = module.init_cache(1, MAX_LEN)
    with torch.no_grad():
        rows = [module.prefill(torch.tensor([PROMPT]), cache, last_only=True)[0, -1]]
        rows += [module.decode_step(torch.tensor([[t]]), cache)[0, -1] for t in tokens[:-1]]
    return torch.stack(rows).numpy()


def host_session(art_dir: Path, tokens: list[int]) -> np.ndarray:
    art = artifact.read(art_dir)
    session = Session(art, packed=art.load_weights())
    rows = [session.prefill(list(PROMPT))[0]] + [session.decode(t)[0] for t in tokens[:-1]]
    return np.stack(rows)


def emulated(work: Path, art_dir: Path) -> Any:
    runner = native.build_runner("aarch64", work / "runner-cache")
    assert runner.read_bytes()[:4] == b"\x7fELF" and runner.read_bytes()[18] == 183  # e_machine EM_AARCH64
    return native.run(runner, art_dir, PROMPT, STEPS, "aarch64", logits=art_dir.parent / f"{art_dir.name}.bin")


@pytest.mark.parametrize("weights, tol", [("f32", 1e-4), ("q8", 1e-4)])
def test_arm64_linux_under_qemu_matches_host(work: Path, weights: str, tol: float) -> None:
    arm = build(work, "arm64-linux", weights)
    assert artifact.read(arm).manifest["target"]["llvm"]["mtriple"] == "aarch64-linux-gnu"
    result = emulated(work, arm)
    got = result.logits.reshape(STEPS, VOCAB)
    host = host_session(build(work, "x86", weights), list(result.tokens))
    assert np.abs(got - host).max() < tol  # the same format on two ISAs: only rounding differs
    assert list(result.tokens) == [int(np.argmax(row)) for row in host]
    if weights == "f32":
        assert np.abs(got - torch_logits(work, list(result.tokens))).max() < tol


def test_bundled_runner_is_relocatable(work: Path, tmp_path: Path) -> None:
    """--bundle-runner: DIR/runner holds the runner (rpath $ORIGIN) and the aarch64 runtime libraries, so the
    directory alone is what a device needs (here: moved elsewhere, run by qemu with no livc involved)."""
    out = work / "bundled"
    argv = ["build", str(work / "tiny.liv"), "--target", "arm64-linux", "--max-len", str(MAX_LEN), "--bundle-runner"]
    argv += ["--runner-cache", str(work / "runner-cache"), "--checkpoint", str(work / "ckpt.safetensors")]
    assert main([*argv, "-o", str(out)]) == 0
    assert sorted(p.name for p in (out / "runner").iterdir()) == ["libtvm_ffi.so", "libtvm_runtime.so", "livc-runner"]
    assert artifact.read(out).manifest["runner"] == "runner/livc-runner"
    moved = tmp_path / "device" / "model"
    shutil.move(str(out), moved)
    cmd = [*native.emulator("aarch64"), str(moved / "runner" / "livc-runner"), str(moved)]
    proc = subprocess.run(
        [*cmd, "--prompt-ids", ",".join(map(str, PROMPT)), "--max-new-tokens", str(STEPS)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    tokens = [int(t) for t in proc.stdout.splitlines()[0].split()[1:]]
    assert tokens == [int(np.argmax(row)) for row in host_session(build(work, "x86", "f32"), tokens)]


def test_arm64_android_archive_links_with_its_command(work: Path, tmp_path: Path) -> None:
    android = build(work, "arm64-android", "f32")
    assert sorted(p.name for p in android.iterdir()) == ["link.sh", "manifest.json", "model.tar", "weights.safetensors"]
    ndk_bin = tmp_path / "ndk" / "toolchains" / "llvm" / "prebuilt" / "linux-x86_64" / "bin"
    ndk_bin.mkdir(parents=True)
    clang = ndk_bin / "aarch64-linux-android28-clang++"
    clang.write_text('#!/bin/sh\nexec aarch64-linux-gnu-g++ "$@"\n', encoding="utf-8")
    clang.chmod(0o755)
    env = {**os.environ, "ANDROID_NDK": str(tmp_path / "ndk")}
    subprocess.run(["sh", str(android / "link.sh")], check=True, env=env, capture_output=True)
    linked = tmp_path / "linked"
    shutil.copytree(android, linked)
    text = (linked / "manifest.json").read_text(encoding="utf-8")
    (linked / "manifest.json").write_text(text.replace('"library": "model.tar"', '"library": "model.so"'), "utf-8")
    result = emulated(work, linked)
    ref = torch_logits(work, list(result.tokens))
    assert np.abs(result.logits.reshape(STEPS, VOCAB) - ref).max() < 1e-4
