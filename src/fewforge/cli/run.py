from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from fewforge.cli.options import DEFAULTS, DataOpt, NoCacheOpt, RunOutputOpt, default_seeds, parse_seeds
from fewforge.config import RunConfig

_f = RunConfig.model_fields


def run(
    task: Annotated[Optional[str], typer.Option("--task", "-t", help=f"{_f['task'].description} [default: {DEFAULTS.task}]")] = None,
    data: DataOpt = None,
    shots: Annotated[Optional[int], typer.Option("--shots", "-k", help=f"{_f['shots'].description} [default: {DEFAULTS.shots}]")] = None,
    seeds: Annotated[Optional[str], typer.Option("--seeds", help=f"comma-separated {_f['seeds'].description} [default: {default_seeds()}]")] = None,
    per_label: Annotated[Optional[int], typer.Option("--per-label", "-n", help=f"{_f['per_label'].description} [default: {DEFAULTS.per_label}]")] = None,
    generator: Annotated[Optional[str], typer.Option("--generator", "-g", help=f"{_f['generator'].description} [default: {DEFAULTS.generator}]")] = None,
    method: Annotated[Optional[str], typer.Option("--method", help=f"{_f['method'].description} [default: {DEFAULTS.method}]")] = None,
    learner: Annotated[Optional[str], typer.Option("--learner", help=f"{_f['learner'].description} [default: {DEFAULTS.learner}]")] = None,
    output: RunOutputOpt = Path("runs/default"),
    max_test: Annotated[Optional[int], typer.Option("--max-test", help=_f["max_test"].description)] = None,
    config: Annotated[
        Optional[Path], typer.Option("--config", help="a run config YAML (e.g. a previous config.yaml); options given here override it")
    ] = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Run the whole experiment: few-shot splits, synthesis, real-only vs real+synthetic training, report.

    With no options: BBC News from the packaged corpus, 16 shots, 100 synthetic examples per label from
    the packaged SmolLM2 generator, MiniLM trained per seed. A rerun with the same --output resumes.
    """
    from fewforge.config import RunConfig
    from fewforge.evaluation import results_table
    from fewforge.pipeline import run_experiment

    # Options typed on the command line override the config file; the rest keep its (or the default) values.
    given = {
        "task": task, "data": data, "shots": shots, "seeds": parse_seeds(seeds) if seeds else None,
        "per_label": per_label, "generator": generator, "method": method, "learner": learner,
        "max_test": max_test, "cache": False if no_cache else None,
    }
    base = RunConfig.from_yaml(config).model_dump() if config is not None else {}
    cfg = RunConfig.build(**{**base, **{k: v for k, v in given.items() if v is not None}})
    console = Console(stderr=True)
    results = run_experiment(cfg, output, console=console)
    out = Console()
    out.print(results_table(results["summary"]))
    out.print(f"results → {output / 'results.json'}  ({results['meta']['wall_seconds']} s)")
