"""`processes:N`: N spawned worker processes on this machine. The cores are split between them (torch
and BLAS threads), and the GPUs this process sees are dealt round-robin through CUDA_VISIBLE_DEVICES,
so with more workers than GPUs several cells share one. A worker that dies (out of memory, killed)
fails the cells it left unfinished; a rerun runs them again.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Sequence

from fewforge.errors import ConfigError
from fewforge.executors.base import CellOutcome, Executor, Started, Submitted, execute, failed

if TYPE_CHECKING:
    from fewforge.cells import CellJob

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class ProcessesExecutor(Executor):
    name: ClassVar[str] = "processes"

    def __init__(self, argument: str | None = None) -> None:
        if not argument or not argument.isdigit() or int(argument) < 1:
            raise ConfigError(f"executor processes:{argument or ''} needs a number of workers",
                              hint="e.g. --executor processes:2 (one per core or per GPU)")
        self.workers = int(argument)

    def map_cells(self, jobs: Sequence["CellJob"], started: Started, progress: Any) -> Submitted:
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        context = multiprocessing.get_context("spawn")  # a fork would copy the driver's torch threads and locks
        counter = context.Value("i", 0)
        pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker,
                                   initargs=(counter, threads, visible_gpus()))
        futures: dict[Future[CellOutcome], CellJob] = {}
        for job in jobs:
            futures[pool.submit(execute, job)] = job
            started(job)
        return Submitted(_collect(pool, futures), lambda: pool.shutdown(wait=False, cancel_futures=True))


def _collect(pool: ProcessPoolExecutor, futures: dict[Future[CellOutcome], "CellJob"]) -> Iterator[CellOutcome]:
    with pool:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    yield future.result()
                except BrokenProcessPool:
                    yield failed(futures[future], "a worker process died (out of memory or killed); "
                                 "rerun to retry the cell")


def visible_gpus() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else every one torch sees."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g for g in listed.split(",") if g.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # no torch, or a broken driver: CPU workers
        return []


def _start_worker(counter: Any, threads: int, gpus: list[str]) -> None:
    """Runs first in each spawned worker, before torch is imported: its GPU and its share of the cores."""
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
