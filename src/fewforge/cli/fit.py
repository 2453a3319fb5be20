from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from fewforge.cli import choices
from fewforge.cli.options import learner_options


def fit(
    examples: Annotated[Path, typer.Argument(help="your labeled rows: CSV/TSV/JSONL/parquet (text,label; "
                                             "text_a,text_b,label; premise,hypothesis,label; context,question,answers; "
                                             "source,target) or a saved datasets folder", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="the model folder to write (a rerun resumes it)")],
    task: Annotated[Optional[Path], typer.Option("--task", "-t", help="a task YAML/TOML file (labels, verbalizers, "
                                                 "templates); default: inferred from the columns")] = None,
    description: Annotated[Optional[str], typer.Option("--description", help='what one example is, for generation '
                                                       'prompts, e.g. "product review" [default: text]')] = None,
    unlabeled: Annotated[Optional[Path], typer.Option("--unlabeled", help="unlabeled inputs (.txt, one per line, or "
                                                      "a table with the input columns): DAFTT-annotate and S3 read them")] = None,
    generator: Annotated[str, typer.Option("--generator", "-g", help="the generator LLM (see `fewforge run --help`)")] = "smollm2",
    method: Annotated[str, typer.Option("--method", help="synthesis method: auto (picks among candidates, or none), "
                                        f"{choices.methods()}, or none")] = "auto",
    method_option: Annotated[Optional[list[str]], typer.Option("--method-option", "-M", help="a method option as "
                             "KEY=VALUE (repeatable), e.g. -M candidates=[zerogen,goldgen,s3]")] = None,
    learner: Annotated[Optional[str], typer.Option("--learner", help="learner [default: setfit for classification, "
                                                   "qa-encoder for QA, causal-lm for text-to-text]", show_default=False)] = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", "-O", help="a learner option as KEY=VALUE "
                                                        "(repeatable), e.g. -O num_iterations=5")] = None,
    budget: Annotated[int, typer.Option("--budget", "-n", help="synthetic rows per label (QA, text-to-text: in all)")] = 16,
    folds: Annotated[int, typer.Option("--folds", help="k of the repeated k-fold estimate")] = 4,
    repeats: Annotated[int, typer.Option("--repeats", help="repeats of the k-fold estimate")] = 2,
    seed: Annotated[int, typer.Option("--seed", help="seed of folds, synthesis and training")] = 13,
    push_to_hub: Annotated[Optional[str], typer.Option("--push-to-hub", help="upload the model folder to this hub "
                                                       "repository (user/name) when done")] = None,
    private: Annotated[bool, typer.Option("--private", help="with --push-to-hub: a private repository")] = False,
) -> None:
    """Train a model on your own handful of labeled rows: synthetic data from a generator LLM, an honest
    k-fold estimate without a test set, and a model folder that SetFit / transformers / peft load."""
    from fewforge.fit import fit as run_fit
    from fewforge.fit.estimate import estimate_table
    from fewforge.fit.publish import condition_labels, final_training

    console = Console(stderr=True)
    values = {
        "examples": str(examples), "task": str(task) if task else None, "description": description,
        "unlabeled": str(unlabeled) if unlabeled else None, "generator": generator, "method": method,
        "method_options": learner_options(method_option or []), "learner": learner,
        "learner_options": learner_options(option or []), "budget": budget, "folds": folds, "repeats": repeats,
        "seed": seed,
    }
    # libraries print training logs to stdout (setfit's loss dicts): stdout keeps only the estimate and the result
    with contextlib.redirect_stdout(sys.stderr):
        summary = run_fit(values, output, console=console, push_to_hub=push_to_hub, private=private)
    table = estimate_table(summary, condition_labels(summary, method))
    typer.echo(f"\nestimate ({summary['folds']}-fold × {summary['repeats']} over your {summary['rows']} rows, no test set):")
    typer.echo(table)
    typer.echo(f"\nfinal model, trained on {final_training(summary)}, in {summary['seconds'] / 60:.1f} min → {output}")
    typer.echo(f"predict: fewforge predict --model {output} --input texts.txt   (model card: {output}/README.md)")
    if summary.get("pushed"):
        typer.echo(f"pushed: {summary['pushed']}")
