"""The search archive: one SQLite file that makes a search crash-safe, resumable and memoised.

One writer (the engine's driver process); WAL journal with `synchronous=FULL`, so a committed row
survives `kill -9` and power loss. Tables:

- `meta`: the archive's schema version and the fingerprint of the search configuration it belongs to
  (a resume with a different space, protocol, objectives or seed is refused: E0802).
- `evaluations`: one row per distinct architecture (canonical genome key): genome vector, .liv text,
  static costs, metrics, curve summary, failure reason, seed, wall time and status
  (`pending` -> `running` -> `done` | `failed`, or `rejected` by a budget before any training).
  Each row is committed the moment its evaluation finishes; this table is the memo.
- `generations`: per finished generation, the population keys, the pickled pymoo algorithm and the
  evaluation counters, written in one transaction: the resume point.

Opening an existing archive resets `running` rows to `pending` (their worker died with the driver).
Non-goals: several writers, remote databases, schema migration (a new schema is a new archive).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from livc.search.errors import SearchError

SCHEMA_VERSION = 1
ARCHIVE_NAME = "archive.sqlite"
Status = Literal["pending", "running", "done", "failed", "rejected"]
FINISHED: tuple[Status, ...] = ("done", "failed", "rejected")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (
    key TEXT PRIMARY KEY,
    genome TEXT NOT NULL,
    liv TEXT NOT NULL,
    origin TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'rejected')),
    costs TEXT NOT NULL,
    metrics TEXT,
    curve TEXT,
    failure TEXT,
    seed INTEGER NOT NULL,
    wall_s REAL,
    generation INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS generations (
    gen INTEGER PRIMARY KEY,
    keys TEXT NOT NULL,
    algorithm BLOB NOT NULL,
    counters TEXT NOT NULL,
    finished REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Record:
    """One archived architecture. `costs` are the static costs; `metrics` what training measured."""

    key: str
    genome: tuple[int, ...]
    liv: str
    origin: str  # "search" or "random" (the random-search baseline)
    status: Status
    costs: dict[str, float]
    metrics: dict[str, float] | None
    curve: dict[str, Any] | None
    failure: str | None
    seed: int
    wall_s: float | None
    generation: int
    attempts: int
    finished: float | None


@dataclass(frozen=True)
class Generation:
    gen: int
    keys: tuple[str, ...]
    algorithm: bytes
    counters: dict[str, int]


class Archive:
    """The open archive of one search directory (see the module docstring)."""

    def __init__(self, path: Path, fingerprint: str, *, resume: bool) -> None:
        self.path = path
        self._db = _connect(path)
        self._init(fingerprint, resume)

    # -- lifecycle ------------------------------------------------------------------------------------

    def _init(self, fingerprint: str, resume: bool) -> None:
        with self._db:
            self._db.executescript(_SCHEMA)
        stored = self._meta("fingerprint")
        if stored is None:
            self._write_meta(fingerprint)
        elif stored != fingerprint:
            raise SearchError(
                "E0802",
                f"the archive {self.path} was written for a different search configuration",
                help="resume with the same space file (and seed), or search into a new directory",
            )
        elif not resume:
            raise SearchError("E0802", f"{self.path} already holds a search", help="continue it with --resume")
        with self._db:
            self._db.execute("UPDATE evaluations SET status = 'pending' WHERE status = 'running'")

    def _write_meta(self, fingerprint: str) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("schema", str(SCHEMA_VERSION)), ("fingerprint", fingerprint), ("created", repr(time.time()))],
            )

    def _meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        self._db.close()

    # -- evaluations ----------------------------------------------------------------------------------

    def get(self, key: str) -> Record | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM evaluations WHERE key = ?", (key,)).fetchone()
        return _record(row) if row else None

    def add(
        self,
        key: str,
        genome: tuple[int, ...],
        liv: str,
        origin: str,
        costs: dict,
        seed: int,
        gen: int,
        *,
        status: Status = "pending",
        failure: str | None = None,
    ) -> None:
        """A new architecture (nothing happens if the key is already archived). `status` "rejected" (over
        budget) or "failed" (did not compile) with `failure` archives it finished, in the same transaction."""
        finished = time.time() if status in FINISHED else None
        wall = 0.0 if finished else None
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO evaluations (key, genome, liv, origin, status, costs, failure, seed, wall_s,"
                " generation, created, finished) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, json.dumps(list(genome)), liv, origin, status, json.dumps(costs), failure, seed, wall, gen,
                 time.time(), finished),
            )  # fmt: skip

    def start(self, key: str) -> None:
        with self._db:
            self._db.execute(
                "UPDATE evaluations SET status = 'running', attempts = attempts + 1"
                " WHERE key = ? AND status = 'pending'",
                (key,),
            )

    def finish(self, key: str, metrics: dict | None, curve: dict | None, failure: str | None, wall_s: float) -> None:
        self._finish(key, "failed" if failure else "done", metrics, curve, failure, wall_s)

    def _finish(self, key: str, status: Status, metrics: Any, curve: Any, failure: str | None, wall_s: float) -> None:
        with self._db:
            cur = self._db.execute(
                "UPDATE evaluations SET status = ?, metrics = ?, curve = ?, failure = ?, wall_s = ?, finished = ?"
                " WHERE key = ? AND status IN ('pending', 'running')",
                (status, _dump(metrics), _dump(curve), failure, wall_s, time.time(), key),
            )
        if cur.rowcount != 1:
            raise SearchError("E0802", f"archive {self.path}: evaluation {key} finished twice or was never added")

    def records(self, origin: str | None = None) -> list[Record]:
        where, args = ("WHERE origin = ?", (origin,)) if origin else ("", ())
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM evaluations {where} ORDER BY created, key", args)
        return [_record(r) for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) FROM evaluations GROUP BY status").fetchall()
        return {status: n for status, n in rows}

    # -- generations ----------------------------------------------------------------------------------

    def commit_generation(self, gen: int, keys: tuple[str, ...], algorithm: bytes, counters: dict[str, int]) -> None:
        """The resume point after generation `gen`: population keys + pickled algorithm, atomically."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?)",
                (gen, json.dumps(list(keys)), algorithm, json.dumps(counters), time.time()),
            )

    def last_generation(self) -> Generation | None:
        row = self._db.execute("SELECT gen, keys, algorithm, counters FROM generations ORDER BY gen DESC").fetchone()
        return Generation(row[0], tuple(json.loads(row[1])), row[2], json.loads(row[3])) if row else None

    def generations(self) -> Iterator[Generation]:
        for row in self._db.execute("SELECT gen, keys, algorithm, counters FROM generations ORDER BY gen"):
            yield Generation(row[0], tuple(json.loads(row[1])), row[2], json.loads(row[3]))


_COLUMNS = (
    "key, genome, liv, origin, status, costs, metrics, curve, failure, seed, wall_s, generation, attempts, finished"
)


def _record(row: tuple) -> Record:
    key, genome, liv, origin, status, costs, metrics, curve, failure, seed, wall, gen, attempts, finished = row
    return Record(
        key, tuple(json.loads(genome)), liv, origin, status, json.loads(costs), _load(metrics), _load(curve),
        failure, seed, wall, gen, attempts, finished,
    )  # fmt: skip


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _connect(path: Path) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(path, isolation_level="DEFERRED")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=10000")
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise SearchError("E0802", f"cannot open the search archive {path}: {exc}") from exc
    return db


def open_archive(directory: Path, fingerprint: str, *, resume: bool) -> Archive:
    """The archive of a search directory: created for a new search, reopened for `resume`."""
    path = directory / ARCHIVE_NAME
    if resume and not path.exists():
        raise SearchError("E0802", f"nothing to resume: {path} does not exist")
    directory.mkdir(parents=True, exist_ok=True)
    return Archive(path, fingerprint, resume=resume)


def read_archive(directory: Path) -> Archive:
    """Open an existing archive for reading (reports), whatever its fingerprint."""
    path = directory / ARCHIVE_NAME
    if not path.exists():
        raise SearchError("E0802", f"no search archive at {path}")
    archive = Archive.__new__(Archive)
    archive.path, archive._db = path, _connect(path)
    tables = {r[0] for r in archive._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"meta", "evaluations", "generations"} <= tables:
        archive.close()
        raise SearchError("E0802", f"{path} is not a search archive (or is still being created)")
    return archive
