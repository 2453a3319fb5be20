from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from fewforge.cli import choices
from fewforge.cli.options import OneLearnerOpt, TaskOpt, learner_options


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
    strategy: Annotated[
        Optional[str],
        typer.Option(
            "--strategy",
            help=f"how real and synthetic rows mix: {choices.strategies()}",
        ),
    ] = None,
    epsilon: Annotated[
        Optional[float], typer.Option("--epsilon", help="weight of the projected synthetic gradient (paired+gs)")
    ] = None,
    label_smoothing: Annotated[Optional[float], typer.Option("--label-smoothing", help="label smoothing (0-1)")] = None,
    option: Annotated[
        Optional[list[str]],
        typer.Option("--option", "-O", help="any learner option as KEY=VALUE (repeatable), e.g. -O max_steps=200"),
    ] = None,
) -> None:
    """Train a learner on real (+ synthetic) data and save it, with a model card."""
    from fewforge.single import train_model

    options = learner_options(option or [])
    given = {"strategy": strategy, "epsilon": epsilon, "label_smoothing": label_smoothing}
    options.update({k: v for k, v in given.items() if v is not None})
    console = Console(stderr=True)
    report = train_model(task, train_file, dev_file, synthetic, learner, seed, output, options=options, console=console)
    extra = report.extra
    rate = f"; gradient conflicts in {100 * extra['conflict_rate']:.0f}% of steps" if "conflict_rate" in extra else ""
    if extra.get("reweight"):
        learned = extra["reweight"]
        rate += (f"; learned weights: {100 * (learned.get('zero_share') or 0):.0f}% of synthetic draws weighted 0"
                 " (per row: training.json)")
    from fewforge.tasks import load_task

    # the loop's model-selection score: accuracy, or the dev F1 / ROUGE-L of QA and text-to-text learners
    what = "accuracy" if load_task(task).is_classification else "score (F1 / ROUGE-L)"
    console.print(f"best dev {what} {report.best_dev_accuracy:.4f} at step {report.best_step}{rate}; model → {output}")
