"""Stable diagnostic codes: E01xx syntax, E02xx names, E03xx values/types/shapes, E04xx budgets,
W0xxx warnings.

Each code has a one-line explanation (shown by `livc explain CODE`) and at least one failing example
with a golden rendering under `tests/golden/diagnostics/`.
"""

from __future__ import annotations

CODES: dict[str, str] = {
    # syntax
    "E0101": "a character that cannot start any token",
    "E0102": "a token where the grammar does not allow it",
    "E0103": "the file ends in the middle of a construct",
    "E0104": "a string literal is not closed on its line, or has an invalid escape",
    "E0105": "a number literal is malformed or has an unknown suffix",
    "E0106": "an identifier is a reserved word, starts with '__' or is too long",
    "E0107": "a positional argument follows a keyword argument",
    "E0108": "a parameter without a default follows one with a default",
    "E0109": "a file could not be read (missing, a directory, not UTF-8)",
    "E0110": "the program is nested too deeply to process",
    # names
    "E0201": "a name is used but never defined",
    "E0202": "a call to something that is neither a definition nor a primitive",
    "E0203": "a keyword argument that the callee does not have",
    "E0204": "a required argument is missing",
    "E0205": "a name is defined twice in the same scope",
    "E0206": "more positional arguments than the callee takes",
    "E0207": "an imported module does not exist",
    "E0208": "modules import each other in a cycle",
    "E0209": "an imported name is not defined in that module",
    "E0210": "the same keyword argument is given twice",
    "E0211": "a section appears twice or is not allowed where it is",
    # values and types
    "E0301": "a value of the wrong type",
    "E0302": "a `require` constraint does not hold",
    "E0303": "division or modulo by zero",
    "E0304": "a value outside its allowed range (negative width, empty list, ...)",
    "E0305": "an operator or structure name that livc does not know",
    "E0306": "a layer index outside the backbone",
    "E0307": "definitions call each other recursively",
    "E0308": "a LIV or op that is missing a required part (section, return)",
    "E0309": "a model that is missing a required field, or has an unknown one",
    "E0310": "an invalid sharing declaration",
    "E0311": "invalid Mixture-of-Recursions settings",
    "E0312": "tensor shapes do not fit (widths, heads, kernel lengths)",
    "E0313": "a LIV section declares a structure its operations do not have",
    "E0314": "sharing between layers whose shared parts are incompatible",
    "E0315": "an operator reads an input it does not get (`tokens` outside the embedding, `x` in it)",
    # budgets
    "E0401": "an unknown budget metric or budget argument",
    "E0402": "a declared budget is exceeded",
    # warnings: shown and counted, errors only under --deny-warnings
    "W0001": "a weight never reaches the output, so it is dropped",
    "W0002": "an imported name or module is never used",
    "W0003": "a budget or `--seq` measures a sequence longer than the model's `context`",
    "W0004": "a budget can never bind: another budget of the model implies it",
    "W0005": "a parameter or `let` is never used",
}


def explain(code: str) -> str | None:
    return CODES.get(code)
