"""Meaning checks of the `build` pass that look at a whole built block or at the model around it.

- a tied LM head must have as many logits as the embedding table has rows (E0312);
- a `liv`/`op` parameter named `d` is the width of its input `x`: an instance whose `d` differs from
  the residual stream it is used in is E0312 (otherwise `MoE(512, ...)` or `RMSNorm(512)` in a
  384-wide model would silently ignore their `d`);
- a weight whose result never reaches the block's output is dropped by `canonicalize`; it is
  reported here, once per definition, as warning W0001 at the call that creates it.
Non-goals: shape rules of single primitives (shapes.py), width of a block's output (build.py).
"""

from __future__ import annotations

from livc.compiler.elaboration.model import ElaboratedModel
from livc.compiler.elaboration.values import Instance
from livc.compiler.ir.nodes import Block, Op, TensorType
from livc.compiler.passes.rewrite import dead_code
from livc.dsl.diagnostics import Diagnostic, Label, error, warning


def tied_vocab(model: ElaboratedModel, embedding: Block, head: Block) -> Diagnostic | None:
    """E0312 if the head is tied to an embedding table with a different vocabulary."""
    table = next((op for op in embedding.ops if op.prim == "embed"), None)
    logits = next((op for op in head.ops if op.prim == "lm_head" and op.attr("tied")), None)
    if table is None or logits is None or table.attr("vocab") == logits.attr("vocab"):
        return None
    rows, vocab = table.attr("vocab"), logits.attr("vocab")
    return error(
        "E0312",
        f"the tied head has {vocab} logits but the embedding table has {rows} rows",
        model.head.span,
        f"vocab = {vocab}",
        secondary=(Label(model.embedding.span, f"the embedding table it reuses has vocab = {rows}"),),
        help="a tied head reuses the embedding table: give both the same vocab, or set tied = false",
    )


def declared_width(model: ElaboratedModel, instance: Instance, stream: TensorType) -> Diagnostic | None:
    """E0312 if the instance's `d` argument is not the width of the stream it is applied to."""
    d = dict(instance.args).get("d")
    if not isinstance(d, int) or isinstance(d, bool) or stream.shape == (d,):
        return None
    width = stream.shape[0] if len(stream.shape) == 1 else stream
    return error(
        "E0312",
        f"{instance.name}(d = {d}) is applied to a {width}-wide residual stream",
        instance.span,
        f"d = {d}",
        secondary=(Label(model.embedding.span, f"the embedding makes the stream {width} wide"),),
        notes=("a `d` parameter is the width of the operator's input `x`, the model width",),
    )


def dead_weights(block: Block, prefix: str) -> tuple[Diagnostic, ...]:
    """W0001 for every weight-owning op of `block` whose result never reaches the output."""
    kept = {id(op) for op in dead_code(block).ops}
    return tuple(_dead_weight(block, op, prefix) for op in block.ops if op.params and id(op) not in kept)


def _dead_weight(block: Block, op: Op, prefix: str) -> Diagnostic:
    role, pid = op.params[0]
    name = pid[len(prefix) + 1 : len(pid) - len(role) - 1] or op.outputs[0].name
    return warning(
        "W0001",
        f"the weights of '{name}' never reach the output of {block.name}",
        op.span,
        "does not contribute to the returned value",
        notes=("the weights are dropped: they are not counted in `params` and not generated",),
        help="use the result, or remove the statement",
    )


def _declared_d(instance: Instance | None) -> int | None:
    d = dict(instance.args).get("d") if instance is not None else None
    return d if isinstance(d, int) and not isinstance(d, bool) else None


def embedding_width(model: ElaboratedModel, stream: TensorType) -> Diagnostic | None:
    """E0312 at the embedding when every layer, norm and the head agree on a `d` the embedding lacks.

    One root cause, one error: otherwise each of the N sublayers would be blamed for the width the
    embedding got wrong.
    """
    users = [s.op for layer in model.layers for s in layer.sublayers]
    users += [i for i in (model.norm, model.final_norm, model.head) if i is not None]
    widths = {d for d in map(_declared_d, users) if d is not None}
    if len(widths) != 1 or stream.shape == (d := widths.pop(),):
        return None
    first = next(i for i in users if _declared_d(i) is not None)
    width = stream.shape[0] if len(stream.shape) == 1 else stream
    return error(
        "E0312",
        f"the embedding makes the residual stream {width} wide, but the layers expect d = {d}",
        model.embedding.span,
        f"{model.embedding.name}(...) produces {stream}",
        secondary=(Label(first.span, f"d = {d}, as everywhere else in the model"),),
        help=f"give the embedding width {d}",
    )
