"""Where the CLI's outputs go: safe file writes, stdout, and what the terminal can show.

`-o PATH` rules (checked by `check_destination` before any work is done, so a bad path costs nothing):

- `-` is stdout.
- A regular file (new or existing) is written atomically: a temporary file in the same directory is
  written and renamed over it, so it is never half-written; an existing file keeps its mode, a new one
  gets 0666 minus the umask. A symlink is followed: its target is replaced, the link stays.
- A stream-like special file that exists (`/dev/null`, `/dev/stdout`, a terminal, a FIFO with a reader)
  is opened and written directly, never replaced. A FIFO without a reader is refused, not waited on.
- A directory, a missing parent directory, a block device, a socket or a symlink loop is a usage error.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class OutputError(Exception):
    """An output that cannot be written; `usage` = the path itself is wrong (exit 2), else exit 1."""

    path: str
    reason: str
    usage: bool = True

    def __str__(self) -> str:
        return f"cannot write '{_shown(self.path)}': {self.reason}"


def _shown(path: str) -> str:
    return path if path.isprintable() else ascii(path)[1:-1]


@dataclass(frozen=True)
class Destination:
    """A checked output: stdout, a stream-like special file, or a regular file to replace atomically."""

    path: str
    kind: str  # "stdout" | "stream" | "file"


def check_destination(path: str) -> Destination:
    """Validate `-o path` up front; raises `OutputError`."""
    if path == "-":
        return Destination(path, "stdout")
    if not path:
        raise OutputError(path, "empty file name")
    try:
        target = os.path.realpath(path, strict=False)
    except (OSError, ValueError) as exc:
        raise OutputError(path, _reason(exc)) from exc
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return Destination(_new_file(path, target), "file")
    except (OSError, ValueError) as exc:
        raise OutputError(path, _reason(exc)) from exc
    return Destination(target if stat.S_ISREG(mode) else path, _existing_kind(path, mode))


def _new_file(path: str, target: str) -> str:
    parent = Path(target).parent
    if not parent.is_dir():
        where = Path(path).parent
        raise OutputError(path, f"directory '{_shown(str(where))}' does not exist")
    return target


def _existing_kind(path: str, mode: int) -> str:
    if stat.S_ISDIR(mode):
        raise OutputError(path, "is a directory (give a file name)")
    if stat.S_ISREG(mode):
        if not os.access(path, os.W_OK):
            raise OutputError(path, "permission denied (the file is not writable)")
        return "file"
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return "stream"
    raise OutputError(path, "not a regular file, a character device or a FIFO")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
        return "a symlink loop"
    if isinstance(exc, ValueError):
        return "invalid file name"
    return getattr(exc, "strerror", None) or str(exc)


def write_output(dest: Destination, data: str | bytes) -> None:
    """Write everything to `dest` (see the module docstring); raises `OutputError` (usage=False)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if dest.kind == "stdout":
        write_stdout(data)
        return
    try:
        if dest.kind == "stream":
            _write_stream(dest.path, payload)
        else:
            write_atomic(Path(dest.path), payload)
    except OSError as exc:
        raise OutputError(dest.path, _reason(exc), usage=False) from exc


def write_stdout(data: str | bytes) -> None:
    if isinstance(data, str):
        sys.stdout.write(data)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
    sys.stdout.flush()


def _write_stream(path: str, payload: bytes) -> None:
    flags = os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)  # O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead of hanging
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OutputError(path, "a FIFO that nobody is reading", usage=False) from exc
        raise
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    with os.fdopen(fd, "wb") as handle:
        handle.write(payload)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, payload: bytes) -> None:
    """Write via a temporary file in the same directory and rename: never half-written."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:64]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Terminal:
    """What stdout can show: its width (80 when it is not a terminal) and whether to use colour."""

    width: int = 80
    color: bool = False


def terminal(stream: IO[str] | None = None, environ: dict[str, str] | None = None) -> Terminal:
    """Colour only on a TTY and never with NO_COLOR set (https://no-color.org); width >= 80."""
    stream = stream if stream is not None else sys.stdout
    env = environ if environ is not None else dict(os.environ)
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        return Terminal()
    try:
        width = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        width = 80
    return Terminal(width=max(80, width), color="NO_COLOR" not in env and env.get("TERM") != "dumb")
