"""Compile a .liv file to a PyTorch module class in-process (the same code `livc build` writes)."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from pathlib import Path

from livc.backends.pytorch.emit_ops import BackendError
from livc.backends.pytorch.generate import generate
from livc.backends.pytorch.view import model_class_name
from livc.compiler.ir.nodes import Model
from livc.compiler.pipeline import compile_path
from livc.dsl.diagnostics import CompileError, Diagnostic
from livc.dsl.render import render_all_text


@dataclass(frozen=True)
class Built:
    ir: Model
    code: str
    module: types.ModuleType

    @property
    def model_class(self) -> type:
        return getattr(self.module, self.module.__livc_model_class__)  # type: ignore[no-any-return]

    @classmethod
    def load(cls, ir: Model, code: str) -> Built:
        """Import generated `code` for `ir`; the model class is found by name (a model `eval` is class `eval_`)."""
        module = load_code(code, f"livc_generated_{ir.name.lower()}")
        module.__livc_model_class__ = model_class_name(ir)  # type: ignore[attr-defined]
        return cls(ir, code, module)


def generate_from_path(path: Path, stage: str = "canonicalize") -> tuple[Model, str]:
    result = compile_path(path, stop_after=stage)
    if not result.ok:
        raise compile_error(result.diagnostics)
    if len(result.models) != 1:
        raise BackendError(f"{path} defines {len(result.models)} models; the PyTorch backend builds one")
    return result.models[0], generate(result.models[0], str(path), path.read_text(encoding="utf-8"))


def compile_error(diagnostics: tuple[Diagnostic, ...]) -> CompileError:
    """A CompileError whose message is the rendered diagnostics, as `livc check` prints them (no colour)."""
    error = CompileError(diagnostics)
    error.args = (render_all_text(diagnostics).rstrip("\n"),)
    return error


def load_code(code: str, name: str) -> types.ModuleType:
    """Execute generated code as a fresh module (it is livc's own output, never user text)."""
    module = types.ModuleType(name)
    module.__file__ = f"<livc:{name}>"
    sys.modules[name] = module  # dataclasses/pickling look modules up by name
    exec(compile(code, module.__file__, "exec"), module.__dict__)  # noqa: S102
    return module


def build(path: str | Path) -> Built:
    path = Path(path)
    return Built.load(*generate_from_path(path))
