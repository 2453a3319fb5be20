from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from fewforge.cli.options import DataOpt


def evaluate(
    model: Annotated[Path, typer.Option("--model", "-m", help="a model directory saved by `fewforge train` or `run`")],
    task: Annotated[Optional[str], typer.Option("--task", "-t", help="task (default: the model card's)")] = None,
    test: Annotated[Optional[Path], typer.Option("--test", help="labeled test file; default: the task's test split")] = None,
    data: DataOpt = None,
    learner: Annotated[Optional[str], typer.Option("--learner", help="learner (default: the model card's)")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="write the metrics as JSON here")] = None,
) -> None:
    """Score a trained model on a test set (accuracy, macro-F1)."""
    from fewforge.files import write_json
    from fewforge.single import evaluate_model

    metrics = evaluate_model(task, model, test, data, learner)
    if output:
        write_json(output, metrics)
    Console().print(json.dumps(metrics, indent=2))
