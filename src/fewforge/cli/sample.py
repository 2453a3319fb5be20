from __future__ import annotations

from rich.console import Console

from fewforge.cli.options import DEFAULTS, DataOpt, RunOutputOpt, SeedsOpt, ShotsOpt, TaskOpt, default_seeds, parse_seeds


def sample(
    output: RunOutputOpt,
    task: TaskOpt = DEFAULTS.task,
    data: DataOpt = None,
    shots: ShotsOpt = DEFAULTS.shots,
    seeds: SeedsOpt = default_seeds(),
) -> None:
    """Sample LM-BFF few-shot splits (k per class train + dev) into OUTPUT/fewshot/seed*/."""
    from fewforge.config import RunConfig
    from fewforge.pipeline import prepare, sample_stage

    console = Console(stderr=True)
    cfg = RunConfig.build(task=task, data=data, shots=shots, seeds=parse_seeds(seeds))
    exp = prepare(cfg, output, console)
    for seed in cfg.seeds:
        split, _ = sample_stage(exp, seed)
        console.print(f"seed {seed}: train {len(split.train)}, dev {len(split.dev)} → {exp.run.split_dir(seed)}")
