"""The progress display of a grid: the whole grid and the stage running now, each with an ETA."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class GridProgress:
    """Two rich bars with ETAs: the whole grid (in estimated seconds of work, shown as a percentage),
    and the stage running now (prompts generated, training steps)."""

    def __init__(self, console: Console, total: float, counts: dict[str, int] | None = None) -> None:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        )
        self.bar = Progress(*columns, console=console)
        self.grid = self.bar.add_task("grid", total=max(total, 1e-9), count="")
        # finished units per kind beside the percentage, e.g. "sets 2/6 · cells 14/40" (kinds with a total)
        self.totals = {kind: n for kind, n in (counts or {}).items() if n}
        self.finished: dict[str, int] = dict.fromkeys(self.totals, 0)

    def __enter__(self) -> "GridProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def advance(self, units: float, finished: str | None = None) -> None:
        """Move the grid bar by `units`; `finished`: one more unit of that kind ("sets", "cells") is done."""
        if finished in self.finished:
            self.finished[finished] += 1
        self.bar.advance(self.grid, units)
        task = self.bar.tasks[self.grid]
        counts = "".join(f" · {kind} {self.finished[kind]}/{n}" for kind, n in self.totals.items())
        self.bar.update(self.grid, count=f"{100 * task.completed / task.total:3.0f}%{counts}")

    @contextmanager
    def stage(self, description: str, total: int, units: float) -> Iterator[Any]:
        """A sub-bar; yields `update(done, total)`. The grid bar moves by `units` over the stage."""
        sub = self.bar.add_task(description, total=max(total, 1), count=f"0/{total}")
        moved = [0.0]

        def update(done: int, new_total: int | None = None) -> None:
            new_total = new_total or total
            self.bar.update(sub, completed=done, total=max(new_total, 1), count=f"{done}/{new_total}")
            share = min(units, units * done / max(new_total, 1))
            self.advance(share - moved[0])
            moved[0] = share

        try:
            yield update
        finally:
            self.advance(units - moved[0])
            self.bar.remove_task(sub)
