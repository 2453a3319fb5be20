"""`local` (the default): every cell in the driver's process, one after another, with its own
progress bar (training steps)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Sequence

from fewforge.executors.base import CellOutcome, Executor, Started, Submitted, execute

if TYPE_CHECKING:
    from fewforge.cells import CellJob


class LocalExecutor(Executor):
    name: ClassVar[str] = "local"

    def map_cells(self, jobs: Sequence["CellJob"], started: Started, progress: Any) -> Submitted:
        return Submitted(self._run(jobs, started, progress))  # the driver's process: cells run when collected

    def _run(self, jobs: Sequence["CellJob"], started: Started, progress: Any) -> Iterator[CellOutcome]:
        for job in jobs:
            started(job)
            if progress is None:
                yield execute(job)
                continue
            # the driver moves the grid bar when the cell is done: the cell's bar shows its steps only
            with progress.stage(job.cell.id, 1, 0.0) as update:
                outcome = execute(job, update)
            yield outcome
