from __future__ import annotations

from rich.console import Console

from fewforge.cli.options import (
    CurateOpt,
    DataOpt,
    GeneratorOpt,
    GridArg,
    MethodOpt,
    NumSyntheticOpt,
    OutputOpt,
    PerLabelOpt,
    SeedsOpt,
    ShotsOpt,
    TasksOpt,
    build_config,
    output_dir,
)


def estimate(
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
    output: OutputOpt = None,
) -> None:
    """What generating a grid's synthetic sets will cost, before a run: requests (minus what the cache in
    OUTPUT already holds), prompt and output tokens, dollars (generator_options.price) and hours (rpm,
    tpm). Read-only: works beside a running grid."""
    cfg = build_config(
        grid, task=task, data=data, shots=shots, seeds=seeds, per_label=per_label, num_synthetic=num_synthetic,
        generator=generator, method=method, curate=curate,
    )
    show_estimate(cfg, output_dir(output, grid))


def show_estimate(cfg, out_dir) -> None:  # noqa: ANN001 - RunConfig, Path (kept import-light)
    from fewforge.estimate import estimate as costs_of
    from fewforge.estimate import render
    from fewforge.grid import plan_grid

    plan = plan_grid(cfg)
    render(costs_of(plan, out_dir), plan, Console(width=200))
