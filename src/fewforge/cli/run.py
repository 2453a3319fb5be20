from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from fewforge.cli import choices
from fewforge.cli.options import (
    DEFAULTS,
    CurateOpt,
    DataOpt,
    GeneratorOpt,
    GridArg,
    LearnerOpt,
    MaxTestOpt,
    MethodOpt,
    NoCacheOpt,
    NumSyntheticOpt,
    OutputOpt,
    PerLabelOpt,
    SeedsOpt,
    ShotsOpt,
    TasksOpt,
    build_config,
    command_line,
    output_dir,
)


def run(
    grid: GridArg = None,
    task: TasksOpt = None,
    data: DataOpt = None,
    shots: ShotsOpt = None,
    seeds: SeedsOpt = None,
    per_label: PerLabelOpt = None,
    num_synthetic: NumSyntheticOpt = None,
    generator: GeneratorOpt = None,
    method: MethodOpt = None,
    curate: CurateOpt = None,
    learner: LearnerOpt = None,
    max_test: MaxTestOpt = None,
    no_cache: NoCacheOpt = False,
    output: OutputOpt = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="skip writing report.html / report.md")] = False,
    executor: Annotated[
        str | None,
        typer.Option("--executor", help="where cells run: local | processes:N | ray[:ADDRESS] | slurm:PARTITION "
                     "(default: the grid's `executor:`, else local)"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print what generation will cost (fewforge estimate) and stop")
    ] = False,
) -> None:
    """Run an experiment grid: few-shot splits, synthesis, every learner on real only vs real + synthetic
    data, statistics, and an HTML report. A rerun with the same --output resumes.

    With no arguments, the default run (README: what it shows, what it costs): {default_run}.
    """
    from fewforge.evaluation import results_table
    from fewforge.pipeline import run_experiment

    cfg = build_config(
        grid,
        task=task,
        data=data,
        shots=shots,
        seeds=seeds,
        per_label=per_label,
        num_synthetic=num_synthetic,
        generator=generator,
        method=method,
        curate=curate,
        learner=learner,
        max_test=max_test,
        no_cache=no_cache,
    )
    out_dir = output_dir(output, grid)
    if executor:  # where cells run never changes a result: the grid file's setting is simply replaced
        cfg = cfg.model_copy(update={"executor": executor})
    if dry_run:
        from fewforge.cli.estimate import show_estimate

        show_estimate(cfg, out_dir)
        return
    results = run_experiment(cfg, out_dir, console=Console(stderr=True), report=not no_report, command=command_line())
    out = Console()
    if not out.is_terminal:  # a log file or pipe: keep rows on one line instead of wrapping at 80 columns
        out = Console(width=180)
    out.print(results_table(results["summary"], title=cfg.description.splitlines()[0] if cfg.description else None))
    out.print(f"results → {out_dir / 'results.json'} ({results['meta']['wall_seconds']} s)", highlight=False)
    if not no_report:
        out.print(f"report → {out_dir / 'report.html'}", highlight=False)


# the default run described from its own grid file, so the help cannot drift from what it runs
run.__doc__ = (run.__doc__ or "").replace("{default_run}", choices.default_run(DEFAULTS))
