"""Model-parameter overrides from outside a `.liv` file (`livc ... -D d=512`, `livc.compile(path, d=512)`).

An `Override` names a parameter of a root model (`d`) or of one root model (`LFM2.d`) and carries
the value as text. The text is parsed as a `.liv` expression in a synthetic source file named
`<-D d=512>`, so a bad value gets a caret diagnostic like any source value. `parse_define` only
splits `NAME=VALUE`; everything about the value (its syntax, type and range) is diagnosed when the
model is elaborated (see `elaboration.elaborate`).

Non-goals: overriding `let`s or fields (only declared model parameters are the model's interface).
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Override:
    """`model.name = text`; `model` None means every root model that has the parameter."""

    name: str
    text: str
    model: str | None = None

    @property
    def display(self) -> str:
        target = f"{self.model}.{self.name}" if self.model else self.name
        return f"{target}={self.text}"


class OverrideSyntaxError(ValueError):
    """A `-D` spec that is not `NAME=VALUE` or `MODEL.NAME=VALUE` (a usage error, not a diagnostic)."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"invalid override {text!r}: {reason}")
        self.text = text
        self.reason = reason


def parse_define(text: str) -> Override:
    """Split `NAME=VALUE` / `MODEL.NAME=VALUE`; the value is kept as text (checked at elaboration)."""
    if "=" not in text:
        raise OverrideSyntaxError(text, "expected NAME=VALUE, e.g. d=512")
    target, value = text.split("=", 1)
    target = target.strip()
    if not value.strip():
        raise OverrideSyntaxError(text, f"no value after '{target}='")
    parts = target.split(".")
    if len(parts) > 2:
        raise OverrideSyntaxError(text, "expected NAME or MODEL.NAME before '='")
    for part in parts:
        if not _IDENT.match(part):
            shown = part if part.isprintable() else ascii(part)
            raise OverrideSyntaxError(text, f"'{shown}' is not a name" if part else "a name is missing before '='")
    return Override(parts[-1], value, parts[0] if len(parts) == 2 else None)


def from_python(name: str, value: object, model: str | None = None) -> Override:
    """An override from a Python value (`livc.compile(path, d=512)`), converted to `.liv` text, never eval'ed.

    Raises `TypeError` for a value that has no `.liv` spelling (dicts, objects, ...).
    """
    if "." in name and model is None:
        model, name = name.split(".", 1)
    for part in (name, model or "x"):
        if not _IDENT.match(part):
            raise OverrideSyntaxError(f"{name}", f"'{part}' is not a name")
    return Override(name, python_to_liv(value), model)


def python_to_liv(value: object) -> str:
    """The `.liv` literal for a Python value: bool, int, float (numpy scalars too), str, None, or a
    list/tuple of those. A non-finite float becomes `inf`/`nan`, which the evaluator rejects."""
    match value:
        case bool():
            return "true" if value else "false"
        case numbers.Integral():
            return str(int(value))
        case numbers.Real():
            return repr(float(value))
        case str():
            return _string(value)
        case None:
            return "none"
        case list() | tuple():
            return "[" + ", ".join(python_to_liv(v) for v in value) + "]"
    raise TypeError(f"a model parameter cannot be set from a {type(value).__name__}")


def _string(value: str) -> str:
    if any(ch in value for ch in '"\\\n'):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return f'"{value}"'


def provenance(name: str, text: str, overrides: Sequence[Override]) -> tuple[str, str]:
    """How generated code names a program built with overrides (`model.liv -D d=512`), and the text its source
    digest covers (the overrides change the program, so they are part of it)."""
    shown = name + "".join(f" -D {o.display}" for o in overrides)
    return shown, text + "".join(f"\n-D {o.display}" for o in overrides)
