from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console


def report(
    run_dir: Annotated[Path, typer.Argument(help="a run directory (holding results.json)")],
    html: Annotated[
        Optional[Path], typer.Option("--html", help="where to write the HTML page [default: RUN_DIR/report.html]")
    ] = None,
    markdown: Annotated[
        Optional[Path],
        typer.Option("--markdown", "--md", help="where to write the Markdown [default: RUN_DIR/report.md]"),
    ] = None,
    title: Annotated[Optional[str], typer.Option("--title", help="the report's title")] = None,
) -> None:
    """Write a self-contained HTML report and a Markdown version of a run: tables with Δ, CI and p,
    accuracy vs shots and vs synthetic size, per-class F1, confusion matrices, synthetic rows kept and dropped."""
    from fewforge.cli.options import command_line
    from fewforge.evaluation.report import write_report

    html_path, md_path = write_report(
        run_dir, html_path=html, markdown_path=markdown, title=title, command=command_line()
    )
    Console().print(f"report → {html_path}\nmarkdown → {md_path}", highlight=False)
