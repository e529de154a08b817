"""TVM RPC on 127.0.0.1 (gpu/rpc.py): a tracker and a native x86 RPC server; a built library uploaded and run
remotely matches the in-process session; (slow) MetaSchedule tuning of a few trials measured through the
tracker, then a build with that database run remotely matching the reference.

Also `livc bench --rpc` (timed on the server). The emulated aarch64 device (qemu, backends/tvm/rpc_emulated.py)
is exercised by tests/test_tvm_rpc_aarch64.py.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import test_tvm_attention_conv as attn_models
import tvm
from tvm_util import ir_model, pair

from livc.backends.tvm import targets
from livc.backends.tvm.compile import BuildOptions, build
from livc.backends.tvm.errors import TvmError
from livc.backends.tvm.gpu import rpc
from livc.backends.tvm.runtime import Session

pytest.importorskip("tornado")
pytest.importorskip("cloudpickle")
KEY = "livc-test"
MAX_LEN = 16
SOURCE = attn_models._source("[GQA(d, heads = 4, kv_heads = 2)]")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tracker():
    port = _free_port()
    procs = [rpc.start_tracker("127.0.0.1", port)]
    try:
        procs.append(rpc.start_server("127.0.0.1", _free_port(), ("127.0.0.1", port), KEY))
        rpc.wait_for(("127.0.0.1", port), KEY, timeout=90)
        yield ("127.0.0.1", port)
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


def test_endpoint_parsing() -> None:
    assert rpc.endpoint("10.0.0.2:9190") == ("10.0.0.2", 9190)
    for bad in ("9190", "host:", "host:99999", "host:x"):
        with pytest.raises(TvmError) as err:
            rpc.endpoint(bad)
        assert err.value.code == "E0702"


def test_unknown_key_is_e0702(tracker) -> None:
    with pytest.raises(TvmError) as err:
        rpc.wait_for(tracker, "no-such-device", timeout=1.0)
    assert err.value.code == "E0702"


def _remote_prefill(built, state, tracker, tmp_path: Path, ids: np.ndarray) -> np.ndarray:
    target = targets.resolve("x86")
    tmp_path.mkdir(parents=True, exist_ok=True)
    lib = targets.export(built.executable, target, tmp_path)
    packed = built.plan.pack(state)
    cache = [np.zeros(e.shape, dtype=e.dtype) for e in built.plan.cache]
    outs = rpc.run_remote(lib, tracker, KEY, "prefill", [ids.reshape(1, -1).astype(np.int32), *cache, *packed])
    return outs[0]


def test_remote_run_matches_local(tracker, tmp_path: Path) -> None:
    module, session = pair(SOURCE, max_len=MAX_LEN)
    state = {k: v.detach().float().numpy() for k, v in module.state_dict().items()}
    built = build(ir_model(SOURCE), BuildOptions(target=targets.resolve("x86"), max_len=MAX_LEN))
    ids = np.arange(5, dtype=np.int32) % 40
    got = _remote_prefill(built, state, tracker, tmp_path, ids)
    want = Session(built, state).prefill(ids)
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-5


@pytest.mark.slow
def test_tune_over_rpc_then_remote_run(tracker, tmp_path: Path) -> None:
    from livc.backends.tvm import tune

    model = ir_model(SOURCE)
    target = targets.resolve("x86")
    db = tmp_path / "db"
    options = tune.TuneOptions(db, trials=4, target=target, max_len=MAX_LEN, per_iter=4, workers=1)
    report = rpc.tune_remote(model, options, tracker, KEY, progress=lambda _m: None)
    assert report.records >= 1 and (db / "database_workload.json").exists()
    again = rpc.tune_remote(model, options, tracker, KEY, progress=lambda _m: None)
    # the tasks the 4 trials reached are reused, only the others are tuned again
    assert again.reused and set(again.reused) | set(again.tasks) == set(report.tasks)
    assert len(again.tasks) < len(report.tasks)
    tuned = build(model, BuildOptions(target=target, max_len=MAX_LEN, tune_db=db))
    module, _ = pair(SOURCE, max_len=MAX_LEN)
    state = {k: v.detach().float().numpy() for k, v in module.state_dict().items()}
    ids = np.arange(6, dtype=np.int32) % 40
    got = _remote_prefill(tuned, state, tracker, tmp_path / "lib", ids)
    import torch

    with torch.no_grad():
        ref = module.prefill(torch.as_tensor(ids, dtype=torch.long)[None], module.init_cache(1, MAX_LEN), True)
    ref = ref.reshape(1, -1).numpy()
    assert np.abs(got - ref).max() < 1e-4 * max(1.0, float(np.abs(ref).max()))
    assert tvm is not None


def test_livc_bench_rpc_times_on_the_remote_device(tracker, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`livc bench --rpc`: the build runs on the tracker's device (timed there) and prints llama-bench rows."""
    from livc.cli import main

    src = tmp_path / "m.liv"
    src.write_text(SOURCE, encoding="utf-8")
    host, port = tracker
    argv = ["bench", str(src), "--target", "x86", "--weights", "f32,q8", "-p", "8", "-n", "4", "-r", "2"]
    assert main([*argv, "--rpc", f"{host}:{port}", "--key", KEY]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if f"@{KEY}" in line]
    assert len(rows) == 4, out  # pp8 and tg4 for each format
    for line in rows:
        mean = float(line.split("|")[5].split("±")[0])
        assert mean > 0.0, line
    assert "torch" not in out  # nothing measured on this host


def test_livc_bench_rpc_needs_a_key(tracker, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from livc.cli import main

    src = tmp_path / "m.liv"
    src.write_text(SOURCE, encoding="utf-8")
    assert main(["bench", str(src), "--rpc", f"{tracker[0]}:{tracker[1]}"]) != 0
    assert "--key" in capsys.readouterr().err
