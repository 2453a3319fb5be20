"""`slurm:PARTITION[,time=MIN][,gpus=N][,cpus=N][,parallel=N]`: the cells as one submitit job array on a
SLURM partition; `time` is each task's limit in minutes (default 60), `gpus` and `cpus` per task
(default: the most any cell's learner asks for, GPUs rounded up), `parallel` the array's parallelism
(default 64). submitit's logs go to logs/slurm/ in the run directory, which must be on a filesystem the
compute nodes share. `slurm:local` runs the array as local processes (submitit's local executor).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Sequence

from fewforge.errors import ConfigError
from fewforge.executors.base import CellOutcome, Executor, Started, Submitted, execute, failed, one_line

if TYPE_CHECKING:
    from fewforge.cells import CellJob

OPTIONS = {"time": 60, "gpus": None, "cpus": None, "parallel": 64}


class SlurmExecutor(Executor):
    name: ClassVar[str] = "slurm"

    def __init__(self, argument: str | None = None) -> None:
        from fewforge.executors import import_extra

        self.submitit = import_extra("submitit", "slurm")
        partition, *pairs = (argument or "").split(",")
        if not partition:
            raise ConfigError("executor slurm needs a partition", hint="e.g. --executor slurm:gpu,time=120,gpus=1")
        self.partition = partition
        self.options: dict[str, int | None] = dict(OPTIONS)
        for pair in pairs:
            key, _, value = pair.partition("=")
            if key not in OPTIONS or not value.isdigit():
                raise ConfigError(f"executor option {pair!r} of slurm:{argument}",
                                  hint="options are time=MINUTES, gpus=N, cpus=N, parallel=N (whole numbers)")
            self.options[key] = int(value)

    def map_cells(self, jobs: Sequence["CellJob"], started: Started, progress: Any) -> Submitted:
        if not jobs:
            return Submitted(iter(()))
        folder = jobs[0].root / "logs" / "slurm"
        local = self.partition == "local"
        executor = self.submitit.AutoExecutor(folder=folder, cluster="local" if local else None)
        gpus = self.options["gpus"] if self.options["gpus"] is not None else max(
            math.ceil(job.resources.gpus) for job in jobs)
        cpus = self.options["cpus"] or max(math.ceil(job.resources.cpus) for job in jobs)
        parameters: dict[str, Any] = {"timeout_min": self.options["time"], "gpus_per_node": gpus,
                                      "cpus_per_task": cpus, "name": "fewforge-cell"}
        if not local:
            parameters.update(slurm_partition=self.partition, slurm_array_parallelism=self.options["parallel"])
        executor.update_parameters(**parameters)
        submitted = executor.map_array(execute, list(jobs))
        for job in jobs:
            started(job)
        return Submitted(self._collect(submitted, jobs, folder), lambda: [s.cancel(check=False) for s in submitted])

    def _collect(self, submitted: list[Any], jobs: Sequence["CellJob"], folder: Any) -> Iterator[CellOutcome]:
        owners = {id(s): job for s, job in zip(submitted, jobs)}
        for done in self.submitit.helpers.as_completed(submitted):
            try:
                yield done.result()
            except Exception as exc:  # the task was killed (time limit, preemption, a node lost)
                yield failed(owners[id(done)], f"the SLURM task {done.job_id} ended without a result: "
                             f"{one_line(exc)[:300]} (its log: {folder})")
