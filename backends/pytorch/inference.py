"""What the generated model class's inference methods need beyond the layers: the parameter dtype, the
cache entries that bound `capacity(cache)`, whether `prefill(last_only=True)` may slice before the head, and
why `decode_step` cannot run (bidirectional attention).

Computed from the IR and the position-indexed cache entries the emitters report (`CacheAxis`); the
template only substitutes these strings. Non-goal: anything about individual ops (that is emit_ops).
"""

from __future__ import annotations

from dataclasses import dataclass

from livc.backends.pytorch.emit_ops import BackendError, CacheAxis
from livc.compiler.ir.nodes import DType, Model
from livc.compiler.passes.rewrite import named_blocks

TORCH_DTYPES = {DType.F32: "torch.float32", DType.BF16: "torch.bfloat16", DType.F16: "torch.float16"}
# ops that mix tokens or keep state: a final norm / head made of anything else may see only the last position
SEQUENCE_PRIMS = frozenset(
    ("attention", "linear_attention", "gated_scan", "selective_scan", "short_conv", "causal_conv", "long_conv")
    + ("token_dense", "shared_feature")
)


@dataclass(frozen=True)
class InferenceView:
    param_dtype: str = "torch.float32"  # the .liv `dtype:`, the model constructor's default
    capacity_axes: str = "()"  # a tuple literal of (cache key, axis, window | None) for cache_capacity
    pointwise_tail: bool = True  # final norm and head are per token: prefill(last_only) slices before them
    decode_error: tuple[str, ...] = ()  # string literals (one message): why decode_step raises; () if it decodes


def capacity_axes(positions: list[CacheAxis]) -> tuple[CacheAxis, ...]:
    """The entries that bound how many positions a cache holds: any full-length one (all have max_len slots)
    and the ring of the widest window (rings fall short of their window exactly when max_len < window)."""
    full = [a for a in positions if a.window is None][:1]
    rings = sorted((a for a in positions if a.window is not None), key=lambda a: -int(a.window or 0))[:1]
    return (*full, *rings)


def _tuple_literal(items: list[str]) -> str:
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def decode_error(model: Model) -> tuple[str, ...]:
    """Bidirectional attention makes every output depend on later tokens: forward and prefill compute it, but
    no token-by-token decode can equal forward, so decode_step raises rather than return other logits."""
    for prefix, block in named_blocks(model):
        if any(op.prim == "attention" and op.attr("mask") == "bidirectional" for op in block.ops):
            return (
                f'"decode_step: {prefix} has bidirectional attention (a new token changes the outputs at earlier "',
                '"positions), so this model cannot decode token by token; use forward or prefill"',
            )
    return ()


def inference_view(model: Model, positions: list[CacheAxis]) -> InferenceView:
    if model.dtype not in TORCH_DTYPES:
        raise BackendError(f"dtype {model.dtype.value} parameters are not implemented by the PyTorch backend")
    axes = [f'("{a.key}", {a.axis}, {a.window})' for a in capacity_axes(positions)]
    tail = [model.head] + ([model.final_norm] if model.final_norm else [])
    pointwise = not any(op.prim in SEQUENCE_PRIMS for blk in tail for op in blk.ops)
    return InferenceView(TORCH_DTYPES[model.dtype], _tuple_literal(axes), pointwise, decode_error(model))
