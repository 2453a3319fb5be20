from __future__ import annotations

from rich.console import Console

from fewforge.cli.options import DataOpt, GridArg, OutputOpt, SeedsOpt, ShotsOpt, TasksOpt, build_config, output_dir


def sample(
    grid: GridArg = None,
    task: TasksOpt = None,
    data: DataOpt = None,
    shots: ShotsOpt = None,
    seeds: SeedsOpt = None,
    output: OutputOpt = None,
) -> None:
    """Sample the LM-BFF few-shot splits of a grid (k per class train + dev) into OUTPUT/fewshot/."""
    from fewforge.pipeline import run_experiment

    cfg = build_config(grid, task=task, data=data, shots=shots, seeds=seeds)
    out_dir = output_dir(output, grid)
    run_experiment(cfg, out_dir, console=Console(stderr=True), until="sample")
    splits = sorted(p.parent for p in (out_dir / "fewshot").rglob("done.json") if "_stale" not in p.parts)
    Console().print("\n".join(str(p) for p in splits))
