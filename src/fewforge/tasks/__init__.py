"""Tasks: the built-ins by name, or a custom task from a YAML/TOML file.

Only the lightweight Task contract is imported here; the file loader (pydantic, yaml) loads on demand so
`fewforge tasks` starts instantly.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from fewforge.errors import TaskError
from fewforge.tasks.base import Task
from fewforge.tasks.builtin import BUILTIN_TASKS

__all__ = ["BUILTIN_TASKS", "Task", "list_tasks", "load_task"]

_FILE_SUFFIXES = (".yaml", ".yml", ".toml")


def list_tasks() -> list[str]:
    """Names of the built-in tasks, in the order they are defined."""
    return list(BUILTIN_TASKS)


def load_task(name_or_path: str | Path) -> Task:
    """A built-in task by name (case-insensitive), or a custom task from a .yaml/.yml/.toml path."""
    text = str(name_or_path)
    key = text.strip().lower()
    if not isinstance(name_or_path, Path) and key in BUILTIN_TASKS:
        return BUILTIN_TASKS[key]
    if isinstance(name_or_path, Path) or Path(text).suffix.lower() in _FILE_SUFFIXES or Path(text).is_file():
        from fewforge.tasks.from_file import load_task_file

        return load_task_file(text)
    close = difflib.get_close_matches(key, BUILTIN_TASKS, n=1)
    guess = f"did you mean {close[0]!r}? " if close else ""
    raise TaskError(
        f"unknown task {text!r}",
        hint=f"{guess}built-in tasks: {', '.join(BUILTIN_TASKS)}; or pass the path to a task .yaml/.toml file",
    )
