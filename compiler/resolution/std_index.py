"""Which standard module defines which name: the import to suggest for an undefined name.

Computed once per process from the `stdlib/*.liv` sources themselves (their top-level `let`, `fn`,
`liv`, `op` and `model` definitions), so it cannot drift from the library.
"""

from __future__ import annotations

from functools import lru_cache

from livc.compiler.resolution.loader import STD_PREFIX, std_modules, std_text
from livc.dsl import ast as A
from livc.dsl.diagnostics import DiagnosticSink
from livc.dsl.parser import parse_source
from livc.dsl.source import SourceFile


def _exports(name: str) -> list[str]:
    text = std_text(name)
    module = parse_source(SourceFile(f"<std>/{name}.liv", text), DiagnosticSink()) if text is not None else None
    if module is None:
        return []
    return [item.name.name for item in module.items if isinstance(item, (A.Let, A.FnDef, A.Def, A.ModelInst))]


@lru_cache(maxsize=1)
def std_index() -> dict[str, str]:
    """Exported name -> `std.<module>` (the first module in name order that defines it)."""
    index: dict[str, str] = {}
    for module in sorted(std_modules()):
        for name in _exports(module):
            index.setdefault(name, f"{STD_PREFIX}.{module}")
    return index


def import_hint(name: str) -> str | None:
    """`add `from std.attention import GQA`` if a standard module defines `name`."""
    module = std_index().get(name)
    return None if module is None else f"add `from {module} import {name}`"
