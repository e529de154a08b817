"""An emulated aarch64 TVM RPC device: TVM's Python server accepts and matches connections, each session is
served by native/rpc_server.cc built for aarch64 and run under qemu-aarch64-static (no arm64 root filesystem).

    start_emulated_server(tracker, key, cache, host="127.0.0.1") -> Popen   registered with the tracker as `key`
    stop(proc) -> None                                                       terminate it and its sessions

By hand: `python -m livc.backends.tvm.rpc_emulated --tracker HOST:9190 --key arm64-emu` (the server is built
into livc's runner cache). That process is tvm.rpc.server's own listen loop (bind, tracker registration and key
matching, one forked process per session, its session timeout) with one hook: `tvm.rpc.server._serve_loop`,
which would run `rpc.ServerLoop` on the connected socket in this Python, is replaced by `_qemu_serve_loop`,
which runs the aarch64 livc-rpc-server on that socket's fd instead
(`qemu-aarch64-static -L /usr/aarch64-linux-gnu livc-rpc-server FD WORKDIR`, the fd passed through).
The aarch64 libtvm_runtime.so / libtvm_ffi.so are the official wheels' (native.runtime_libs).

Preconditions: g++-aarch64-linux-gnu and qemu-user-static (else TvmError E0702 with the apt command), the
aarch64 wheels (downloaded once into `cache`), tornado + psutil for the tracker. Non-goals: timings that mean
anything for a real device (qemu-user), OpenCL, more than one session at a time per server.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from livc.backends.tvm import native
from livc.backends.tvm.errors import TARGET, TvmError

ARCH = "aarch64"
TOOLS = ("aarch64-linux-gnu-g++", "qemu-aarch64-static")
APT = "apt-get install -y g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static"


def server_command(cache: Path) -> list[str]:
    """`qemu-aarch64-static -L SYSROOT livc-rpc-server` (built into `cache` on first use); E0702 without tools."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise TvmError(TARGET, f"the emulated aarch64 RPC server needs {' and '.join(missing)}; fix: {APT}")
    return [*native.emulator(ARCH), str(native.build_rpc_server(ARCH, cache))]


def start_emulated_server(
    tracker: tuple[str, int],
    key: str,
    cache: Path,
    host: str = "127.0.0.1",
    port: int = 9090,
    log: Path | None = None,
) -> subprocess.Popen:
    """A server on `host` (first free port in [port, port + 10)) registered with `tracker` under `key`;
    its log (TVM's server log and any session's stderr) goes to `log`, else nowhere."""
    command = server_command(cache)  # build (and fail) here, not in the server process
    cmd = [sys.executable, "-m", "livc.backends.tvm.rpc_emulated", "--host", host, "--port", str(port)]
    cmd += ["--port-end", str(port + 10), "--tracker", f"{tracker[0]}:{tracker[1]}", "--key", key, "--", *command]
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log is not None:
            out.close()


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate the server and whatever session (qemu) it still runs: they share its process group."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)


def _qemu_serve_loop(command: list[str]) -> Any:
    """The replacement for tvm.rpc.server._serve_loop(sock, load_library, work_path), run in the forked
    session process: the session is served by `command FD WORKDIR` (load_library is not supported)."""

    def serve(sock: Any, _load_library: Any, work_path: Any) -> None:
        fd = sock.fileno()
        proc = subprocess.run([*command, str(fd), work_path.path], pass_fds=(fd,), check=False)
        if proc.returncode != 0:  # a crashing candidate ends its session, not the server (_serving would raise)
            print(f"livc-rpc-server exited with {proc.returncode}", file=sys.stderr, flush=True)

    return serve


def _await_tracker(tracker: tuple[str, int], timeout: float = 30.0) -> None:
    """Until the tracker accepts connections: TVM's own retry waits 5 s after a tracker that is still starting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(tracker, timeout=1.0).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                return  # TVM's loop keeps retrying and logs why
            time.sleep(0.2)


def _default_cache() -> Path:
    """livc's runner cache ($XDG_CACHE_HOME/livc/native, as cli.py), where `livc run` keeps the aarch64 runtime."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "livc" / "native"


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="TVM RPC server whose sessions run the emulated aarch64 server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--port-end", type=int, default=None, help="default: --port + 10")
    parser.add_argument("--tracker", required=True, help="HOST:PORT")
    parser.add_argument("--key", required=True)
    parser.add_argument("--cache", default=None, help="where livc-rpc-server is built (default: livc's runner cache)")
    parser.add_argument("command", nargs="*", help="the session command, run as COMMAND FD WORKDIR (default: qemu)")
    args = parser.parse_args(argv)
    from tvm.rpc import server

    from livc.backends.tvm.gpu.rpc import endpoint

    try:
        tracker = endpoint(args.tracker)
        command = args.command or server_command(Path(args.cache) if args.cache else _default_cache())
    except TvmError as err:
        sys.exit(str(err))
    server._serve_loop = _qemu_serve_loop(command)  # noqa: SLF001 - the one documented hook
    _await_tracker(tracker)
    end = args.port_end or args.port + 10
    state = server.PopenRPCServerState(args.host, args.port, end, tracker_addr=tracker, key=args.key)
    thread: threading.Thread = state.thread
    thread.join()


if __name__ == "__main__":
    _main()
