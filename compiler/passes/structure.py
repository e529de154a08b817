"""LIV structure of a section, inferred from its ops and checked against what the section declares.

token mixing: attention -> low_rank (softmax, causal | banded(W) | none mask); linear_attention,
gated_scan, selective_scan -> semi_separable; causal_conv, long_conv -> toeplitz; token_dense ->
dense; otherwise diagonal. channel mixing: linear -> dense; grouped_linear, moe -> grouped;
otherwise diagonal. Token mixers may only appear in token_mix sections (E0313).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from livc.compiler.ir.nodes import Op, Role, Section
from livc.dsl import ast as A
from livc.dsl.diagnostics import Label, error

if TYPE_CHECKING:
    from livc.compiler.passes.block_builder import BlockBuilder

TOKEN_MIXERS = {
    "attention": "low_rank",
    "linear_attention": "semi_separable",
    "gated_scan": "semi_separable",
    "selective_scan": "semi_separable",
    "causal_conv": "toeplitz",
    "long_conv": "toeplitz",
    "token_dense": "dense",
}
CHANNEL_MIXERS = {"linear": "dense", "grouped_linear": "grouped", "moe": "grouped"}
_CHANNEL_RANK = {"diagonal": 0, "grouped": 1, "dense": 2}


def token_structure(ops: tuple[Op, ...]) -> tuple[str, str, str]:
    """(structure, nonlinearity, sparsity) of a token-mixing section."""
    mixers = [op for op in ops if op.prim in TOKEN_MIXERS]
    if not mixers:
        return "diagonal", "none", "none"
    op = mixers[0]
    if op.prim == "attention":
        window = op.attr("window")
        mask = "none" if op.attr("mask") == "bidirectional" else "causal"
        return "low_rank", "softmax", f"banded({window})" if window is not None else mask
    return TOKEN_MIXERS[op.prim], "none", "causal"


def channel_structure(ops: tuple[Op, ...]) -> str:
    found = [CHANNEL_MIXERS[op.prim] for op in ops if op.prim in CHANNEL_MIXERS]
    return max(found, key=_CHANNEL_RANK.__getitem__, default="diagonal")


def _mismatch(builder: BlockBuilder, section: A.Section, declared: str, actual: str, ops: tuple[Op, ...]) -> None:
    span = section.structure.span if section.structure is not None else section.span
    evidence = [op for op in ops if op.prim in TOKEN_MIXERS or op.prim in CHANNEL_MIXERS]
    secondary = (Label(evidence[0].span, f"this {evidence[0].prim} makes it {actual}"),) if evidence else ()
    builder.ev.sink.report(
        error(
            "E0313",
            f"{section.kind.value} is declared {declared} but is {actual}",
            span,
            f"declared {declared}",
            secondary=secondary,
        )
    )


def _misplaced_mixers(builder: BlockBuilder, section: A.Section, ops: tuple[Op, ...]) -> None:
    for op in ops:
        if op.prim in TOKEN_MIXERS:
            builder.ev.sink.report(
                error(
                    "E0313",
                    f"{op.prim} mixes tokens but sits in a {section.kind.value} section",
                    op.span,
                    "token mixer outside token_mix",
                    help="move it into the token_mix section",
                )
            )


def section_for(builder: BlockBuilder, section: A.Section, ops: tuple[Op, ...]) -> Section:
    declared = section.structure.name if section.structure is not None else None
    if section.kind is A.SectionKind.TOKEN_MIX:
        structure, nonlin, sparsity = token_structure(ops)
        if declared is not None and declared != structure:
            _mismatch(builder, section, declared, structure, ops)
        return Section(role=Role.TOKEN_MIX, structure=structure, nonlinearity=nonlin, sparsity=sparsity, ops=ops)
    _misplaced_mixers(builder, section, ops)
    if section.kind is A.SectionKind.CHANNEL_MIX:
        structure = channel_structure(ops)
        if declared is not None and declared != structure:
            _mismatch(builder, section, declared, structure, ops)
        return Section(role=Role.CHANNEL_MIX, structure=structure, ops=ops)
    return Section(role=Role.FEATURIZER, structure=channel_structure(ops), ops=ops)
