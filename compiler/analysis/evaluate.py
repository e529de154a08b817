"""Turn a symbolic `CostReport` into numbers for a concrete context (batch, sequence, dtype)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from livc.compiler.analysis.costs import Cost, CostReport
from livc.compiler.ir.nodes import DType

DEFAULT_SEQ = 4096  # the sequence length of reports for a model without `context:`


class HasContext(Protocol):
    @property
    def context(self) -> int | None: ...


def default_seq(model: HasContext) -> int:
    """The sequence length costs are shown at when none is given: the model's `context:`, else 4096.

    Takes an IR `Model`, an `ElaboratedModel` or a `CostReport` (all carry `context`).
    """
    return model.context if model.context else DEFAULT_SEQ


@dataclass(frozen=True)
class Context:
    """Batch size, sequence length L (prefill length; decode at position L - 1) and cache dtype."""

    batch: int = 1
    seq: int = 4096
    dtype: DType | None = None  # None = the model's dtype

    def env(self) -> dict[str, int]:
        return {"L": self.seq, "t": self.seq - 1, "t1": self.seq}


@dataclass(frozen=True)
class Numbers:
    params: int
    prefill_flops: float
    decode_flops: float
    cache_min_bytes: int
    cache_alloc_bytes: int
    activation_bytes: int
    cache_min_elements_per_seq: int
    cache_alloc_elements_per_seq: int


def numbers(cost: Cost, ctx: Context, dtype_bytes: int) -> Numbers:
    env = ctx.env()
    b = ctx.dtype.bytes if ctx.dtype is not None else dtype_bytes
    cache_min = int(round(cost.cache_min.evaluate(**env)))
    cache_alloc = int(round(cost.cache_alloc.evaluate(**env)))
    return Numbers(
        params=cost.params,
        prefill_flops=float(cost.prefill.evaluate(**env)) * ctx.batch,
        decode_flops=float(cost.decode.evaluate(**env)) * ctx.batch,
        cache_min_bytes=cache_min * b * ctx.batch,
        cache_alloc_bytes=cache_alloc * b * ctx.batch,
        activation_bytes=int(round(cost.activations.evaluate(**env))) * b * ctx.batch,
        cache_min_elements_per_seq=cache_min,
        cache_alloc_elements_per_seq=cache_alloc,
    )


def report_numbers(report: CostReport, ctx: Context) -> Numbers:
    return numbers(report.total, ctx, report.dtype_bytes)
