"""livc: a compiler for LIV sequence-model architectures.

`livc.compile("model.liv", d=512)` returns the generated PyTorch module (the same code `livc build`
writes), with model parameters set by keyword arguments like `livc build -D d=512`; the model class
is `built.model_class`. `livc.api` also has `check` and `cost` (see its docstring).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`livc.api` without importing it first (it loads the compiler, so it is not imported eagerly)."""
    if name == "api":
        import livc.api

        return livc.api
    raise AttributeError(f"module 'livc' has no attribute {name!r}")


def compile(  # noqa: A001 - the public name the issue asks for
    path: str | Path, *, model: str | None = None, overrides: Mapping[str, object] | None = None, **params: object
) -> Any:
    """Compile a .liv file with the PyTorch backend and return a `Built` (ir, code, module); see `livc.api`."""
    from livc.api import compile as compile_file

    return compile_file(path, model=model, overrides=overrides, **params)
