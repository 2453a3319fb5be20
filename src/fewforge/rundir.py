"""The run directory: where every artifact of an experiment grid lives, and which stages are finished.

    <output>/config.yaml                                   resolved grid config (every default filled in)
    <output>/fewshot/<task>/k<shots>/seed<seed>/           LM-BFF split: train.jsonl, dev.jsonl, split.json
    <output>/synthetic/<task>/seed<seed>/<method>/         a zero-shot method's set (serves every shots value)
    <output>/synthetic/<task>/k<shots>/seed<seed>/<method>/  a method that reads the few-shot examples
    <output>/cells/<task>/k<shots>/seed<seed>/<learner>/<condition>/  record.json, predictions.jsonl, model/
    <output>/results.json, results.sqlite                  every cell's record + summaries; the cell index
    <output>/report.html, report.md                        `fewforge report`
    <output>/cache/generations.sqlite                      generation cache (resume after an interruption)
    <output>/logs/run.log
    <output>/_stale/<relative path>/<fingerprint>/         outputs whose inputs changed: moved, never deleted

Resume logic lives in one place, `RunDir.stage` (DataDreamer's step fingerprints): a stage is a folder
plus the fingerprint of everything its output depends on. A finished stage holds `done.json` with that
fingerprint. Asking for a stage with the same fingerprint reuses it; with another fingerprint the old
folder moves to `_stale/` and the stage is redone, and an old fingerprint that returns brings its
folder back from `_stale/`. A folder without `done.json` is an interrupted attempt: it is moved aside
too, so nothing half-written is ever read and nothing is ever deleted.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from fewforge.files import write_json

log = logging.getLogger("fewforge")

DONE = "done.json"
STALE = "_stale"


class Stage:
    """One resumable unit of work. Use as:

        stage = run.stage(folder, fingerprint)
        if not stage.done:
            with stage:           # retires an outdated or interrupted folder, creates a fresh one
                ...write into stage.path...
                stage.info["rows"] = n   # recorded in done.json
        ...read stage.path...

    Leaving the `with` block without an exception marks the stage finished; an exception leaves the
    folder unfinished, so the next attempt moves it aside and starts over.
    """

    def __init__(self, run: "RunDir", path: Path, fingerprint: str) -> None:
        self.run, self.path, self.fingerprint = run, Path(path), fingerprint
        self.info: dict[str, Any] = {}
        self.reused = False
        if not self.done:
            self.reused = run.restore(self.path, fingerprint)

    @property
    def done(self) -> bool:
        return self.run.done_fingerprint(self.path) == self.fingerprint

    def __enter__(self) -> "Stage":
        if self.done:
            raise RuntimeError(f"stage {self.path} is already finished")  # a caller bug, not user error
        if self.path.exists():
            self.run.retire(self.path)
        self.path.mkdir(parents=True)
        self.started = time.time()
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.info.setdefault("seconds", round(time.time() - self.started, 2))
            write_json(self.path / DONE, {"fingerprint": self.fingerprint, "finished": time.time(), **self.info})


class RunDir:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -- fixed paths --------------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def cache_path(self) -> Path:
        return self.root / "cache" / "generations.sqlite"

    @property
    def log_path(self) -> Path:
        return self.root / "logs" / "run.log"

    @property
    def results_path(self) -> Path:
        return self.root / "results.json"

    @property
    def store_path(self) -> Path:
        return self.root / "results.sqlite"

    def split_dir(self, task: str, shots: int, seed: int) -> Path:
        return self.root / "fewshot" / _slug(task) / f"k{shots}" / f"seed{seed}"

    def synthetic_dir(self, task: str, seed: int, method: str, shots: int | None) -> Path:
        """`shots=None` for a zero-shot method: one set per (task, seed) serves every shots value."""
        where = self.root / "synthetic" / _slug(task)
        if shots is not None:
            where = where / f"k{shots}"
        return where / f"seed{seed}" / _slug(method)

    def cell_dir(self, cell_path: str) -> Path:
        return self.root / "cells" / cell_path

    # -- stages ------------------------------------------------------------------------------------

    def stage(self, path: Path, fingerprint: str) -> Stage:
        return Stage(self, path, fingerprint)

    def done_fingerprint(self, path: Path) -> str | None:
        marker = Path(path) / DONE
        try:
            return json.loads(marker.read_text(encoding="utf-8")).get("fingerprint")
        except (OSError, json.JSONDecodeError, AttributeError):
            return None

    def done_info(self, path: Path) -> dict[str, Any]:
        try:
            return json.loads((Path(path) / DONE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}

    def retire(self, path: Path, fingerprint: str | None = None) -> Path | None:
        """Move `path` (a file or folder) to _stale/<relative path>/<fingerprint>, never over an existing
        copy (a second copy of the same fingerprint gets a numbered name). A folder's fingerprint is read
        from its done.json; one without it is an interrupted attempt ("unfinished-<time>")."""
        path = Path(path)
        if not path.exists():
            return None
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()  # an empty folder from an attempt that wrote nothing holds no work
            return None
        fingerprint = fingerprint or (self.done_fingerprint(path) if path.is_dir() else None)
        fingerprint = fingerprint or f"unfinished-{int(time.time())}"
        base = self.root / STALE / path.relative_to(self.root) / fingerprint
        target, n = base, 1
        while target.exists():
            n += 1
            target = base.with_name(f"{base.name}.{n}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), str(target))
        log.info("moved %s to %s", path, target)
        return target

    def restore(self, path: Path, fingerprint: str) -> bool:
        """Bring back a finished copy of `path` with this fingerprint from _stale/, if one exists
        (the current folder, if any, is retired first)."""
        path = Path(path)
        stale = self.root / STALE / path.relative_to(self.root) / fingerprint
        if self.done_fingerprint(stale) != fingerprint:
            return False
        if path.exists():
            self.retire(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(stale), str(path))
        log.info("restored %s from %s", path, stale)
        return True


def _slug(name: str) -> str:
    """A folder name for a task/method/learner/strategy name: path separators, '+' and '->' are replaced."""
    return name.replace("->", "_to_").replace("/", "_").replace("\\", "_").replace("+", "_").replace(" ", "_").replace(":", "_")
