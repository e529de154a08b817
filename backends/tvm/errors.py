"""TvmError: the one error type of the TVM backend.

Codes: E0701 unsupported op or feature, E0702 target unavailable, E0703 bad artifact or checkpoint.
The message names the op (or file) and why. Non-goal: rendering (the CLI prints `code: message`).
"""

from __future__ import annotations

UNSUPPORTED = "E0701"
TARGET = "E0702"
ARTIFACT = "E0703"
CODES = {
    UNSUPPORTED: "the TVM backend cannot compile an op or feature of this model (the message names it and why)",
    TARGET: "a TVM target this installation cannot serve (missing cross compiler, not built into this TVM)",
    ARTIFACT: "a bad TVM artifact, manifest or checkpoint (missing files, wrong shapes or names)",
}


class TvmError(Exception):
    """A coded TVM-backend error; `str(err)` is `E07xx: message`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def unsupported(what: str, why: str) -> TvmError:
    """E0701 naming the op or feature and the reason."""
    return TvmError(UNSUPPORTED, f"{what}: {why}")
