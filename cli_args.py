"""Values of command-line arguments: token counts (`--seq 2K`), batch sizes, plot files, budgets.

Token counts follow the convention of context sizes (llama.cpp, Hugging Face model cards): a suffix
is binary, `K`/`k` = 1024, `M` = 1024², `G` = 1024³, so `--seq 2K` is 2048 and `32K` is 32768. Only a
whole number with at most one of those suffixes is accepted: `2.5K`, `2KB`, `2KiB`, `1e4`, `2m`, `0`
and negative numbers are rejected rather than guessed. (Budgets' limits keep the language's units:
`params<=400M` is 400,000,000 and `cache<=64MiB` is bytes; only the `@SEQ` of a budget is a token count.)
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

TOKEN_SUFFIXES = {"": 1, "K": 2**10, "k": 2**10, "M": 2**20, "G": 2**30}
MAX_TOKENS = 2**40
MAX_BATCH = 2**30
TOKEN_RULE = "a whole number of tokens, optionally with K (x1024), M (x1024^2) or G (x1024^3): 4096, 2K, 32K, 1M"
_TOKENS = re.compile(r"(?P<num>[0-9]+(?:_[0-9]+)*)(?P<suffix>[KkMG]?)\Z")
_BUDGET_SEQ = re.compile(r"(?P<head>[a-z_]+@)(?P<seq>[^<=\s]+)(?P<tail>\s*<.*)\Z", re.DOTALL)


@dataclass(frozen=True)
class UsageError(Exception):
    """A wrong argument value found after argparse (exit 2, with `livc <command>: error: ...`)."""

    message: str

    def __str__(self) -> str:
        return self.message


def token_count(text: str, what: str = "--seq") -> int:
    """`4096`, `2K` (2048), `32k`, `1M` -> an int in [1, 2**40]; raises `UsageError`."""
    m = _TOKENS.match(text.strip())
    if m is None or len(m["num"]) > 15:
        raise UsageError(f"invalid {what} '{_shown(text)}': expected {TOKEN_RULE}")
    value = int(m["num"].replace("_", "")) * TOKEN_SUFFIXES[m["suffix"]]
    if not 1 <= value <= MAX_TOKENS:
        raise UsageError(f"invalid {what} '{_shown(text)}': must be between 1 and {MAX_TOKENS:,} tokens")
    return value


def seq_range(text: str) -> list[int]:
    """`A:B` -> A, 2A, 4A, ... up to B (inclusive when B is reached); raises `UsageError`."""
    parts = text.split(":")
    if len(parts) != 2:
        raise UsageError(f"invalid --seq range '{_shown(text)}': expected A:B, e.g. 128:1M")
    lo, hi = (token_count(p, "--seq") for p in parts)
    if lo > hi:
        raise UsageError(f"invalid --seq range '{_shown(text)}': {lo:,} is larger than {hi:,}")
    seqs, s = [], lo
    while s <= hi:
        seqs.append(s)
        s *= 2
    return seqs


def positive_int(text: str) -> int:
    """argparse `type=` for `--batch`: an integer >= 1."""
    try:
        value = int(text.strip().replace("_", ""), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got '{_shown(text)}'") from None
    if not 1 <= value <= MAX_BATCH:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_BATCH:,}, got {value}")
    return value


def budget_spec(text: str) -> str:
    """Normalise the token count of `METRIC@SEQ<=LIMIT` (`cache@32K<=64MiB` -> `cache@32768<=64MiB`)."""
    m = _BUDGET_SEQ.match(text.strip())
    if m is None:
        return text
    return f"{m['head']}{token_count(m['seq'], 'budget sequence length')}{m['tail']}"


def plot_format(path: str, formats: tuple[str, ...]) -> str:
    """The format of a `--plot` file from its extension; raises `UsageError` for one matplotlib cannot write."""
    if path == "-":
        raise UsageError("--plot needs a file name (stdout carries the report)")
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    if ext not in formats:
        given = f"'.{_shown(ext)}'" if ext else "no extension"
        raise UsageError(f"--plot '{_shown(path)}': {given}; supported formats: {', '.join(formats)}")
    return ext


def _shown(text: str) -> str:
    return text if text.isprintable() else ascii(text)[1:-1]
