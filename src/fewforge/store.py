"""results.sqlite: an index of the grid's cells next to results.json, one row per cell.

Each row holds the cell's axes, its status (pending → running → done, or failed with the error), its
metrics (JSON), timings, the number of attempts and the paths of its artifacts. A run updates it as cells
progress, so `sqlite3 runs/x/results.sqlite "select cell, status from cells"` shows where a long grid
stands, and after a `kill -9` the rerun picks up the cells that are not done. The cell folders
(`cells/.../record.json` + `done.json`) stay the source of truth; this is their queryable view.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

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
    started REAL,
    finished REAL
)
"""
AXES = ("task", "shots", "seed", "learner", "condition", "method", "per_label", "strategy")


class ResultsStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=60)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(cells)")}
        if "strategy" not in columns:  # a store written before strategies were an axis
            self._conn.execute("ALTER TABLE cells ADD COLUMN strategy TEXT")
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    def start(self, cell: str, fingerprint: str) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE cells SET status = 'running', attempts = attempts + 1, started = ?, fingerprint = ?, "
                "error = NULL WHERE cell = ?",
                (time.time(), fingerprint, cell),
            )

    def finish(self, record: Mapping[str, Any], paths: Mapping[str, str | None]) -> None:
        seconds = record.get("seconds", {})
        with self._conn:
            self._conn.execute(
                "UPDATE cells SET status = 'done', metrics = ?, train_seconds = ?, predict_seconds = ?, "
                "fingerprint = ?, record_path = ?, predictions_path = ?, model_path = ?, finished = ?, error = NULL "
                "WHERE cell = ?",
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

    def fail(self, cell: str, error: str) -> None:
        with self._conn:
            self._conn.execute("UPDATE cells SET status = 'failed', error = ? WHERE cell = ?", (error[:2000], cell))

    def rows(self, in_grid_only: bool = True) -> list[dict[str, Any]]:
        query = "SELECT * FROM cells" + (" WHERE in_grid = 1" if in_grid_only else "") + " ORDER BY cell"
        cursor = self._conn.execute(query)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor]
