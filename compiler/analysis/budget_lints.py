"""Warnings about a model's declared budgets, from the elaborated model alone (no costs needed).

- W0003: a budget whose `seq` is longer than the model's `context` measures a sequence the model
  is not built for.
- W0004: a budget that can never bind because another budget of the same model implies it.
  Budget B implies budget A when
    * B bounds the same metric as A, or A bounds `non_embedding_params` and B bounds `params`
      (non-embedding parameters never exceed all parameters);
    * every `batch`/`seq` argument of B is at least A's (all metrics are non-decreasing in both),
      and `dtype` is the same; an argument given in one budget and left out in the other makes
      them incomparable;
    * B's limit is at most A's: lower, or equal with B at least as strict (`<` implies `<=`).
  Of two budgets that imply each other (duplicates), the later one is reported.
Non-goals: comparing a budget with the model's actual costs (budgets.py, E0402).
"""

from __future__ import annotations

from livc.compiler.elaboration.model import BudgetDecl, ElaboratedModel
from livc.compiler.elaboration.values import DType, Value
from livc.dsl import ast as A
from livc.dsl.diagnostics import Diagnostic, Label, warning
from livc.dsl.source import Span

_MONOTONE = ("batch", "seq")
_IMPLIED_BY = {"non_embedding_params": ("non_embedding_params", "params")}


def budget_lints(model: ElaboratedModel, items: dict[Span, A.BudgetItem]) -> list[Diagnostic]:
    """`items`: the source budget items by span, to point at their arguments."""
    out = [d for b in model.budgets if (d := _beyond_context(model, b, items.get(b.span))) is not None]
    return out + [d for i, b in enumerate(model.budgets) if (d := _never_binds(model.budgets, i, b)) is not None]


def budget_items(module: A.Module) -> dict[Span, A.BudgetItem]:
    """Every budget item of a module by its span."""
    return {
        item.span: item
        for top in module.items
        if isinstance(top, A.Def)
        for stmt in top.body
        if isinstance(stmt, A.Budget)
        for item in stmt.items
        if isinstance(item, A.BudgetItem)
    }


# ---- W0003 ----------------------------------------------------------------------------------


def _beyond_context(model: ElaboratedModel, budget: BudgetDecl, item: A.BudgetItem | None) -> Diagnostic | None:
    seq = dict(budget.args).get("seq")
    if model.context is None or not isinstance(seq, int) or seq <= model.context:
        return None
    arg = next((a for a in item.args if a.name is not None and a.name.name == "seq"), None) if item else None
    return warning(
        "W0003",
        f"this budget measures {seq} tokens, beyond the model's context of {model.context}",
        arg.span if arg is not None else budget.span,
        f"seq = {seq} > context = {model.context}",
        help="measure at most `context` tokens, or raise the model's `context`",
    )


def seq_beyond_context(model: ElaboratedModel, seq: int, module: A.Module | None) -> Diagnostic | None:
    """W0003 for a `--seq` (command line) longer than the model's `context`, at the `context:` field."""
    if model.context is None or seq <= model.context:
        return None
    return warning(
        "W0003",
        f"--seq {seq:,} measures a sequence beyond the model's context of {model.context:,}",
        _context_span(model, module),
        f"context = {model.context:,} < --seq {seq:,}",
        help="measure at most `context` tokens, or raise the model's `context`",
    )


def _context_span(model: ElaboratedModel, module: A.Module | None) -> Span:
    """The `context:` value in the model's definition, else the first line of the model."""
    defs = [i for i in (module.items if module else ()) if isinstance(i, A.Def) and i.name.name == model.name]
    fields = [s for d in defs for s in d.body if isinstance(s, A.Field) and s.name.name == "context"]
    if fields:
        return fields[0].value.span
    text, start = model.span.source.text, model.span.start
    end = text.find("\n", start)
    return Span(model.span.source, start, model.span.end if end < 0 else min(end, model.span.end))


# ---- W0004 ----------------------------------------------------------------------------------


def _never_binds(budgets: tuple[BudgetDecl, ...], index: int, budget: BudgetDecl) -> Diagnostic | None:
    for j, other in enumerate(budgets):
        if j == index or not implies(other, budget):
            continue
        if implies(budget, other) and j > index:
            continue  # duplicates: the later one is reported
        return warning(
            "W0004",
            "this budget can never bind",
            budget.span,
            "implied by another budget",
            secondary=(Label(other.span, "this budget is at least as tight"),),
            help="remove it, or tighten its limit",
        )
    return None


def implies(b: BudgetDecl, a: BudgetDecl) -> bool:
    """Whether `b` holding guarantees that `a` holds (see the module docstring)."""
    if b.metric not in _IMPLIED_BY.get(a.metric, (a.metric,)):
        return False
    if not _args_cover(dict(b.args), dict(a.args)):
        return False
    return b.limit < a.limit or (b.limit == a.limit and (b.strict or not a.strict))


def _args_cover(b: dict[str, Value], a: dict[str, Value]) -> bool:
    if set(a) != set(b):
        return False
    for key, value in a.items():
        other = b[key]
        if key in _MONOTONE and not (isinstance(other, int) and isinstance(value, int) and other >= value):
            return False
        if key not in _MONOTONE and not (isinstance(other, DType) and other == value):
            return False
    return True
