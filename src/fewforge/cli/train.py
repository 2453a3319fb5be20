from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from fewforge.cli.options import OneLearnerOpt, TaskOpt


def train(
    train_file: Annotated[Path, typer.Option("--train", help="labeled few-shot train file (JSONL/CSV/TSV/parquet)")],
    dev_file: Annotated[Path, typer.Option("--dev", help="labeled dev file for early stopping")],
    output: Annotated[Path, typer.Option("--output", "-o", help="directory to save the trained model in")],
    task: TaskOpt = "bbc",
    synthetic: Annotated[
        Optional[Path], typer.Option("--synthetic", help="synthetic data to add (e.g. RUN/synthetic/sst2/seed13/zerogen/data.jsonl)")
    ] = None,
    learner: OneLearnerOpt = "encoder",
    seed: Annotated[int, typer.Option("--seed", help="training seed")] = 13,
) -> None:
    """Train a learner on real (+ synthetic) data and save it."""
    from fewforge.pipeline import train_model

    console = Console(stderr=True)
    report = train_model(task, train_file, dev_file, synthetic, learner, seed, output, console=console)
    console.print(f"best dev accuracy {report.best_dev_accuracy:.4f} at step {report.best_step}; model → {output}")
