"""Symbolic sizes: polynomials over atoms in B, L, t (and min(L, W), log2(2L)).

A `Poly` maps monomials (sorted tuples of atoms) to coefficients. This is all cost analysis needs:
parameter counts are constants, caches are `a·L + b` or `a·min(L, W) + b`, prefill FLOPs add
`L²` (attention) and `L·log2(2L)` (FFT convolution) terms. Evaluation is a dict lookup per atom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

Number = int | float | Fraction


@dataclass(frozen=True, slots=True, order=True)
class Atom:
    """`sym L`, `min L W` (min(L, W)), or `log2x L` (log2(2·L))."""

    kind: str
    name: str
    arg: int = 0

    def value(self, env: dict[str, int]) -> float:
        x = env[self.name]
        if self.kind == "sym":
            return x
        if self.kind == "min":
            return min(x, self.arg)
        return math.log2(2 * x) if x > 0 else 0.0

    def __str__(self) -> str:
        if self.kind == "sym":
            return self.name
        if self.kind == "min":
            return f"min({self.name}, {self.arg})"
        return f"log2(2{self.name})"


Monomial = tuple[Atom, ...]


def _clean(c: Number) -> Number:
    """Canonical coefficient: integral fractions and floats become ints (costs compare structurally)."""
    if isinstance(c, Fraction):
        return int(c) if c.denominator == 1 else c
    if isinstance(c, float) and c.is_integer() and abs(c) < 2**62:
        return int(c)
    return c


class Poly:
    """An immutable polynomial; `terms` maps sorted monomials to non-zero coefficients."""

    __slots__ = ("terms",)

    def __init__(self, terms: dict[Monomial, Number] | None = None) -> None:
        self.terms: dict[Monomial, Number] = terms or {}

    @staticmethod
    def const(c: Number) -> Poly:
        return Poly({(): c} if c else None)

    @staticmethod
    def atom(a: Atom) -> Poly:
        return Poly({(a,): 1})

    @staticmethod
    def _from(d: dict[Monomial, Number]) -> Poly:
        return Poly({m: _clean(c) for m, c in d.items() if c != 0})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Poly) and self.terms == other.terms

    def __hash__(self) -> int:
        return hash(frozenset(self.terms.items()))

    def __repr__(self) -> str:
        return f"Poly({self})"

    def __add__(self, other: Poly | Number) -> Poly:
        if not isinstance(other, Poly):
            other = Poly.const(other)
        if not other.terms:
            return self
        if not self.terms:
            return other
        d = dict(self.terms)
        for m, c in other.terms.items():
            v = d.get(m, 0) + c
            if v:
                d[m] = v
            else:
                d.pop(m, None)
        return Poly(d)

    __radd__ = __add__

    def __sub__(self, other: Poly | Number) -> Poly:
        return self + (other if isinstance(other, Poly) else Poly.const(other)) * -1

    def __mul__(self, other: Poly | Number) -> Poly:
        if not isinstance(other, Poly):
            return Poly._from({m: c * other for m, c in self.terms.items()}) if other != 1 else self
        d: dict[Monomial, Number] = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in other.terms.items():
                m = tuple(sorted(m1 + m2))
                d[m] = d.get(m, 0) + c1 * c2
        return Poly._from(d)

    __rmul__ = __mul__

    def evaluate(self, **env: int) -> float | int:
        total: Number = 0
        for mono, coeff in self.terms.items():
            value: Number = coeff
            for a in mono:
                value = value * a.value(env)
            total += value
        if isinstance(total, Fraction):
            return int(total) if total.denominator == 1 else float(total)
        return total

    @property
    def is_const(self) -> bool:
        return all(not m for m in self.terms)

    def __str__(self) -> str:
        if not self.terms:
            return "0"
        parts = [_term(m, c) for m, c in sorted(self.terms.items(), key=lambda mc: (-len(mc[0]), mc[0]))]
        return " + ".join(parts).replace("+ -", "- ")


def _term(mono: Monomial, coeff: Number) -> str:
    if isinstance(coeff, Fraction):
        coeff = float(coeff)
    if isinstance(coeff, float):
        coeff_text = f"{coeff:.6g}"
    else:
        coeff_text = f"{coeff:,}".replace(",", "_") if abs(coeff) >= 10_000 else str(coeff)
    if not mono:
        return coeff_text
    powers: dict[Atom, int] = {}
    for a in mono:
        powers[a] = powers.get(a, 0) + 1
    body = "·".join(str(a) + (f"^{p}" if p > 1 else "") for a, p in powers.items())
    return body if coeff == 1 else f"{coeff_text}·{body}"


L = Poly.atom(Atom("sym", "L"))
T = Poly.atom(Atom("sym", "t"))
LOG2_2L = Poly.atom(Atom("log", "L"))
ZERO = Poly()
ONE = Poly.const(1)


def min_l(w: int) -> Poly:
    return Poly.atom(Atom("min", "L", w))


def min_t1(w: int) -> Poly:
    """min(t + 1, W) as min over the symbol `t1` (= t + 1, the keys visible at decode position t)."""
    return Poly.atom(Atom("min", "t1", w))


T1 = Poly.atom(Atom("sym", "t1"))
