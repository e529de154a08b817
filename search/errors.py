"""The search's one error type, `SearchError(code, message)`, and its rustc-style rendering.

Codes: E0801 a bad search-space file (TOML syntax, unknown or ill-typed keys, unreadable seed files),
E0802 a bad archive or resume (missing, corrupt, or written for a different space), E0803 evaluation
infrastructure (workers that cannot start, Ray unavailable). A candidate's own failure (NaN, crash,
timeout) is never a `SearchError`: it is recorded in the archive and the search goes on.

`where` locates the error in a file (`Where(path, line, col, source_line)`) when that is known;
`render` prints it like the compiler's diagnostics (`error[E0801]: ...` then `--> file:line:col`).
"""

from __future__ import annotations

from dataclasses import dataclass

CODES = {
    "E0801": "a bad search-space file: TOML syntax, an unknown or ill-typed key, an unreadable seed architecture",
    "E0802": "a bad search archive or --resume directory: missing, corrupt, or written for a different space",
    "E0803": "evaluation infrastructure failed: workers could not start, or Ray is unavailable",
}


@dataclass(frozen=True)
class Where:
    """A position in a file: 1-based line and column, and the text of that line (for the caret)."""

    path: str
    line: int
    col: int = 1
    text: str = ""


@dataclass(frozen=True)
class SearchError(Exception):
    code: str
    message: str
    where: Where | None = None
    help: str | None = None

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unregistered search error code {self.code}")

    def __str__(self) -> str:
        return render(self)


def render(err: SearchError) -> str:
    """`error[E0801]: message`, then `--> file:line:col` with the line and a caret when known."""
    lines = [f"error[{err.code}]: {err.message}"]
    w = err.where
    if w is not None:
        lines.append(f"  --> {w.path}:{w.line}:{w.col}")
        if w.text:
            gutter = " " * len(str(w.line))
            lines += [f"{gutter} |", f"{w.line} | {w.text}", f"{gutter} | {' ' * (w.col - 1)}^"]
    if err.help:
        lines.append(f"  = help: {err.help}")
    return "\n".join(lines)


def where_in(path: str, text: str, line: int, col: int = 1) -> Where:
    """A `Where` for 1-based `line`/`col` of `text` (clamped to the text)."""
    rows = text.splitlines() or [""]
    line = min(max(line, 1), len(rows))
    return Where(path, line, max(col, 1), rows[line - 1])
