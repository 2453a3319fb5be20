from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def quality(
    run_dir: Annotated[Path, typer.Argument(help="a run directory (the --output of fewforge run or generate)")],
) -> None:
    """Data quality of every synthetic set in a run: label fidelity (a classifier trained on the task's real
    train split), distinct-n, cosine similarity to real rows of the same vs other labels, keep rate and
    tuning time; written to RUN_DIR/quality.json and shown by `fewforge report`."""
    from fewforge.evaluation.quality import QUALITY_FILE, assess_run, auditor_note, quality_rows

    err = Console(stderr=True)
    result = assess_run(run_dir, progress=lambda msg: err.print(msg, highlight=False, soft_wrap=True))
    header, rows = quality_rows(result)
    table = Table(*header, title="synthetic data quality (mean ± std over seeds)")
    for row in rows:
        table.add_row(*row)
    console = Console()
    console.print(table)
    console.print(auditor_note(result), highlight=False, soft_wrap=True)
    console.print(f"→ {Path(run_dir) / QUALITY_FILE}", highlight=False)
