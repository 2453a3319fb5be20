"""Help text listing what is registered (methods, learners, strategies, generator backends), read from the
registries themselves so a new registration appears in `--help` without editing it. The registries hold
names only until a lookup, so building these strings imports no method, learner or backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fewforge.config import RunConfig


def methods() -> str:
    from fewforge.synthesis import METHODS

    return ", ".join(METHODS.names())


def learners() -> str:
    from fewforge.learners import LEARNERS

    return ", ".join(LEARNERS.names())


def strategies() -> str:
    from fewforge.learners.strategies import STRATEGIES

    return " | ".join(STRATEGIES.names())


def generators() -> str:
    """The packaged names, then every backend as NAME:ARG."""
    from fewforge.generators import GENERATORS

    return "smollm2 | gemma3-270m | " + " | ".join(f"{name}:ARG" for name in GENERATORS.names())


def default_run(cfg: "RunConfig") -> str:
    """One sentence on what `fewforge run` does without a grid file, read from the default run's grid, so
    the help cannot say 4 shots while the grid says 2."""

    def joined(values: list) -> str:
        return "/".join(str(v) for v in values)

    parts = []
    for spec in cfg.learners:
        where = [f"at {joined(spec.shots)} shots"] if spec.shots else []
        where += [f"with {joined(spec.per_label)} synthetic per label"] if spec.per_label else []
        parts.append(f"{spec.label} {' '.join(where) or 'at every point'}")
    methods_ = ", ".join(m.label for m in cfg.methods)
    return (
        f"{', '.join(cfg.tasks)}, {' vs '.join(cfg.conditions)} with {methods_} data from {cfg.generator}, "
        f"{joined(cfg.per_label)} synthetic per label, shots {joined(cfg.shots)}, seeds {joined(cfg.seeds)}; "
        f"learners: {'; '.join(parts)}"
    )
