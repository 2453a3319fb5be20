from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fewforge.evaluation.coverage import COVERAGE_GAMMA, COVERAGE_ROWS
from fewforge.evaluation.quality import SELF_BLEU_ROWS


def quality(
    run_dir: Annotated[Path, typer.Argument(help="a run directory (the --output of fewforge run or generate)")],
    coverage_rows: Annotated[
        int, typer.Option(min=1, help="real and synthetic rows each (seeded samples) in the joint coverage map")
    ] = COVERAGE_ROWS,
    gamma: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="coverage radius γ as a multiple of the median nearest-neighbour distance among the real points",
        ),
    ] = COVERAGE_GAMMA,
    projection: Annotated[str, typer.Option(help="the joint 2-D map: tsne (S3 App. C) or pca (faster)")] = "tsne",
    self_bleu_rows: Annotated[int, typer.Option(min=2, help="rows sampled for self-BLEU")] = SELF_BLEU_ROWS,
) -> None:
    """Data quality of every synthetic set in a run: label fidelity (a classifier trained on the task's real
    train split), distinct-n and self-BLEU, cosine similarity to real rows of the same vs other labels,
    coverage of the real rows in a joint t-SNE map (S3 App. C), similarity of extrapolated rows to their
    real parents (S3 §3.6), keep rate and tuning time; written to RUN_DIR/quality.json and shown by
    `fewforge report`."""
    from fewforge.evaluation.quality import (
        QUALITY_FILE,
        QualityOptions,
        assess_run,
        auditor_note,
        columns_note,
        quality_rows,
    )

    options = QualityOptions(
        coverage_rows=coverage_rows, coverage_gamma=gamma, projection=projection, self_bleu_rows=self_bleu_rows
    )
    err = Console(stderr=True)
    result = assess_run(run_dir, progress=lambda msg: err.print(msg, highlight=False, soft_wrap=True), options=options)
    header, rows = quality_rows(result)
    table = Table(*header, title="synthetic data quality (mean ± std over seeds)")
    for row in rows:
        table.add_row(*row)
    console = Console()
    console.print(table)
    console.print(auditor_note(result), highlight=False, soft_wrap=True)
    if columns_note(result):
        console.print(columns_note(result), highlight=False, soft_wrap=True)
    console.print(f"→ {Path(run_dir) / QUALITY_FILE}", highlight=False)
