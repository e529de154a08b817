"""livc: a compiler for LIV sequence-model architectures.

`livc.compile("model.liv")` returns the generated PyTorch module (the same code `livc build`
writes); the model class is `module.<ModelName>` (also `built.model_class`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def compile(path: str | Path) -> Any:  # noqa: A001 - the public name the issue asks for
    """Compile a .liv file with the PyTorch backend and return a `Built` (ir, code, module)."""
    from livc.backends.pytorch.load import build

    return build(path)
