from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from fewforge.cli.options import (
    CurateOpt,
    DataOpt,
    GeneratorOpt,
    GridArg,
    MethodOpt,
    NoCacheOpt,
    NumSyntheticOpt,
    OutputOpt,
    PerLabelOpt,
    SeedsOpt,
    ShotsOpt,
    TasksOpt,
    build_config,
    output_dir,
)


def generate(
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
    no_cache: NoCacheOpt = False,
    output: OutputOpt = None,
    submit_only: Annotated[
        bool,
        typer.Option(
            "--submit-only",
            help="with openai-batch: submit every set's batch and return; a later generate or run collects",
        ),
    ] = False,
) -> None:
    """Sample the few-shot splits and synthesize every synthetic set of a grid into OUTPUT/synthetic/
    (resumable; `fewforge run` with the same grid and output then only trains)."""
    from fewforge.errors import PendingWork
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
        no_cache=no_cache,
    )
    out_dir = output_dir(output, grid)
    try:
        run_experiment(cfg, out_dir, console=Console(stderr=True), until="synthesis", submit_only=submit_only)
    except PendingWork as pending:
        Console().print(f"submitted: {pending.message}\n{pending.hint}", highlight=False, soft_wrap=True)
        return
    sets = sorted(  # a set is a finished folder with data.jsonl (its contamination check is a stage inside it)
        p.parent for p in (out_dir / "synthetic").rglob("done.json") if (p.parent / "data.jsonl").is_file()
    )
    Console().print(
        "\n".join(f"{p} ({sum(1 for _ in (p / 'data.jsonl').open())} rows)" for p in sets) or "no synthetic sets"
    )
