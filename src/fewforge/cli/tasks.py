from __future__ import annotations

from rich.console import Console
from rich.table import Table


def tasks() -> None:
    """List the built-in tasks (a custom task is a YAML/TOML file passed to --task)."""
    from fewforge.tasks import list_tasks, load_task

    table = Table("task", "type", "labels (verbalizer)", "description")
    for name in list_tasks():
        task = load_task(name)
        labels = ", ".join(f"{label} ({word})" for label, word in task.labels.items())
        table.add_row(name, task.kind, labels, task.description)
    Console().print(table)
