"""Progress of a running search: a live `rich` panel, a plain line log, or nothing.

The engine calls `start`, `generation`, `event(kind, key, reasons)` for each candidate (kind: trained,
failed, cached, rejected; reasons: the budgets a rejected one exceeds), `generation_done(gen, records)`
with the archive's search records (the panel shows the current front and its hypervolume, normalised
over the feasible records seen so far), `baseline(n)` and `finish(records)`. Rendering only: nothing
here changes the search. Non-goals: a web dashboard.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from typing import IO, Any, Protocol

import numpy as np

from livc.search.archive import Record

KINDS = ("trained", "failed", "cached", "rejected")


class Progress(Protocol):
    def start(self, config: Any, gen: int) -> None: ...
    def generation(self, gen: int) -> None: ...
    def event(self, kind: str, key: str, reasons: tuple[str, ...] = ()) -> None: ...
    def generation_done(self, gen: int, records: Sequence[Record]) -> None: ...
    def baseline(self, n: int) -> None: ...
    def finish(self, records: Sequence[Record]) -> None: ...


class NullProgress:
    def start(self, config: Any, gen: int) -> None:
        pass

    def generation(self, gen: int) -> None:
        pass

    def event(self, kind: str, key: str, reasons: tuple[str, ...] = ()) -> None:
        pass

    def generation_done(self, gen: int, records: Sequence[Record]) -> None:
        pass

    def baseline(self, n: int) -> None:
        pass

    def finish(self, records: Sequence[Record]) -> None:
        pass


class _State:
    """Counts and the front summary shared by the renderers."""

    def __init__(self) -> None:
        self.config: Any = None
        self.gen, self.total, self.phase = 0, 0, "search"
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()  # rejections per budget
        self.front: list[tuple[Record, tuple[float, ...]]] = []
        self.hv: list[float] = []

    def summarise(self, records: Sequence[Record]) -> None:
        """The front so far and its hypervolume, normalised over every feasible record seen so far."""
        from livc.search.front import bounds, feasible, front, hypervolume, objective_vector

        objectives, budgets = self.config.objectives, self.config.budgets
        best = front(records, objectives, budgets)
        self.front = sorted(((r, objective_vector(r, objectives)) for r in best), key=lambda p: p[1])
        seen = [objective_vector(r, objectives) for r in records if feasible(r, budgets)]
        if best:
            ideal, nadir = bounds(np.array(seen, dtype=float), objectives)
            self.hv.append(hypervolume(np.array([v for _, v in self.front], dtype=float), ideal, nadir))

    def line(self) -> str:
        counts = " ".join(f"{k} {self.counts[k]}" for k in KINDS)
        if self.reasons:
            counts += " (" + ", ".join(f"{b} {n}" for b, n in sorted(self.reasons.items())) + ")"
        hv = f" hv {self.hv[-1]:.3f}" if self.hv else ""
        where = "random baseline" if self.phase == "baseline" else f"generation {self.gen}/{self.total}"
        return f"{where}: {counts}; front {len(self.front)}{hv}"

    def front_rows(self) -> list[list[str]]:
        from livc.search.report import backbone, short_id

        labels = [o.label for o in self.config.objectives]
        rows = []
        for record, vector in self.front[:12]:
            shown = [_shown(label, v) for label, v in zip(labels, vector)]
            rows.append([short_id(record.key), backbone(record.liv), *shown])
        return rows


def _shown(label: str, value: float) -> str:
    if label == "quality":
        return f"{-value:.3f}"
    if label == "latency":
        return f"{value * 1e3:.2f} ms"
    return f"{value:,.0f}"


class LineProgress:
    """One status line per generation on a stream (for logs and non-terminals)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream, self.state = stream or sys.stderr, _State()

    def start(self, config: Any, gen: int) -> None:
        self.state.config, self.state.gen, self.state.total = config, gen, config.generations
        if gen:
            self._say(f"resuming after generation {gen}")

    def generation(self, gen: int) -> None:
        self.state.gen = gen

    def event(self, kind: str, key: str, reasons: tuple[str, ...] = ()) -> None:
        self.state.counts[kind] += 1
        self.state.reasons.update(reasons)

    def generation_done(self, gen: int, records: Sequence[Record]) -> None:
        self.state.summarise(records)
        self._say(self.state.line())

    def baseline(self, n: int) -> None:
        self.state.phase = "baseline"
        self._say(f"random-search baseline: {n} candidates")

    def finish(self, records: Sequence[Record]) -> None:
        self._say(f"done: {self.state.line()}")

    def _say(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


class RichProgress(LineProgress):
    """A live panel: generation, counts, the current front and the hypervolume history."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__(stream)
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=self.stream)
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)

    def start(self, config: Any, gen: int) -> None:
        super().start(config, gen)
        self.live.start()
        self._refresh()

    def _say(self, text: str) -> None:
        self._refresh()

    def event(self, kind: str, key: str, reasons: tuple[str, ...] = ()) -> None:
        super().event(kind, key, reasons)
        self._refresh()

    def finish(self, records: Sequence[Record]) -> None:
        self._refresh()
        self.live.stop()

    def _refresh(self) -> None:
        from rich.table import Table

        if self.state.config is None:
            return
        table = Table(title=self.state.line(), title_justify="left")
        table.add_column("front")
        table.add_column("backbone")
        for o in self.state.config.objectives:
            table.add_column(o.label, justify="right")
        for row in self.state.front_rows():
            table.add_row(*row)
        self.live.update(table)
