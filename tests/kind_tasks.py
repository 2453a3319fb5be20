"""A built-in task of each kind, for the contract tests that run over every registered kind."""

from __future__ import annotations

from pathlib import Path

import pytest


def builtin_task_of_kind(kind: str, data_dir: Path):
    """(task, pool, test) of the first built-in task of `kind` whose data is in data_dir: what the
    registry-wide contract tests run each kind on."""
    from fewforge.data.sources import load_task_data
    from fewforge.tasks import list_tasks, load_task

    for name in list_tasks():
        task = load_task(name)
        if task.kind == kind and (data_dir / (task.data or task.name) / "train.jsonl").exists():
            return (task, *load_task_data(task, data_dir))
    pytest.fail(f"no built-in task of kind {kind!r} has data in {data_dir}")
