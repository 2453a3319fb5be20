"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fewforge.config import RunConfig

_f = RunConfig.model_fields

TaskOpt = Annotated[str, typer.Option("--task", "-t", help=_f["task"].description)]
DataOpt = Annotated[Optional[str], typer.Option("--data", "-d", help=_f["data"].description, show_default=False)]
ShotsOpt = Annotated[int, typer.Option("--shots", "-k", help=_f["shots"].description)]
SeedsOpt = Annotated[str, typer.Option("--seeds", help="comma-separated " + _f["seeds"].description)]
GeneratorOpt = Annotated[str, typer.Option("--generator", "-g", help=_f["generator"].description)]
MethodOpt = Annotated[str, typer.Option("--method", help=_f["method"].description)]
PerLabelOpt = Annotated[int, typer.Option("--per-label", "-n", help=_f["per_label"].description)]
LearnerOpt = Annotated[str, typer.Option("--learner", help=_f["learner"].description)]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="bypass the generation cache")]
RunOutputOpt = Annotated[Path, typer.Option("--output", "-o", help="run directory (a rerun resumes there)")]

DEFAULTS = RunConfig()


def parse_seeds(text: str) -> list[int]:
    from fewforge.errors import ConfigError

    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"invalid --seeds {text!r}", hint="use comma-separated integers, e.g. 13,21,42") from None


def default_seeds() -> str:
    return ",".join(map(str, DEFAULTS.seeds))
