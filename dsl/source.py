"""Source files and spans.

A `Span` is a pair of character offsets into a `SourceFile`; line and column are computed lazily
(1-based) only when a diagnostic is rendered. Spans never take part in AST/IR equality.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True, eq=False)
class SourceFile:
    """One `.liv` text and the name it is shown under (a path or `<stdlib>/x.liv`)."""

    name: str
    text: str

    @cached_property
    def _line_starts(self) -> tuple[int, ...]:
        starts = [0]
        starts.extend(i + 1 for i, ch in enumerate(self.text) if ch == "\n")
        return tuple(starts)

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset; offsets past the end clamp to it."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its newline."""
        starts = self._line_starts
        start = starts[line - 1]
        end = starts[line] - 1 if line < len(starts) else len(self.text)
        return self.text[start:end]

    @property
    def line_count(self) -> int:
        return len(self._line_starts)


@dataclass(frozen=True, slots=True)
class Span:
    """Half-open character range [start, end) in `source`."""

    source: SourceFile = field(repr=False)
    start: int
    end: int

    def join(self, other: Span) -> Span:
        return Span(self.source, min(self.start, other.start), max(self.end, other.end))

    @property
    def text(self) -> str:
        return self.source.text[self.start : self.end]

    def describe(self) -> str:
        line, col = self.source.line_col(self.start)
        return f"{self.source.name}:{line}:{col}"


_UNKNOWN_SOURCE = SourceFile("<unknown>", "")
NO_SPAN = Span(_UNKNOWN_SOURCE, 0, 0)


def span_field() -> Span:
    """A dataclass field for spans: keyword-only, excluded from equality, hashing and repr."""
    return field(default=NO_SPAN, compare=False, hash=False, repr=False)
