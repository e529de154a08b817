"""Load a .liv program: the root file and, transitively, everything it imports.

`std.X` resolves to `X.liv` shipped in `livc.stdlib`; a string path resolves relative to the
importing file. Missing modules (E0207), unreadable files (E0109) and import cycles (E0208) are
diagnosed at the import that causes them.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from livc.dsl import ast as A
from livc.dsl.diagnostics import DiagnosticSink, error
from livc.dsl.parser import parse_source
from livc.dsl.source import SourceFile, Span

STD_PREFIX = "std"


@dataclass(frozen=True, slots=True)
class LoadedModule:
    key: str
    source: SourceFile
    ast: A.Module
    imports: tuple[tuple[A.Import | A.FromImport, str], ...]  # each import and the key it resolved to
    broken: tuple[A.Import | A.FromImport, ...] = ()  # imports that failed (already diagnosed)


@dataclass
class Program:
    root: str
    modules: dict[str, LoadedModule] = field(default_factory=dict)


def std_modules() -> frozenset[str]:
    return frozenset(p.name[:-4] for p in resources.files("livc.stdlib").iterdir() if p.name.endswith(".liv"))


def _std_text(name: str) -> str | None:
    if name not in std_modules():
        return None
    return resources.files("livc.stdlib").joinpath(f"{name}.liv").read_text(encoding="utf-8")


std_text = _std_text  # the text of standard module `name` (None if there is none)


MAX_SOURCE_BYTES = 8 * 2**20  # a .liv source (or config.json) larger than this is refused while reading


def read_file(path: Path, cap: int = MAX_SOURCE_BYTES) -> tuple[str | None, str | None]:
    """(text, problem): reads a regular file as UTF-8 text; never raises, never blocks.

    FIFOs, devices, sockets and directories are refused from `stat` before opening (a FIFO would
    block, `/dev/zero` never ends); at most `cap + 1` bytes are read, so a file that grows while it
    is read is refused too. Symlink loops are reported as such.
    """
    try:
        kind = _file_kind(os.stat(path).st_mode)
        if kind is not None:
            return None, kind
        data = _read_capped(path, cap)
    except OSError as exc:
        return None, _os_problem(exc)
    except ValueError:  # an embedded NUL byte in the path
        return None, "invalid path"
    if data is None:
        return None, f"larger than {cap // 2**20} MiB (the limit for source files)"
    try:
        return data.decode("utf-8-sig"), None  # a leading byte-order mark (Windows editors) is not part of the text
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return None, f"not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})"


def _file_kind(mode: int) -> str | None:
    """Why a file of this mode is not read, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory"
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    name = next((n for test, n in kinds if test(mode)), "a socket" if stat.S_ISSOCK(mode) else "special")
    return f"not a regular file ({name})"


def _read_capped(path: Path, cap: int) -> bytes | None:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "rb") as handle:
        kind = _file_kind(os.fstat(handle.fileno()).st_mode)  # replaced between stat and open
        if kind is not None:
            raise OSError(errno.EINVAL, kind)
        data = handle.read(cap + 1)
    return None if len(data) > cap else data


def _os_problem(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "no such file"
    if exc.errno == errno.ELOOP:
        return "a symlink loop (too many levels of symbolic links)"
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long"
    return exc.strerror or "cannot be read"


@dataclass
class Loader:
    sink: DiagnosticSink
    program: Program = field(default_factory=lambda: Program(root=""))
    _stack: list[str] = field(default_factory=list)
    _failed: set[str] = field(default_factory=set)  # modules that did not parse (reported once)

    def load_root(self, source: SourceFile, key: str) -> Program:
        self.program.root = key
        self._load(source, key)
        return self.program

    def _load(self, source: SourceFile, key: str) -> None:
        module = parse_source(source, self.sink)
        if module is None:
            self._failed.add(key)
            return
        self._stack.append(key)
        results = [(imp, self._resolve(imp, key)) for imp in _imports(module)]
        self._stack.pop()
        resolved = tuple((imp, k) for imp, k in results if k is not None)
        broken = tuple(imp for imp, k in results if k is None)
        self.program.modules[key] = LoadedModule(key, source, module, resolved, broken)

    def _resolve(self, imp: A.Import | A.FromImport, importer: str) -> str | None:
        ref = imp.module
        located = self._locate(ref, importer)
        if located is None:
            return None
        key, source = located
        if key in self._stack:
            chain = " -> ".join(_key_display(k) for k in self._stack[self._stack.index(key) :] + [key])
            self.sink.report(
                error(
                    "E0208",
                    "import cycle",
                    ref.span,
                    f"'{ref.display}' is already being imported",
                    notes=(f"cycle: {chain}",),
                    help="move the shared definitions into a third module",
                )
            )
            return None
        if key not in self.program.modules and source is not None:
            self._load(source, key)
        return key if key in self.program.modules else None

    def _locate(self, ref: A.ModuleRef, importer: str) -> tuple[str, SourceFile | None] | None:
        if ref.path is not None:
            return self._locate_path(ref, importer)
        parts = [p.name for p in ref.dotted]
        if len(parts) != 2 or parts[0] != STD_PREFIX:
            self._missing(ref, "standard modules are named std.<name>; other files are imported by a quoted path")
            return None
        key = ".".join(parts)
        if key in self.program.modules or key in self._stack or key in self._failed:
            return key, None
        text = _std_text(parts[1])
        if text is None:
            self._missing(ref, "no such standard module")
            return None
        return key, SourceFile(f"<std>/{parts[1]}.liv", text)

    def _locate_path(self, ref: A.ModuleRef, importer: str) -> tuple[str, SourceFile | None] | None:
        assert ref.path is not None
        base = Path(importer).parent if not importer.startswith(("<", STD_PREFIX + ".")) else Path.cwd()
        try:
            path = (base / ref.path.value).resolve()
        except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
            self.sink.report(error("E0109", f"cannot read '{ref.path.value}'", ref.span, f"invalid path: {exc}"))
            return None
        if not _is_liv_path(ref.path.value, path):
            self.sink.report(error("E0109", f"cannot import '{ref.path.value}'", ref.span, _NOT_LIV, help=_LIV_HELP))
            return None
        key = str(path)
        if key in self.program.modules or key in self._stack or key in self._failed:
            return key, None
        text, problem = read_file(path)
        if text is None and problem == "no such file":
            self._missing(ref, f"{ref.path.value}: {problem}")
        elif text is None:
            self.sink.report(error("E0109", f"cannot read '{ref.path.value}'", ref.span, problem or ""))
        return None if text is None else (key, SourceFile(_display(path), text))

    def _missing(self, ref: A.ModuleRef, label: str) -> None:
        self.sink.report(error("E0207", f"cannot find module '{ref.display}'", ref.span, label))


_NOT_LIV = "only .liv source files can be imported"
_LIV_HELP = "an imported path names a `.liv` file (after following symlinks), relative to the importing file"


def _is_liv_path(written: str, resolved: Path) -> bool:
    """The import policy: what is written and what it resolves to both end in `.liv`.

    Absolute paths and `..` are allowed (relative ones resolve against the importing file); a
    path that does not name a `.liv` file is refused before it is opened, so the contents of a file
    that is not a .liv source (`import "/etc/passwd"`) never appear in a diagnostic.
    """
    return written.endswith(".liv") and resolved.suffix == ".liv"


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _key_display(key: str) -> str:
    return key if key.startswith((STD_PREFIX + ".", "<")) else _display(Path(key))


def _imports(module: A.Module) -> list[A.Import | A.FromImport]:
    return [it for it in module.items if isinstance(it, (A.Import, A.FromImport))]


def load_text(text: str, name: str, sink: DiagnosticSink) -> Program:
    """Load a program whose root is in-memory text (relative imports resolve against the cwd)."""
    return Loader(sink).load_root(
        SourceFile(name, text), str(Path(name).resolve()) if not name.startswith("<") else name
    )


def load_path(path: Path, sink: DiagnosticSink) -> Program | None:
    text, problem = read_file(path)
    if text is None:
        stub = SourceFile(str(path), "")
        sink.report(error("E0109", f"cannot read '{path}'", Span(stub, 0, 0), problem or ""))
        return None
    return Loader(sink).load_root(SourceFile(str(path), text), str(path.resolve()))
