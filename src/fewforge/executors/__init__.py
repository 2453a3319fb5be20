"""Executors: where a grid's cells run (`--executor` or the grid key `executor:`). Add one with a
module and one line here. Ray and submitit are optional extras, imported only by their executors.

    local               every cell in this process (the default)
    processes:N         N worker processes on this machine, GPUs dealt round-robin
    ray[:ADDRESS]       Ray tasks with each learner's cpus/gpus/memory (pip install 'fewforge[ray]')
    slurm:PARTITION     submitit job arrays on a SLURM partition (pip install 'fewforge[slurm]')
"""

from __future__ import annotations

from typing import Any

from fewforge.errors import ConfigError
from fewforge.executors.base import CellOutcome, Executor, execute
from fewforge.executors.local import LocalExecutor
from fewforge.registry import Registry

EXECUTORS: Registry[Any] = Registry("executor")
EXECUTORS.register("local", "fewforge.executors.local:LocalExecutor")
EXECUTORS.register("processes", "fewforge.executors.processes:ProcessesExecutor")
EXECUTORS.register("ray", "fewforge.executors.ray:RayExecutor")
EXECUTORS.register("slurm", "fewforge.executors.slurm:SlurmExecutor")

__all__ = ["EXECUTORS", "CellOutcome", "Executor", "LocalExecutor", "execute", "get_executor"]


def get_executor(spec: str | Executor | None) -> Executor:
    """`local`, `processes:N`, `ray[:ADDRESS]` or `slurm:PARTITION[,options]` as an executor."""
    if spec is None or isinstance(spec, Executor):
        return spec or LocalExecutor()
    name, _, argument = spec.strip().partition(":")
    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor {spec!r}",
                          hint="choose local, processes:N, ray[:ADDRESS] or slurm:PARTITION")
    cls = EXECUTORS.get(name)
    return cls() if name == "local" else cls(argument or None)


def import_extra(module: str, extra: str) -> Any:
    """An engine's module, or one line naming the pip install that brings it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"the {extra} executor needs {module}, which is not installed",
                          hint=f"pip install 'fewforge[{extra}]'") from None
