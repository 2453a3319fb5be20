"""The `fewforge` command. Each command lives in its own module and calls one library function."""

from __future__ import annotations

import os
import sys

# OpenMP threads that spin while waiting starve each other (llama.cpp, torch) whenever another
# process shares the cores; measured 10x slower under load. Must be set before those libraries load.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer
from rich.console import Console

from fewforge.cli import cache, estimate, evaluate, fit, generate, predict, quality, report, run, sample, tasks, train

app = typer.Typer(
    name="fewforge",
    help="Few-shot learning with LLM-synthesized training data: experiment grids, fair comparisons, reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("fit")(fit.fit)
app.command("tasks")(tasks.tasks)
app.command("sample")(sample.sample)
app.command("generate")(generate.generate)
app.command("estimate")(estimate.estimate)
app.command("train")(train.train)
app.command("evaluate")(evaluate.evaluate)
app.command("predict")(predict.predict)
app.command("run")(run.run)
app.command("report")(report.report)
app.command("quality")(quality.quality)
app.add_typer(cache.app, name="cache")


def main() -> None:
    """Entry point: user errors print one line plus a hint and exit 2 (FEWFORGE_DEBUG=1 shows tracebacks)."""
    import sqlite3

    from fewforge.errors import FewforgeError
    from fewforge.storage import storage_error

    try:
        try:
            app()
        except (OSError, sqlite3.Error) as exc:  # a full disk, a read-only folder: one line, not a traceback
            error = storage_error(exc)
            if error is None:
                raise
            raise error from exc
    except FewforgeError as exc:
        if os.environ.get("FEWFORGE_DEBUG"):
            raise
        console = Console(stderr=True)
        console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        if exc.hint:
            console.print(f"[bold]hint:[/] {exc.hint}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted: finished work is on disk; rerun the same command to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
