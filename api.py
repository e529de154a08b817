"""The Python API: check, cost and compile a `.liv` file, with model parameters set from Python.

    import livc
    built = livc.compile("examples/lfm2_350m.liv", d=512, n_layers=8)   # a `Built` (ir, code, module)
    report = livc.api.cost("examples/lfm2_350m.liv", d=512)             # a `CostReport`
    result = livc.api.check("examples/lfm2_350m.liv", d=512)            # a `CheckResult` (never raises)

Keyword arguments set model parameters exactly like `livc ... -D name=value`: each Python value is
converted to `.liv` literal text (bool, int, float, str, None, lists/tuples of those; never eval'ed)
and then typed, validated and diagnosed like a value written in the file. `overrides={"M.d": 512}`
selects one model of the file, or sets a parameter whose name clashes with an argument of these
functions (`model`, `seq`, ...). A failure raises `LivcError`, whose message is the rendered
diagnostics (`.diagnostics` holds them as data).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from livc.backends.pytorch.load import Built
from livc.compiler.analysis.costs import CostReport
from livc.compiler.check import CheckResult, check_path
from livc.compiler.elaboration.overrides import Override, from_python, provenance
from livc.compiler.ir.nodes import Model
from livc.compiler.pipeline import analyze_path, compile_path
from livc.dsl.diagnostics import CompileError, Diagnostic
from livc.dsl.render import render_all_text

Params = Mapping[str, object]


class LivcError(CompileError):
    """A program livc rejected; `str()` is the rendered diagnostics, `.diagnostics` the data."""

    def __str__(self) -> str:
        return render_all_text(self.diagnostics).rstrip()


def to_overrides(overrides: Params | None = None, **params: object) -> tuple[Override, ...]:
    """Overrides from a mapping (`{"d": 512, "M.d": 512}`) and keyword arguments (which come last)."""
    if overrides is not None and not isinstance(overrides, Mapping):
        raise TypeError(f"overrides must be a mapping of parameter names to values, not {type(overrides).__name__}")
    items = [*(overrides or {}).items(), *params.items()]
    wrong = [name for name, _ in items if not isinstance(name, str)]
    if wrong:
        raise TypeError(f"override names must be strings, got {wrong[0]!r}")
    return tuple(from_python(name, value) for name, value in items)


def check(path: str | Path, *, overrides: Params | None = None, **params: object) -> CheckResult:
    """Load, resolve and elaborate `path` with the given parameters; never raises for a bad program."""
    return check_path(Path(path), to_overrides(overrides, **params))


def cost(
    path: str | Path, *, model: str | None = None, overrides: Params | None = None, **params: object
) -> CostReport:
    """The static cost report of the file's model (`model` picks one of several); raises `LivcError`."""
    analyzed = analyze_path(Path(path), overrides=to_overrides(overrides, **params))
    _raise_if_failed(analyzed.diagnostics, analyzed.ok)
    names = [m.name for m in analyzed.compiled.models]
    return analyzed.reports[_pick(names, model, path)]


def compile(  # noqa: A001 - the public name
    path: str | Path, *, model: str | None = None, overrides: Params | None = None, **params: object
) -> Built:
    """Compile with the PyTorch backend and import the generated module (what `livc build` writes)."""
    from livc.backends.pytorch.generate import generate

    path = Path(path)
    chosen = to_overrides(overrides, **params)
    ir = _compiled_model(path, model, chosen)
    text = path.read_text(encoding="utf-8", errors="replace")
    return Built.load(ir, generate(ir, *provenance(str(path), text, chosen)))


def _compiled_model(path: Path, model: str | None, overrides: tuple[Override, ...]) -> Model:
    result = compile_path(path, stop_after="canonicalize", overrides=overrides)
    _raise_if_failed(result.diagnostics, result.ok)
    return result.models[_pick([m.name for m in result.models], model, path)]


def _raise_if_failed(diagnostics: tuple[Diagnostic, ...], ok: bool) -> None:
    if not ok:
        raise LivcError(diagnostics)


def _pick(names: list[str], model: str | None, path: str | Path) -> int:
    if model is None and len(names) == 1:
        return 0
    if model is not None and model in names:
        return names.index(model)
    if not names:
        raise ValueError(f"{path} defines no model")
    shown = ", ".join(names)
    if model is None:
        raise ValueError(f"{path} defines several models ({shown}); choose one with model=NAME")
    raise ValueError(f"{path} has no model {model!r}; its models: {shown}")


__all__ = ["LivcError", "check", "compile", "cost", "to_overrides"]
