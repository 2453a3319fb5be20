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
    <output>/work/<set path>/                              inner stages of a set's method (tuned prompts, rounds)
    <output>/.lock                                         who runs here now (lock.py)
    <output>/_stale/<relative path>/<fingerprint>/         outputs whose inputs changed: moved, never deleted

Resume logic lives in one place, `RunDir.stage` (DataDreamer's step fingerprints): a stage is a folder
plus the fingerprint of everything its output depends on. A finished stage holds `done.json` with that
fingerprint. Asking for a stage with the same fingerprint reuses it; with another fingerprint the old
folder moves to `_stale/` and the stage is redone, and an old fingerprint that returns brings its
folder back from `_stale/`. A folder without `done.json` is an interrupted attempt: it is moved aside
too, so nothing half-written is ever read and nothing is ever deleted.

A stage names the files its readers depend on (`outputs`: a cell's record.json, a set's data.jsonl);
done.json keeps their sha256, and a folder whose outputs no longer match (a record truncated by a full
disk, edited by hand, overwritten) is not finished: it moves aside as `damaged-<time>` and the stage is
redone. Inner stages of a method (tuned prompts, searches, rounds, contamination checks) are stages too.
Only the process holding the run's lock (lock.py) writes here; at its start it removes the temporary
files and folders (`.<name>.*.tmp`, `.<name>.tmp-<pid>`) that killed processes left behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from fewforge.files import write_json
from fewforge.names import folder_name

log = logging.getLogger("fewforge")

DONE = "done.json"
STALE = "_stale"
# What fewforge's own writers name their temporaries: files.atomic_write (`.<name>.<random>.tmp`), the
# datasets writer (`.<name>.<random>.tmp/`), a teacher's adapter (`.<name>.tmp-<pid>/`).
_TEMPORARY = re.compile(r"^\..+(\.tmp|\.tmp-\d+)$")


class Stage:
    """One resumable unit of work. Use as:

        stage = run.stage(folder, fingerprint, outputs=("data.jsonl",))
        if not stage.done:
            with stage:           # retires an outdated, interrupted or damaged folder, creates a fresh one
                ...write into stage.path...
                stage.info["rows"] = n   # recorded in done.json
        ...read stage.path...

    Leaving the `with` block without an exception marks the stage finished (done.json, written last,
    with the sha256 of every output); an exception leaves the folder unfinished, so the next attempt
    moves it aside and starts over. `inputs` (a few named parts of the fingerprint) are kept in done.json
    so that a rerun can say which input changed (`changed`).
    """

    def __init__(
        self,
        run: "RunDir",
        path: Path,
        fingerprint: str,
        *,
        outputs: Sequence[str] = (),
        inputs: Mapping[str, Any] | None = None,
    ) -> None:
        self.run, self.path, self.fingerprint = run, Path(path), fingerprint
        self.outputs, self.inputs = tuple(outputs), dict(inputs or {})
        self.info: dict[str, Any] = {}
        self.reused = False
        previous = run.done_info(self.path)
        self.damaged = run.damage(self.path, self.outputs) if previous.get("fingerprint") == fingerprint else None
        # inputs that differ from those of the finished folder this stage replaces (None: cannot tell)
        self.changed: list[str] | None = None
        if previous.get("fingerprint") not in (None, fingerprint) and "inputs" in previous and self.inputs:
            old = previous["inputs"]
            self.changed = sorted(k for k in {*old, *self.inputs} if old.get(k) != self.inputs.get(k))
        self._done = previous.get("fingerprint") == fingerprint and self.damaged is None
        if not self._done:
            self.reused = self._done = run.restore(self.path, fingerprint, self.outputs)

    @property
    def done(self) -> bool:
        return self._done

    @property
    def replaces_finished(self) -> bool:
        """A finished folder with another fingerprint is here now (the stage reruns because inputs changed)."""
        return not self._done and self.run.done_fingerprint(self.path) not in (None, self.fingerprint)

    def __enter__(self) -> "Stage":
        if self._done:
            raise RuntimeError(f"stage {self.path} is already finished")  # a caller bug, not user error
        if self.path.exists():
            self.run.retire(self.path, f"damaged-{_stamp()}" if self.damaged else None)
        self.path.mkdir(parents=True)
        self.started = time.time()
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            return
        missing = [name for name in self.outputs if not (self.path / name).is_file()]
        if missing:
            raise RuntimeError(f"stage {self.path} finished without its outputs {missing}")  # a caller bug
        self.info.setdefault("seconds", round(time.time() - self.started, 2))
        marker = {
            "fingerprint": self.fingerprint,
            "finished": time.time(),
            **self.info,
            **({"inputs": self.inputs} if self.inputs else {}),
            **({"outputs": {name: _digest(self.path / name) for name in self.outputs}} if self.outputs else {}),
        }
        write_json(self.path / DONE, marker)
        self._done = True


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
        return self.root / "fewshot" / folder_name(task) / f"k{shots}" / f"seed{seed}"

    def synthetic_dir(self, task: str, seed: int, method: str, shots: int | None) -> Path:
        """`shots=None` for a zero-shot method: one set per (task, seed) serves every shots value."""
        where = self.root / "synthetic" / folder_name(task)
        if shots is not None:
            where = where / f"k{shots}"
        return where / f"seed{seed}" / folder_name(method)

    def work_dir(self, stage_path: Path) -> Path:
        """The folder for a stage's own inner stages, outside the stage's folder: an interrupted stage is
        retired, and the inner stages it finished (tuned prompts, search results) stay to be reused."""
        return self.root / "work" / Path(stage_path).relative_to(self.root)

    def cell_dir(self, cell_path: str) -> Path:
        return self.root / "cells" / cell_path

    # -- stages ------------------------------------------------------------------------------------

    def stage(
        self,
        path: Path,
        fingerprint: str,
        *,
        outputs: Sequence[str] = (),
        inputs: Mapping[str, Any] | None = None,
    ) -> Stage:
        return Stage(self, path, fingerprint, outputs=outputs, inputs=inputs)

    def done_fingerprint(self, path: Path) -> str | None:
        value = self.done_info(path).get("fingerprint")
        return value if isinstance(value, str) else None

    def done_info(self, path: Path) -> dict[str, Any]:
        try:
            value = json.loads((Path(path) / DONE).read_text(encoding="utf-8"))
        except (OSError, ValueError):  # absent, unreadable, or not JSON (a damaged marker)
            return {}
        return value if isinstance(value, dict) else {}

    def damage(self, path: Path, outputs: Sequence[str] = ()) -> str | None:
        """Why the finished folder `path` cannot be trusted (None: it can): an output recorded in done.json
        is missing or its sha256 changed; an output named by the reader but not recorded (a folder written
        before outputs were recorded) is missing, or a JSON one does not parse."""
        path = Path(path)
        recorded = self.done_info(path).get("outputs") or {}
        for name, expected in recorded.items():
            target = path / name
            if not target.is_file():
                return f"{name} is missing"
            if _digest(target) != expected:
                return f"{name} changed after the stage finished"
        for name in outputs:
            if name in recorded:
                continue
            target = path / name
            if not target.is_file():
                return f"{name} is missing"
            if target.suffix == ".json":
                try:
                    json.loads(target.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    return f"{name} is not valid JSON"
        return None

    def retire(self, path: Path, fingerprint: str | None = None) -> Path | None:
        """Move `path` (a file or folder) to _stale/<relative path>/<fingerprint>, never over an existing
        copy (a second copy of the same fingerprint gets a numbered name). A folder's fingerprint is read
        from its done.json; one without it is an interrupted attempt ("unfinished-<time>"), one whose
        outputs no longer match it is damaged ("damaged-<time>": never restored)."""
        path = Path(path)
        if not path.exists():
            return None
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()  # an empty folder from an attempt that wrote nothing holds no work
            return None
        if fingerprint is None and path.is_dir():
            fingerprint = self.done_fingerprint(path)
            if fingerprint is not None and self.damage(path) is not None:
                fingerprint = f"damaged-{_stamp()}"
        fingerprint = fingerprint or f"unfinished-{_stamp()}"
        base = self.root / STALE / path.relative_to(self.root) / fingerprint
        target, n = base, 1
        while target.exists():
            n += 1
            target = base.with_name(f"{base.name}.{n}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), str(target))
        log.info("moved %s to %s", path, target)
        return target

    def restore(self, path: Path, fingerprint: str, outputs: Sequence[str] = ()) -> bool:
        """Bring back a finished, undamaged copy of `path` with this fingerprint from _stale/, if one
        exists (the current folder, if any, is retired first)."""
        path = Path(path)
        stale = self.root / STALE / path.relative_to(self.root) / fingerprint
        if self.done_fingerprint(stale) != fingerprint or self.damage(stale, outputs) is not None:
            return False
        if path.exists():
            self.retire(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(stale), str(path))
        log.info("restored %s from %s", path, stale)
        return True

    # -- housekeeping (by the lock holder only) ------------------------------------------------------

    def sweep_temporaries(self) -> list[Path]:
        """Remove the temporary files and folders of processes that died mid-write. Only the holder of
        the run's lock calls this, so no live process can own one. `_stale/` is left as it is."""
        removed: list[Path] = []
        for folder, dirs, files in os.walk(self.root):
            if Path(folder) == self.root and STALE in dirs:
                dirs.remove(STALE)
            for name in [d for d in dirs if _TEMPORARY.match(d)]:
                dirs.remove(name)
                shutil.rmtree(Path(folder) / name, ignore_errors=True)
                removed.append(Path(folder) / name)
            for name in (f for f in files if _TEMPORARY.match(f)):
                (Path(folder) / name).unlink(missing_ok=True)
                removed.append(Path(folder) / name)
        for path in removed:
            log.info("removed %s (left by a process that died while writing it)", path)
        return removed

    def finished_records(self) -> Iterator[dict[str, Any]]:
        """The record of every finished, undamaged cell folder (what results.sqlite indexes)."""
        cells = self.root / "cells"
        if not cells.is_dir():
            return
        for marker in sorted(cells.rglob(DONE)):
            folder = marker.parent
            if self.damage(folder, ("record.json",)) is not None:
                continue
            try:
                record = json.loads((folder / "record.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and "cell" in record:
                yield record


_slug = folder_name  # the name grid.py and earlier code use


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamp() -> str:
    return f"{int(time.time())}"
