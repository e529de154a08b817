"""Render the view model into Python source (jinja2, StrictUndefined); `ast.parse` it before use."""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from importlib import resources

import jinja2

from livc import __version__
from livc.backends.pytorch.view import build_view
from livc.compiler.ir.nodes import Model


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    loader = jinja2.PackageLoader("livc.backends.pytorch", "templates")
    return jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _helper(name: str) -> str:
    return resources.files("livc.backends.pytorch").joinpath("templates", "helpers", f"{name}.py").read_text()


def header_text(text: str) -> str:
    """`text` safe for a one-line comment: non-printable characters (newlines, escapes, ANSI control codes,
    line separators) and backslashes written as Python escapes, so a file name cannot inject lines."""
    return "".join(ch if ch.isprintable() and ch != "\\" else repr(ch)[1:-1] for ch in text)


def generate(model: Model, source_name: str, source_text: str) -> str:
    """Python source of a standalone module for `model`; deterministic for the same input."""
    view = build_view(model)
    helpers = [_helper(h).strip() for h in view.helpers]
    code = (
        _env()
        .get_template("module.py.j2")
        .render(
            model=view,
            helpers=helpers,
            version=__version__,
            source=header_text(source_name),
            digest=hashlib.sha256(source_text.encode()).hexdigest()[:16],
        )
    )
    code = "\n".join(line.rstrip() for line in code.splitlines()) + "\n"
    ast.parse(code)
    return code
