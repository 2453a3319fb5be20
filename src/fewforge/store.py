"""results.sqlite: an index of the grid's cells next to results.json, one row per cell.

Each row holds the cell's axes, its status (pending → running → done, or failed with the error), its
metrics (JSON), timings, the number of attempts and the paths of its artifacts. A run updates it as cells
progress, so `sqlite3 runs/x/results.sqlite "select cell, status from cells"` shows where a long grid
stands, and after a `kill -9` the rerun picks up the cells that are not done. The cell folders
(`cells/.../record.json` + `done.json`) stay the source of truth; this is their queryable view, so a
damaged store is moved aside and rebuilt from them (`open_store`). Only the driver (the process holding
the run's lock) writes it: SQLite stays single-writer, on a local disk.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

from fewforge.storage import disk_errors, is_damaged, move_aside

F = TypeVar("F", bound=Callable[..., Any])

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    cell TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    shots INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    learner TEXT NOT NULL,
    condition TEXT NOT NULL,
    method TEXT,
    per_label INTEGER,
    strategy TEXT,
    in_grid INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    metrics TEXT,
    train_seconds REAL,
    predict_seconds REAL,
    fingerprint TEXT,
    record_path TEXT,
    predictions_path TEXT,
    model_path TEXT,
    error TEXT,
    log_path TEXT,
    started REAL,
    finished REAL
)
"""
AXES = ("task", "shots", "seed", "learner", "condition", "method", "per_label", "strategy")


def _named(method: F) -> F:
    """A disk failure inside a store method is one StorageError naming results.sqlite (SQLite's own
    message never names the file)."""

    @functools.wraps(method)
    def wrapper(self: "ResultsStore", *args: Any, **kwargs: Any) -> Any:
        with disk_errors(self.path):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class ResultsStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with disk_errors(self.path):
            self._conn = self._connect(check=False)

    def _connect(self, *, check: bool) -> sqlite3.Connection:
        """Open and migrate the file; with `check`, read every page first (a truncated file can open and
        fail only on a later query). Raises sqlite3.DatabaseError for a damaged file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=60)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            if check:
                problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
                if problems != ["ok"]:
                    raise sqlite3.DatabaseError(f"database disk image is malformed: {'; '.join(problems[:3])}")
            conn.execute(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(cells)")}
            if "strategy" not in columns:  # a store written before strategies were an axis
                conn.execute("ALTER TABLE cells ADD COLUMN strategy TEXT")
            if "log_path" not in columns:  # a store written before failed cells kept their log
                conn.execute("ALTER TABLE cells ADD COLUMN log_path TEXT")
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn

    @classmethod
    def open(cls, path: str | Path, records: Callable[[], Iterable[Mapping[str, Any]]],
             warn: Callable[[str], None]) -> "ResultsStore":
        """The run's results store; a damaged one (random bytes, truncated) is moved aside beside itself
        and a new one is rebuilt from `records()` (the finished cells' record.json files), with a warning."""
        store = cls.__new__(cls)
        store.path = Path(path)
        with disk_errors(store.path):
            try:
                store._conn = store._connect(check=True)
                return store
            except sqlite3.DatabaseError as exc:
                if not is_damaged(exc):
                    raise
                why = str(exc)
            moved = move_aside(store.path, why)
            store._conn = store._connect(check=False)
            found = store.rebuild(records())
        warn(f"{store.path} was damaged ({why}): moved aside to {moved.name}, and rebuilt from the record.json "
             f"files of the {found} finished cells")
        return store

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @_named
    def plan(self, cells: Iterable[Mapping[str, Any]]) -> None:
        """Register the grid's cells: new ones as pending; cells of earlier grids stay, marked not in_grid."""
        with self._conn:
            self._conn.execute("UPDATE cells SET in_grid = 0")
            for cell in cells:
                self._conn.execute(
                    f"INSERT INTO cells (cell, {', '.join(AXES)}) VALUES (?{', ?' * len(AXES)}) "
                    "ON CONFLICT(cell) DO UPDATE SET in_grid = 1",
                    (cell["cell"], *(cell.get(a) for a in AXES)),
                )

    @_named
    def start(self, cell: str, fingerprint: str) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE cells SET status = 'running', attempts = attempts + 1, started = ?, fingerprint = ?, "
                "error = NULL, log_path = NULL WHERE cell = ?",
                (time.time(), fingerprint, cell),
            )

    @_named
    def finish(self, record: Mapping[str, Any], paths: Mapping[str, str | None]) -> None:
        seconds = record.get("seconds", {})
        with self._conn:
            self._conn.execute(
                "UPDATE cells SET status = 'done', metrics = ?, train_seconds = ?, predict_seconds = ?, "
                "fingerprint = ?, record_path = ?, predictions_path = ?, model_path = ?, finished = ?, error = NULL, "
                "log_path = NULL WHERE cell = ?",
                (
                    json.dumps(record["metrics"]),
                    seconds.get("train"),
                    seconds.get("predict"),
                    record.get("fingerprint"),
                    paths.get("record"),
                    paths.get("predictions"),
                    paths.get("model"),
                    time.time(),
                    record["cell"],
                ),
            )

    @_named
    def fail(self, cell: str, error: str, log: str | None = None) -> None:
        """`log`: the failed cell's traceback (cells/<cell>/error.log), relative to the run directory."""
        with self._conn:
            self._conn.execute("UPDATE cells SET status = 'failed', error = ?, log_path = ? WHERE cell = ?",
                               (error[:2000], log, cell))

    @_named
    def rows(self, in_grid_only: bool = True) -> list[dict[str, Any]]:
        query = "SELECT * FROM cells" + (" WHERE in_grid = 1" if in_grid_only else "") + " ORDER BY cell"
        cursor = self._conn.execute(query)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor]

    @_named
    def rebuild(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Index finished cells from their records (after the store was lost); returns how many. They
        enter as cells of an earlier grid: `plan` marks those of this grid again."""
        n = 0
        for record in records:
            with self._conn:
                self._conn.execute(
                    f"INSERT OR IGNORE INTO cells (cell, {', '.join(AXES)}, in_grid) VALUES (?{', ?' * len(AXES)}, 0)",
                    (record["cell"], *(record.get(a) for a in AXES)),
                )
            self.finish(record, record.get("paths") or {})
            n += 1
        return n
