"""Words and literals: reserved words, identifier validation, number literal meaning.

Identifiers end up as Python attribute names, TVM symbol names and file names in generated code,
so they are restricted here, once: ASCII `[A-Za-z_][A-Za-z0-9_]*`, at most 64 characters, not a
.liv keyword, not a Python keyword or soft keyword, not starting with `__`.
"""

from __future__ import annotations

import keyword
import math
import re

LIV_KEYWORDS = frozenset(
    [
        "import",
        "from",
        "as",
        "let",
        "fn",
        "liv",
        "op",
        "model",
        "require",
        "if",
        "then",
        "else",
        "return",
        "and",
        "or",
        "not",
        "true",
        "false",
        "none",
        "featurizer",
        "token_mix",
        "channel_mix",
        "override",
        "share",
        "to",
        "with",
        "budget",
    ]
)
PYTHON_WORDS = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | {"self", "cls"}
MAX_IDENT_LEN = 64
MAX_NUMBER_DIGITS = 300
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

COUNT_SUFFIXES = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
BYTE_SUFFIXES = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
_NUMBER_RE = re.compile(r"(?P<num>[0-9](?:_?[0-9])*(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)(?P<suffix>[A-Za-z]*)\Z")


def identifier_problem(name: str) -> str | None:
    """Why `name` may not be used as an identifier, or None if it may."""
    if not _IDENT_RE.match(name):
        return "identifiers are ASCII letters, digits and '_'"
    if name in LIV_KEYWORDS:
        return f"'{name}' is a .liv keyword"
    if name in PYTHON_WORDS:
        return f"'{name}' is reserved because generated Python code would use it"
    if name.startswith("__"):
        return "identifiers may not start with '__'"
    if len(name) > MAX_IDENT_LEN:
        return f"identifiers are at most {MAX_IDENT_LEN} characters long"
    return None


def number_value(text: str) -> int | float | None:
    """The value of a number literal, or None if it is malformed.

    Integers stay integers; `K M G T` scale by powers of 1000 and `KiB MiB GiB TiB` by powers of
    1024. A suffixed literal with a fraction (`1.5M`) must denote a whole number.
    """
    match = _NUMBER_RE.match(text)
    if match is None:
        return None
    num, suffix = match["num"].replace("_", ""), match["suffix"]
    if len(num) > MAX_NUMBER_DIGITS:
        return None
    is_float = "." in num or "e" in num.lower()
    if not suffix:
        value: int | float = float(num) if is_float else int(num)
        return value if math.isfinite(value) else None
    scale = COUNT_SUFFIXES.get(suffix) or BYTE_SUFFIXES.get(suffix)
    if scale is None:
        return None
    if not is_float:
        return int(num) * scale
    scaled = float(num) * scale
    return int(scaled) if math.isfinite(scaled) and scaled.is_integer() else None
