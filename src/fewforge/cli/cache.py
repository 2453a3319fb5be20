from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from fewforge.cli.options import RunDirOpt

app = typer.Typer(help="Inspect the generation cache of a run directory.", no_args_is_help=True)


@app.command("info")
def info(output: RunDirOpt = Path("runs/default")) -> None:
    """Print where a run's generation cache is, how many completions it holds and its size."""
    from fewforge.generators.cache import cache_info
    from fewforge.rundir import RunDir

    Console().print(cache_info(RunDir(output).cache_path))
