"""Render diagnostics rustc-style (text) or as JSON. Rendering never detects anything.

Text from the user's files (messages of `require`, string literals, file names, source lines) may
hold control characters; the text renderer shows them escaped (`\x1b`, `\n`, `\u202e`), so a
diagnostic can never move the cursor, recolour the terminal or fake extra lines. JSON escapes them
itself (`ensure_ascii`).
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from livc.dsl.diagnostics import Diagnostic, Label, Severity, count
from livc.dsl.source import Span


def render_text(diag: Diagnostic) -> str:
    """`error[E0302]: message`, a `-->` location, source lines with carets, notes and help."""
    primary = diag.primary.span
    line, col = primary.source.line_col(primary.start)
    labels = [(diag.primary, "^")] + [(lab, "-") for lab in diag.secondary]
    width = len(str(max(_last_line(lab.span) for lab, _ in labels)))
    pad = " " * width
    out = [
        f"{diag.severity.value}[{diag.code}]: {escape(diag.message)}",
        f"{pad}--> {escape(primary.source.name)}:{line}:{col}",
    ]
    out.append(f"{pad} |")
    last_line: dict[str, int] = {}
    for label, mark in sorted(labels, key=lambda lm: (lm[0].span.source is not primary.source, lm[0].span.start)):
        if label.span.source.text:
            first = label.span.source.line_col(label.span.start)[0]
            previous = last_line.get(label.span.source.name)
            if previous is not None and first > previous + 1:
                out.append("...")
            last_line[label.span.source.name] = _last_line(label.span)
            out.extend(_snippet(label, mark, width, primary))
        elif label.message:
            out.append(f"{pad} = {escape(label.message)}")
    out.append(f"{pad} |") if out[-1] != f"{pad} |" else None
    out.extend(f"{pad} = note: {escape(note)}" for note in diag.notes)
    if diag.help:
        out.append(f"{pad} = help: {escape(diag.help)}")
    return "\n".join(out)


def _last_line(span: Span) -> int:
    return span.source.line_col(max(span.start, span.end - 1))[0]


def _snippet(label: Label, mark: str, width: int, primary: Span) -> list[str]:
    span = label.span
    src = span.source
    out: list[str] = []
    if src is not primary.source:
        line, col = src.line_col(span.start)
        out.extend([f"{' ' * width} |", f"{' ' * width}::: {escape(src.name)}:{line}:{col}", f"{' ' * width} |"])
    first, _ = src.line_col(span.start)
    last = _last_line(span) if span.end > span.start else first
    raw = src.line_text(first).expandtabs(1)
    text = escape(raw)
    start_col = _escaped_col(raw, src.line_col(span.start)[1])
    end_col = _escaped_col(raw, src.line_col(span.end)[1]) if last == first else len(text) + 1
    text, start_col, end_col = _window(text, start_col, end_col)
    out.append(f"{first:>{width}} | {text}")
    carets = mark * max(1, end_col - start_col)
    suffix = f" {escape(label.message)}" if label.message else ""
    if last > first:
        suffix += f" (continues to line {last})"
    out.append(f"{' ' * width} | {' ' * (start_col - 1)}{carets}{suffix}".rstrip())
    return out


def _unsafe(ch: str) -> bool:
    """Control (C0, DEL, C1), line/paragraph separators and bidi/format characters."""
    return ch != " " and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def escape(text: str) -> str:
    """`text` with every control character written as an escape (printable text unchanged)."""
    if text.isprintable():
        return text
    return "".join(_escaped(ch) if _unsafe(ch) else ch for ch in text)


def _escaped_col(raw: str, col: int) -> int:
    """The 1-based column in `escape(raw)` of column `col` of `raw`."""
    return len(escape(raw[: col - 1])) + 1


MAX_SHOWN = 120


def _window(text: str, start: int, end: int) -> tuple[str, int, int]:
    """Cut a long source line to a window around the label (columns are 1-based)."""
    if len(text) <= MAX_SHOWN:
        return text, start, end
    left = max(0, min(start - 1 - 20, len(text) - MAX_SHOWN))
    shown = text[left : left + MAX_SHOWN]
    prefix = "..." if left > 0 else ""
    suffix = "..." if left + MAX_SHOWN < len(text) else ""
    shift = len(prefix) - left
    end = min(end + shift, len(prefix) + len(shown) + 1)
    return prefix + shown + suffix, start + shift, max(end, start + shift + 1)


def render_all_text(diags: tuple[Diagnostic, ...] | list[Diagnostic]) -> str:
    parts = [render_text(d) for d in diags]
    errors = count(diags, Severity.ERROR)
    if errors:
        parts.append(f"error: aborting due to {errors} previous error{'s' if errors != 1 else ''}")
    return "\n\n".join(parts) + "\n"


def _label_json(label: Label) -> dict[str, Any]:
    span = label.span
    line, col = span.source.line_col(span.start)
    end_line, end_col = span.source.line_col(span.end)
    return {
        "file": span.source.name,
        "start": {"offset": span.start, "line": line, "column": col},
        "end": {"offset": span.end, "line": end_line, "column": end_col},
        "message": label.message,
    }


def to_json(diag: Diagnostic) -> dict[str, Any]:
    return {
        "code": diag.code,
        "severity": diag.severity.value,
        "message": diag.message,
        "primary": _label_json(diag.primary),
        "secondary": [_label_json(lab) for lab in diag.secondary],
        "notes": list(diag.notes),
        "help": diag.help,
    }


def render_json(diags: tuple[Diagnostic, ...] | list[Diagnostic]) -> str:
    return json.dumps({"diagnostics": [to_json(d) for d in diags]}, indent=2, sort_keys=True) + "\n"
