"""The executor interface: where a grid's cells run. The driver (the `fewforge run` process) resolves
every cell into a picklable `CellJob`, hands the unfinished ones to `map_cells`, and records what comes
back; workers write only their own cell folder (DESIGN.md §8). An executor only decides where
`execute(job)` runs — it never writes the store, the cache, results.json or the report.
"""

from __future__ import annotations

import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Sequence

from fewforge.errors import StorageError
from fewforge.storage import storage_error

if TYPE_CHECKING:
    from fewforge.cells import CellJob

ERROR_LOG = "error.log"  # in the failed cell's folder; a rerun moves that folder, log included, to _stale/


@dataclass
class CellOutcome:
    """What a worker sends back: the cell's record, or its error line and the log holding the traceback.
    `fatal`: a disk failure, which stops the whole run (every other cell would meet it too)."""

    cell: str
    record: dict[str, Any] | None = None
    error: str | None = None
    log: str | None = None  # relative to the run directory
    fatal: BaseException | None = None


Started = Callable[["CellJob"], None]


class Submitted:
    """Jobs handed to an engine: iterate for their outcomes as they finish (in any order); `close()` gives
    up on those not yet collected (the driver stopped: a finished cell's folder is reused by the rerun)."""

    def __init__(self, outcomes: Iterator[CellOutcome], cancel: Callable[[], None] | None = None) -> None:
        self._outcomes, self._cancel = outcomes, cancel

    def __iter__(self) -> Iterator[CellOutcome]:
        return self._outcomes

    def close(self) -> None:
        if self._cancel is not None:
            self._cancel()


class Executor(ABC):
    """Runs cells somewhere. `map_cells` hands the jobs to the engine at once and returns before they
    finish, so the driver can generate the next synthetic sets while they run."""

    name: ClassVar[str]

    @abstractmethod
    def map_cells(self, jobs: Sequence["CellJob"], started: Started, progress: Any) -> Submitted:
        """Hand every job to the engine (or queue it, for `local`), calling `started(job)` as each is
        handed over. `progress` (GridProgress) may show a cell's own steps; the driver moves the grid bar."""


def execute(job: "CellJob", progress: Callable[..., None] | None = None) -> CellOutcome:
    """One cell, in whatever process runs it: its record, or its failure written to its folder's
    error.log and returned as one line. Ctrl-C and a killed worker are not failures of the cell: they
    propagate (an engine's retry runs the cell again, and a finished cell returns its record)."""
    try:
        return CellOutcome(job.cell.id, record=job.run(progress))
    except Exception as exc:
        if isinstance(exc, StorageError) or storage_error(exc) is not None:
            return CellOutcome(job.cell.id, fatal=exc)
        return CellOutcome(job.cell.id, error=one_line(exc), log=_write_log(job, exc))


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def failed(job: "CellJob", why: str) -> CellOutcome:
    """A cell whose worker never returned (it died, the engine gave up): what the driver records."""
    return CellOutcome(job.cell.id, error=why)


def _write_log(job: "CellJob", exc: BaseException) -> str | None:
    try:
        job.directory.mkdir(parents=True, exist_ok=True)
        path = job.directory / ERROR_LOG
        path.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
        return str(path.relative_to(job.root))
    except OSError:  # the error line still reaches the store and the report
        return None

