"""EMITTERS: IR primitive name -> Relax emitter (an explicit dict; nothing registers itself).

Owners add their own lines: emit/basic.py (H1); emit/conv.py, attention.py, token_dense.py (H2);
emit/scans.py, long_conv.py, moe.py, mor.py (H3). A primitive without an entry is E0701 (`emitter_for`).
"""

from __future__ import annotations

from livc.backends.tvm.context import Emitter
from livc.backends.tvm.emit import attention as attention_emit
from livc.backends.tvm.emit import basic, scans
from livc.backends.tvm.emit import conv as conv_emit
from livc.backends.tvm.emit import long_conv as long_conv_emit
from livc.backends.tvm.emit import moe as moe_emit
from livc.backends.tvm.emit import token_dense as token_dense_emit
from livc.backends.tvm.errors import UNSUPPORTED, TvmError

EMITTERS: dict[str, Emitter] = {
    "linear": basic.linear,
    "grouped_linear": basic.grouped_linear,
    "split": basic.split,
    "split_heads": basic.split_heads,
    "merge_heads": basic.merge_heads,
    "repeat_heads": basic.repeat_heads,
    "apply_rope": basic.apply_rope,
    "rmsnorm": basic.rmsnorm,
    "layernorm": basic.layernorm,
    "scale": basic.scale,
    "embed": basic.embed,
    "lm_head": basic.lm_head,
    "shared_feature": basic.shared_feature,
    "linear_attention": scans.linear_attention,
    "gated_scan": scans.gated_scan,
    "selective_scan": scans.selective_scan,
    "long_conv": long_conv_emit.long_conv,
    "moe": moe_emit.moe,
    "short_conv": conv_emit.conv,
    "causal_conv": conv_emit.conv,
    "attention": attention_emit.attention,
    "token_dense": token_dense_emit.token_dense,
    **{name: basic.unary for name in basic.UNARY_PRIMS},
    **{name: basic.binary for name in basic.BINARY_PRIMS},
}


def emitter_for(prim: str, where: str) -> Emitter:
    """The emitter of `prim`, or E0701 naming the op and the block it is in."""
    if prim not in EMITTERS:
        raise TvmError(UNSUPPORTED, f"{where}: op {prim} has no TVM emitter yet")
    return EMITTERS[prim]
