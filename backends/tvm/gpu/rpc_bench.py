"""`livc bench --rpc`: time a build on a remote device through a TVM RPC tracker (the phone on the desk).

    rows = bench_remote(built, target, arrays, tracker, key, ids, n_gen, reps, work_dir)

The library is exported here (cross-linked for the target), uploaded, loaded into a Relax VM on the remote
device (its CPU, or its OpenCL / CUDA device for GPU targets), and the weights and a zero cache are copied
there once. Timings are taken ON the device by the VM's time evaluator (no RPC round trip inside a timing):
- pp{P}: `prefill` of the P prompt tokens on a zero cache, `reps` repetitions after a warm-up;
- tg{N}: `decode_step` at position P (after that prefill), timed N times per repetition; tokens/s = 1 / mean.
  The KV / history writes are in place at slot P, so repeating the step is idempotent; the rate is the one at
  context P (llama-bench's tg averages over the positions it generates; for N << P the two agree).
Preconditions: `built` from compile.build for `target`; `arrays` = built.plan.pack(state). Non-goals: sampling,
energy, several devices of one key at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from livc.backends.tvm.bench import Row
from livc.backends.tvm.gpu import rpc


def _device(sess: Any, target: Any) -> Any:
    kind = dict(target.device).get("kind") if target.device is not None else "llvm"
    return {"opencl": sess.cl, "cuda": sess.cuda, "webgpu": sess.webgpu}.get(kind, sess.cpu)(0)


def _vm(sess: Any, lib: Path, dev: Any) -> Any:
    from tvm import relax

    sess.upload(str(lib))
    return relax.VirtualMachine(sess.load_module(lib.name), dev)


def _rates(vm: Any, dev: Any, name: str, args: list[Any], per_call: int, number: int, reps: int) -> tuple[float, ...]:
    vm.set_input(name, *args)
    result = vm.time_evaluator("invoke_stateful", dev, number=number, repeat=reps)(name)
    return tuple(per_call / float(t) for t in result.results)


def bench_remote(
    built: Any,
    target: Any,
    arrays: list[np.ndarray],
    tracker: tuple[str, int],
    key: str,
    ids: np.ndarray,
    n_gen: int,
    reps: int,
    work_dir: Path,
) -> list[Row]:
    """pp{len(ids)} and tg{n_gen} rows of `built` measured on a `key` device of `tracker`."""
    import tvm

    from livc.backends.tvm import targets

    lib = targets.export(built.executable, target, work_dir)
    sess = rpc.remote(tracker, key)
    dev = _device(sess, target)
    vm = _vm(sess, lib, dev)
    weights = [tvm.runtime.tensor(np.ascontiguousarray(a), dev) for a in arrays]
    cache = [tvm.runtime.tensor(np.zeros(e.shape, dtype=e.dtype), dev) for e in built.plan.cache]
    tokens = tvm.runtime.tensor(np.asarray(ids, dtype=np.int32).reshape(1, -1), dev)
    backend = f"tvm {target.name} @{key}"
    rows = [Row(backend, built.plan.fmt, f"pp{len(ids)}", _rates(vm, dev, "prefill", [tokens, *cache, *weights],
                                                                    len(ids), 1, reps))]  # fmt: skip
    if n_gen and built.decodes:
        token = tvm.runtime.tensor(np.asarray([[int(ids[-1])]], dtype=np.int32), dev)
        pos = sess.get_function("ffi.Shape")(len(ids))  # made remotely: a Shape cannot travel over RPC
        args = [token, pos, *cache, *weights]
        rows.append(Row(backend, built.plan.fmt, f"tg{n_gen}", _rates(vm, dev, "decode_step", args, 1, n_gen, reps)))
    return rows
