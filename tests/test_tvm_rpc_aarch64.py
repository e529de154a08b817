"""TVM RPC to an emulated aarch64 device (backends/tvm/rpc_emulated.py), all on 127.0.0.1: a tracker and a
server whose sessions run native/rpc_server.cc built for aarch64 under qemu-aarch64-static. (a) an arm64-linux
build uploaded and run remotely matches torch; (b) a MetaSchedule tuning run of a few trials for the arm64-linux
target, candidates cross-linked here and timed on the emulated device, then a build from that database whose
remote run matches torch. Slow (the whole file): qemu and the cross links take most of a minute.

Needs g++-aarch64-linux-gnu + qemu-user-static (skipped without them, with the apt command) and the official
aarch64 TVM wheels (pip download, cached by pip), tornado + cloudpickle for the tracker.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import test_tvm_attention_conv as attn_models
import torch
from tvm_util import ir_model, torch_module

from livc.backends.tvm import rpc_emulated, targets
from livc.backends.tvm.compile import BuildOptions, build
from livc.backends.tvm.gpu import rpc

pytest.importorskip("tornado")
pytest.importorskip("cloudpickle")
pytestmark = pytest.mark.slow
if missing := [t for t in rpc_emulated.TOOLS if shutil.which(t) is None]:
    pytest.skip(f"{', '.join(missing)} absent; install: {rpc_emulated.APT}", allow_module_level=True)

KEY = "livc-aarch64"
MAX_LEN = 16
SOURCE = attn_models._source("[GQA(d, heads = 4, kv_heads = 2)]")
TOL = 1e-4  # test_tvm_aarch64's: the same f32 kernels on another ISA, only rounding differs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tracker(tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("rpc_aarch64")
    port = _free_port()
    tracker_proc = rpc.start_tracker("127.0.0.1", port)
    server = None
    try:
        server = rpc_emulated.start_emulated_server(
            ("127.0.0.1", port), KEY, cache, port=_free_port(), log=cache / "server.log"
        )
        rpc.wait_for(("127.0.0.1", port), KEY, timeout=90)
        yield ("127.0.0.1", port)
    finally:
        if server is not None:
            rpc_emulated.stop(server)
        tracker_proc.terminate()
        tracker_proc.wait(timeout=10)


@pytest.fixture(scope="module")
def reference():
    module = torch_module(SOURCE)
    state = {k: v.detach().float().numpy() for k, v in module.state_dict().items()}
    return module, state


def _remote_prefill(built, state, tracker, out: Path, ids: np.ndarray) -> np.ndarray:
    out.mkdir(parents=True, exist_ok=True)
    lib = targets.export(built.executable, targets.resolve("arm64-linux"), out)
    assert lib.read_bytes()[18] == 183  # e_machine EM_AARCH64: the library really is for the emulated device
    cache = [np.zeros(e.shape, dtype=e.dtype) for e in built.plan.cache]
    args = [ids.reshape(1, -1).astype(np.int32), *cache, *built.plan.pack(state)]
    return rpc.run_remote(lib, tracker, KEY, "prefill", args)[0]


def _torch_prefill(module, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        ref = module.prefill(torch.as_tensor(ids, dtype=torch.long)[None], module.init_cache(1, MAX_LEN), True)
    return ref.reshape(1, -1).numpy()


def _measured(db: Path) -> list[float]:
    """Run times of the database's records that ran (MetaSchedule stores 1e10 s for a failed run)."""
    lines = (db / "database_tuning_record.json").read_text(encoding="utf-8").splitlines()
    secs = [float(t) for line in lines for t in json.loads(line)[1][1]]
    return [t for t in secs if 0.0 < t < 1e9]


def test_remote_arm64_run_matches_torch(tracker, reference, tmp_path: Path) -> None:
    module, state = reference
    built = build(ir_model(SOURCE), BuildOptions(target=targets.resolve("arm64-linux"), max_len=MAX_LEN))
    ids = np.arange(5, dtype=np.int32) % 40
    got = _remote_prefill(built, state, tracker, tmp_path, ids)
    want = _torch_prefill(module, ids)
    assert got.reshape(want.shape).shape == want.shape
    assert np.abs(got.reshape(want.shape) - want).max() < TOL * max(1.0, float(np.abs(want).max()))


def test_tune_on_emulated_device_then_remote_run(tracker, reference, tmp_path: Path) -> None:
    from livc.backends.tvm import tune

    model = ir_model(SOURCE)
    target = targets.resolve("arm64-linux")
    db = tmp_path / "db"
    options = tune.TuneOptions(db, trials=4, target=target, max_len=MAX_LEN, per_iter=4, workers=1)
    report = rpc.tune_remote(model, options, tracker, KEY, progress=lambda _m: None)
    assert report.records >= 1 and (db / "database_workload.json").exists()
    assert _measured(db), "no candidate was timed on the emulated device"
    tuned = build(model, BuildOptions(target=target, max_len=MAX_LEN, tune_db=db))
    module, state = reference
    ids = np.arange(6, dtype=np.int32) % 40
    got = _remote_prefill(tuned, state, tracker, tmp_path / "lib", ids)
    want = _torch_prefill(module, ids)
    assert np.abs(got.reshape(want.shape) - want).max() < TOL * max(1.0, float(np.abs(want).max()))


def test_livc_bench_rpc_on_the_emulated_device(tracker, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`livc bench --target arm64-linux --rpc`: cross-built here, timed by the emulated aarch64 device."""
    from livc.cli import main

    src = tmp_path / "m.liv"
    src.write_text(SOURCE, encoding="utf-8")
    argv = ["bench", str(src), "--target", "arm64-linux", "--weights", "q4", "-p", "8", "-n", "2", "-r", "1"]
    assert main([*argv, "--rpc", f"{tracker[0]}:{tracker[1]}", "--key", KEY]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if f"arm64-linux @{KEY}" in line]
    assert [line.split("|")[4].strip() for line in rows] == ["pp8", "tg2"]
    assert all(float(line.split("|")[5].split("±")[0]) > 0 for line in rows)
