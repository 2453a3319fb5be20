from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from fewforge.cli.options import (
    DEFAULTS,
    DataOpt,
    GeneratorOpt,
    LearnerOpt,
    MethodOpt,
    NoCacheOpt,
    PerLabelOpt,
    RunOutputOpt,
    SeedsOpt,
    ShotsOpt,
    TaskOpt,
    default_seeds,
    parse_seeds,
)


def run(
    task: TaskOpt = DEFAULTS.task,
    data: DataOpt = None,
    shots: ShotsOpt = DEFAULTS.shots,
    seeds: SeedsOpt = default_seeds(),
    per_label: PerLabelOpt = DEFAULTS.per_label,
    generator: GeneratorOpt = DEFAULTS.generator,
    method: MethodOpt = DEFAULTS.method,
    learner: LearnerOpt = DEFAULTS.learner,
    output: RunOutputOpt = Path("runs/default"),
    max_test: Annotated[Optional[int], typer.Option("--max-test", help="evaluate on at most N test rows")] = None,
    config: Annotated[
        Optional[Path], typer.Option("--config", help="a run config YAML (e.g. a previous config.yaml); options given here override it")
    ] = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Run the whole experiment: few-shot splits, synthesis, real-only vs real+synthetic training, report.

    With no options: BBC News from the packaged corpus, 16 shots, 100 synthetic examples per label from
    the packaged SmolLM2 generator, MiniLM trained per seed. A rerun with the same --output resumes.
    """
    from click.core import ParameterSource

    from fewforge.config import RunConfig
    from fewforge.evaluation import results_table
    from fewforge.pipeline import run_experiment

    ctx = typer.get_current_context()
    given = {
        "task": task, "data": data, "shots": shots, "seeds": parse_seeds(seeds), "per_label": per_label,
        "generator": generator, "method": method, "learner": learner, "max_test": max_test,
        "cache": not no_cache,
    }
    option_of = {"cache": "no_cache"}
    if config is not None:
        # Only options typed on the command line override the file.
        base = RunConfig.from_yaml(config).model_dump()
        for key, value in given.items():
            if ctx.get_parameter_source(option_of.get(key, key)) == ParameterSource.COMMANDLINE:
                base[key] = value
        cfg = RunConfig.build(**base)
    else:
        cfg = RunConfig.build(**given)
    console = Console(stderr=True)
    results = run_experiment(cfg, output, console=console)
    out = Console()
    out.print(results_table(results["summary"]))
    out.print(f"results → {output / 'results.json'}  ({results['meta']['wall_seconds']} s)")
