"""`ray[:ADDRESS]`: each cell a Ray task with its learner's resources (cpus, gpus — a fraction packs
several cells on one GPU —, memory), retried by Ray when its worker dies (`max_retries`). A GPU cell
gets a fresh worker process (`max_calls=1`), so its GPU memory is freed when it ends. Without ADDRESS
Ray joins the cluster of RAY_ADDRESS or starts one on this machine.

On a cluster every node must see the run directory at the same path: a remote task writes a marker
file there first, and the run stops with one line if the driver cannot read it.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Sequence

from fewforge.errors import ConfigError
from fewforge.executors.base import CellOutcome, Executor, Started, Submitted, execute, failed, one_line

if TYPE_CHECKING:
    from fewforge.cells import CellJob

MAX_RETRIES = 3  # a worker that dies (preempted node, out of memory) runs its cell again, up to 3 times


class RayExecutor(Executor):
    name: ClassVar[str] = "ray"

    def __init__(self, address: str | None = None) -> None:
        from fewforge.executors import import_extra

        self.ray = import_extra("ray", "ray")
        self.address = address

    def map_cells(self, jobs: Sequence["CellJob"], started: Started, progress: Any) -> Submitted:
        ray = self.ray
        if not ray.is_initialized():
            ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        if not jobs:
            return Submitted(iter(()))
        check_shared(ray, jobs[0].root)
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        cpu_task = ray.remote(execute)
        gpu_task = ray.remote(max_calls=1)(execute)  # a fresh worker per GPU cell: its GPU memory is freed
        refs: dict[Any, CellJob] = {}
        for job in jobs:
            want = job.resources
            gpus = want.gpus if has_gpus else 0  # a CPU-only cluster runs GPU learners on CPU rather than waiting
            options: dict[str, Any] = {"num_cpus": want.cpus, "num_gpus": gpus, "max_retries": MAX_RETRIES}
            if want.memory_gb:
                options["memory"] = int(want.memory_gb * 2**30)
            refs[(gpu_task if gpus else cpu_task).options(**options).remote(job)] = job
            started(job)
        return Submitted(self._collect(refs), lambda: [ray.cancel(ref) for ref in refs])

    def _collect(self, refs: dict[Any, "CellJob"]) -> Iterator[CellOutcome]:
        ray, pending = self.ray, list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker died more than MAX_RETRIES times
                    yield failed(refs[ref], f"Ray gave up on the cell after {MAX_RETRIES} retries: {one_line(exc)[:300]}")


def check_shared(ray: Any, root: Path) -> None:
    """Stop with one line unless a Ray worker can write into the run directory where the driver reads it."""
    marker = Path(root) / f".ray-check-{uuid.uuid4().hex[:8]}"

    def touch(path: str) -> bool:
        try:
            Path(path).write_text("written by a Ray worker\n", encoding="utf-8")
            return True
        except OSError:
            return False

    try:
        wrote = ray.get(ray.remote(touch).options(num_cpus=0).remote(str(marker)))
        seen = marker.is_file()
    finally:
        marker.unlink(missing_ok=True)
    if not (wrote and seen):
        raise ConfigError(
            f"the run directory {root} is not shared with the Ray workers (a worker could not write a file there "
            "that this process can read)",
            hint="put --output on a filesystem every node mounts at the same path (NFS, Lustre, a shared volume)",
        )
