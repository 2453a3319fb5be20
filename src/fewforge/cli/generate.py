from __future__ import annotations

from rich.console import Console

from fewforge.cli.options import (
    DEFAULTS,
    DataOpt,
    GeneratorOpt,
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


def generate(
    output: RunOutputOpt,
    task: TaskOpt = DEFAULTS.task,
    data: DataOpt = None,
    shots: ShotsOpt = DEFAULTS.shots,
    seeds: SeedsOpt = default_seeds(),
    generator: GeneratorOpt = DEFAULTS.generator,
    method: MethodOpt = DEFAULTS.method,
    per_label: PerLabelOpt = DEFAULTS.per_label,
    no_cache: NoCacheOpt = False,
) -> None:
    """Synthesize labeled data for each few-shot split into OUTPUT/synthetic/seed*/ (resumable)."""
    from fewforge.config import RunConfig
    from fewforge.pipeline import open_generator, prepare, sample_stage, synthesis_stage

    console = Console(stderr=True)
    cfg = RunConfig.build(
        task=task, data=data, shots=shots, seeds=parse_seeds(seeds), generator=generator,
        method=method, per_label=per_label, cache=not no_cache,
    )
    exp = prepare(cfg, output, console)
    gen = open_generator(exp)
    try:
        for seed in cfg.seeds:
            split, split_fp = sample_stage(exp, seed)
            examples, _ = synthesis_stage(exp, split, split_fp, gen)
            console.print(f"seed {seed}: {len(examples)} synthetic examples → {exp.run.synthetic_dir(seed)}")
        console.print(f"generation cache: {gen.stats()}")
    finally:
        gen.close()
