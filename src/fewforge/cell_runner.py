"""The driver's side of a grid's cells: hand them to the executor as soon as their inputs exist, and
record what comes back. This process alone writes results.sqlite: the store follows each cell (running →
done, or failed with its error line and log), a failed cell never stops the others, and a failure while
recording a failure never replaces the error that stopped the run.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, Sequence

from rich.console import Console

from fewforge.cells import CellJob, explain_reruns, run_cell
from fewforge.executors import LocalExecutor
from fewforge.executors.base import CellOutcome, Executor, Submitted
from fewforge.rundir import RunDir
from fewforge.storage import quietly

log = logging.getLogger("fewforge")


class CellRunner:
    """The driver's side of the cells. `submit` hands jobs to the executor as soon as their inputs exist
    (real-only cells while the synthetic sets still generate), cells of learners that run on the driver
    to the local executor, and reads finished cells back; `collect` records every outcome: the store
    follows each cell (running → done, or failed with its error line and log), and a failed cell never
    stops the others. A disk failure stops the run: every other cell would meet it too."""

    def __init__(self, run: RunDir, store: Any, progress: Any, console: Console, executor: Executor) -> None:
        self.run, self.store, self.progress, self.console, self.executor = run, store, progress, console, executor
        self.records: dict[str, dict[str, Any]] = {}
        self.failures: list[CellOutcome] = []
        self.running: dict[str, CellJob] = {}
        self.batches: list[Submitted] = []

    def submit(self, jobs: Sequence[CellJob]) -> None:
        explain_reruns(self.run, jobs, self.console)
        todo = []
        for job in jobs:
            if job.stage(self.run).done:
                record = run_cell(job)
                self.store.finish(record, record["paths"])
                self.progress.advance(job.seconds, "cells")
                self.records[job.cell.id] = record
            else:
                todo.append(job)
        remote = [job for job in todo if not job.learner.runs_on_driver]
        here = [job for job in todo if job.learner.runs_on_driver]
        if remote:
            self.batches.append(self.executor.map_cells(remote, self._started, self.progress))
        if here:
            self.batches.append(LocalExecutor().map_cells(here, self._started, self.progress))

    def _started(self, job: CellJob) -> None:
        self.store.start(job.cell.id, job.fingerprint)
        self.running[job.cell.id] = job

    def collect(self, jobs: Sequence[CellJob]) -> tuple[list[dict[str, Any]], list[CellOutcome]]:
        """Every submitted cell's outcome recorded; returns the records in the order of `jobs`, and the failures."""
        for outcome in itertools.chain.from_iterable(self.batches):
            job = self.running[outcome.cell]
            self.progress.advance(job.seconds, "cells")
            if outcome.fatal is not None:
                raise outcome.fatal
            del self.running[outcome.cell]
            if outcome.record is not None:
                self.store.finish(outcome.record, outcome.record["paths"])
                log.info("cell %s: %s", outcome.cell, outcome.record["metrics"])
                self.records[outcome.cell] = outcome.record
            else:
                self._failed(outcome)
        return [self.records[job.cell.id] for job in jobs if job.cell.id in self.records], self.failures

    def _failed(self, outcome: CellOutcome) -> None:
        self.failures.append(outcome)
        quietly(lambda: self.store.fail(outcome.cell, outcome.error or "", outcome.log), f"recording {outcome.cell} as failed")
        log.error("cell %s failed: %s (log: %s)", outcome.cell, outcome.error, outcome.log)
        where = f" (log: {outcome.log})" if outcome.log else ""
        self.console.print(f"cell {outcome.cell} failed: {outcome.error}{where}", style="red", soft_wrap=True,
                           highlight=False, markup=False)

    def stop(self, exc: BaseException) -> None:
        """The run stops (a disk failure, Ctrl-C, a set that failed): cells not collected say why, and the
        engine gives up on them (a rerun reuses any that finished)."""
        for cell in self.running:
            quietly(lambda c=cell: self.store.fail(c, f"{type(exc).__name__}: {exc}"), f"recording {cell} as failed")
        for batch in self.batches:
            quietly(batch.close, "stopping the cells in flight")
