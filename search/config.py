"""A search-space TOML file -> `SearchConfig` (space, protocol, objectives, budgets, schedule).

    [search]                      # the schedule; every key optional
    population = 8                # NSGA-II population size
    generations = 4
    seed = 0
    workers = 2                   # local worker processes (0 = evaluate in the driver process)
    objectives = ["quality", "cache@4K"]      # quality is maximised, the others minimised
    budgets = ["params<=2M", "cache@4K<=1MiB"]  # hard constraints, checked statically before training
    seeds = ["seed.liv"]          # seed architectures, relative to this file, encoded into generation 0
    random_baseline = true        # also evaluate a random search of the same size (for the report)
    device = "cpu"
    time_limit_s = 600            # per candidate (none = no limit)
    [space]                       # fields of search.space.SearchSpace; `classes` picks from default_pool(width)
    width = 32
    slots = 4
    classes = ["SA-1", "GConv-1", "SwiGLU"]
    [protocol]                    # `name`: tiny | light | full; other keys are that constructor's arguments
    name = "tiny"
    steps = 200
    tasks = ["in_context_recall"]

Objectives: quality, params, non_embedding_params, active_params, cache[@SEQ] (minimal cache bytes at
SEQ tokens, batch 1, the model's dtype), flops[@SEQ] (decode FLOPs per token at position SEQ - 1),
latency[@SEQ] (seconds per forward pass at SEQ tokens, measured by the worker). SEQ defaults to 4096.
Budgets use `livc check --budget` syntax. Every error is a `SearchError` E0801 with file:line:col.
Non-goals: TOML includes, environment-variable expansion, several spaces per file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from livc.cli_args import UsageError, budget_spec, token_count
from livc.compiler.analysis.budgets import BudgetSyntaxError, parse_cli_budget
from livc.compiler.analysis.evaluate import DEFAULT_SEQ
from livc.compiler.ir.nodes import Budget
from livc.search.errors import SearchError, Where, where_in

OBJECTIVES = ("quality", "params", "non_embedding_params", "active_params", "cache", "flops", "latency")
SEQ_OBJECTIVES = ("cache", "flops", "latency")
SEARCH_KEYS = {
    "population": int,
    "generations": int,
    "seed": int,
    "workers": int,
    "objectives": list,
    "budgets": list,
    "seeds": list,
    "random_baseline": bool,
    "device": str,
    "time_limit_s": (int, float),
}
TABLES = ("search", "space", "protocol")


@dataclass(frozen=True)
class Objective:
    """One objective; `seq` for the sequence-dependent ones. Quality is maximised, the rest minimised."""

    name: str
    seq: int | None = None

    @property
    def label(self) -> str:
        return f"{self.name}@{self.seq}" if self.seq is not None else self.name

    @property
    def maximise(self) -> bool:
        return self.name == "quality"


@dataclass(frozen=True)
class SeedArch:
    path: str
    text: str


@dataclass(frozen=True)
class SearchConfig:
    space: Any  # search.space.SearchSpace (S1)
    protocol: Any  # search.protocol.Protocol (S2)
    objectives: tuple[Objective, ...]
    budgets: tuple[Budget, ...]
    population: int = 8
    generations: int = 4
    seed: int = 0
    workers: int = 2
    seeds: tuple[SeedArch, ...] = ()
    random_baseline: bool = True
    device: str = "cpu"
    time_limit_s: float | None = None
    source: str = "<config>"
    budget_texts: tuple[str, ...] = ()

    def fingerprint(self) -> str:
        """What a resume must match: everything that changes results (not `generations` or `workers`)."""
        doc = {
            "space": repr(self.space),
            "protocol": repr(self.protocol),
            "objectives": [o.label for o in self.objectives],
            "budgets": list(self.budget_texts),
            "population": self.population,
            "seed": self.seed,
            "seeds": [s.text for s in self.seeds],
            "random_baseline": self.random_baseline,
            "device": self.device,
            "time_limit_s": self.time_limit_s,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class _Doc:
    """The file being read: its path and text, for error positions."""

    path: str
    text: str

    def fail(self, message: str, table: str | None = None, key: str | None = None, help: str | None = None) -> NoReturn:
        raise SearchError("E0801", message, self.locate(table, key), help)

    def locate(self, table: str | None, key: str | None) -> Where | None:
        """The line of `key` inside `[table]` (or of the table header), found by a line scan."""
        current, header = None, None
        for n, line in enumerate(self.text.splitlines(), 1):
            m = re.match(r"\s*\[\s*([A-Za-z0-9_.\-]+)\s*\]", line)
            if m:
                current = m[1]
                header = n if current == table and header is None else header
                continue
            k = re.match(r"\s*([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=", line)
            if k and current == table and key is not None and k[1].strip('"') == key:
                return where_in(self.path, self.text, n, k.start(1) + 1)
        return where_in(self.path, self.text, header) if header else None


def load_config(path: str | Path) -> SearchConfig:
    """Read and validate a search-space file; raises `SearchError` (E0801) with the position."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SearchError("E0801", f"cannot read the search space {path}: {_reason(exc)}") from exc
    return parse_config(text, str(path), path.parent)


def parse_config(text: str, name: str = "<config>", base: Path | None = None) -> SearchConfig:
    doc = _Doc(name, text)
    data = _toml(doc)
    for table in data:
        if table not in TABLES:
            doc.fail(f"unknown table or key '{table}'", table, None, f"the tables are {', '.join(TABLES)}")
        if not isinstance(data[table], dict):
            doc.fail(f"'{table}' must be a table ([{table}])", None, None)
    search = _search_table(doc, data.get("search", {}))
    space = _space(doc, data.get("space", {}))
    protocol = _protocol(doc, data.get("protocol", {}))
    seeds = tuple(_seed(doc, s, base or Path(".")) for s in search.pop("seeds", []))
    budget_texts = tuple(search.pop("budgets", []))
    objectives = tuple(_objective(doc, o) for o in search.pop("objectives", ["quality", "params"]))
    return SearchConfig(
        space=space,
        protocol=protocol,
        objectives=objectives,
        budgets=tuple(_budget(doc, b) for b in budget_texts),
        seeds=seeds,
        source=name,
        budget_texts=budget_texts,
        **search,
    )


def _toml(doc: _Doc) -> dict[str, Any]:
    try:
        return tomllib.loads(doc.text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc)) or "invalid TOML"
        where = where_in(doc.path, doc.text, int(m[1]), int(m[2])) if m else None
        raise SearchError("E0801", f"invalid TOML: {message}", where) from None


def _search_table(doc: _Doc, table: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        kind = SEARCH_KEYS.get(key)
        if kind is None:
            doc.fail(f"unknown key '{key}' in [search]", "search", key, f"known keys: {', '.join(SEARCH_KEYS)}")
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):  # type: ignore[arg-type]
            doc.fail(f"[search] {key} has the wrong type ({type(value).__name__})", "search", key)
        out[key] = value
    for key in ("population", "generations"):
        if key in out and out[key] < 1:
            doc.fail(f"[search] {key} must be at least 1", "search", key)
    if out.get("workers", 0) < 0:
        doc.fail("[search] workers must be 0 (in-process) or more", "search", "workers")
    if out.get("population", 8) < 2:
        doc.fail("[search] population must be at least 2 for NSGA-II", "search", "population")
    for key in ("objectives", "budgets", "seeds"):
        if key in out and not all(isinstance(v, str) for v in out[key]):
            doc.fail(f"[search] {key} must be a list of strings", "search", key)
    return out


def _objective(doc: _Doc, text: str) -> Objective:
    name, _, seq = text.strip().partition("@")
    if name not in OBJECTIVES:
        doc.fail(f"unknown objective '{text}'", "search", "objectives", f"objectives: {', '.join(OBJECTIVES)}")
    if seq and name not in SEQ_OBJECTIVES:
        doc.fail(f"objective '{name}' takes no @SEQ", "search", "objectives")
    try:
        length = token_count(seq, "objective sequence length") if seq else DEFAULT_SEQ
    except UsageError as exc:
        doc.fail(f"objective '{text}': {exc}", "search", "objectives")
    return Objective(name, length if name in SEQ_OBJECTIVES else None)


def _budget(doc: _Doc, text: str) -> Budget:
    try:
        return parse_cli_budget(budget_spec(text), None, 1)  # type: ignore[arg-type]  # None: the model's dtype
    except (BudgetSyntaxError, UsageError) as exc:
        reason = exc.reason if isinstance(exc, BudgetSyntaxError) else str(exc)
        doc.fail(f"invalid budget '{text}': {reason}", "search", "budgets")


def _seed(doc: _Doc, rel: str, base: Path) -> SeedArch:
    path = base / rel
    try:
        return SeedArch(str(path), path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        doc.fail(f"cannot read seed architecture '{rel}' ({path}): {_reason(exc)}", "search", "seeds")


def _space(doc: _Doc, table: dict[str, Any]) -> Any:
    from livc.search import space as S

    values = dict(table)
    width = values.get("width", 64)
    pool = {c.name: c for c in S.default_pool(width)}
    names = values.pop("classes", list(pool))
    unknown = [n for n in names if n not in pool]
    if unknown:
        doc.fail(f"unknown operator class '{unknown[0]}'", "space", "classes", f"classes: {', '.join(pool)}")
    fields = _fields(S.SearchSpace) - {"classes", "seeds"}
    _check_keys(doc, "space", values, fields)
    try:
        return S.SearchSpace(classes=tuple(pool[n] for n in names), **_tuples(values))
    except (TypeError, ValueError) as exc:
        doc.fail(f"invalid [space]: {exc}", "space", None)


def _protocol(doc: _Doc, table: dict[str, Any]) -> Any:
    """`name` picks S2's constructor (`protocol.CONSTRUCTORS`); the other keys are its keyword arguments."""
    from livc.search import protocol as P

    values = dict(table)
    name = values.pop("name", "light")
    if name not in P.CONSTRUCTORS:
        doc.fail(f"unknown protocol '{name}'", "protocol", "name", f"protocols: {', '.join(P.CONSTRUCTORS)}")
    make = P.CONSTRUCTORS[name]
    known = {p.name for p in inspect.signature(make).parameters.values() if p.kind is p.KEYWORD_ONLY}
    _check_keys(doc, "protocol", values, known)
    try:
        return make(**_tuples(values))
    except (TypeError, ValueError) as exc:
        doc.fail(f"invalid [protocol]: {exc}", "protocol", None)


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _check_keys(doc: _Doc, table: str, values: dict[str, Any], known: set[str]) -> None:
    for key in values:
        if key not in known:
            doc.fail(f"unknown key '{key}' in [{table}]", table, key, f"known keys: {', '.join(sorted(known))}")


def _tuples(values: dict[str, Any]) -> dict[str, Any]:
    """TOML arrays -> tuples (the space and protocol types are frozen and hashable)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)
