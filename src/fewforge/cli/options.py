"""Options shared by several commands, declared once, and how they turn into a grid config."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml

from fewforge.cli import choices
from fewforge.config import DEFAULT_GRID, RunConfig
from fewforge.errors import ConfigError

_f = RunConfig.model_fields
DEFAULTS = RunConfig.default_run()  # what `fewforge run` does without a grid file; the help shows it


def _default(name: str) -> str:
    value = getattr(DEFAULTS, name)
    if isinstance(value, list):
        value = ",".join(str(getattr(v, "label", v)) for v in value)
    return f" \\[default: {value}]"  # escaped: rich markup would take [default: ...] for a style tag and drop it


GridArg = Annotated[
    Optional[Path],
    typer.Argument(help="a grid YAML file (see examples/); without one, the built-in default grid", show_default=False),
]
TasksOpt = Annotated[
    Optional[str],
    typer.Option(
        "--task", "-t", help="comma-separated " + _f["tasks"].description + _default("tasks"), show_default=False
    ),
]
DataOpt = Annotated[Optional[str], typer.Option("--data", "-d", help=_f["data"].description, show_default=False)]
ShotsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--shots",
        "-k",
        help="comma-separated " + _f["shots"].description + "; sets it for every learner" + _default("shots"),
        show_default=False,
    ),
]
SeedsOpt = Annotated[
    Optional[str],
    typer.Option("--seeds", help="comma-separated " + _f["seeds"].description + _default("seeds"), show_default=False),
]
PerLabelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--per-label",
        "-n",
        help="comma-separated " + _f["per_label"].description + _default("per_label"),
        show_default=False,
    ),
]
NumSyntheticOpt = Annotated[
    Optional[str],
    typer.Option(
        "--num-synthetic",
        help="comma-separated " + (_f["num_synthetic"].description or "") + " (instead of --per-label)",
        show_default=False,
    ),
]
GeneratorOpt = Annotated[
    Optional[str],
    typer.Option(
        "--generator", "-g", help=f"generator spec: {choices.generators()}" + _default("generator"), show_default=False
    ),
]
MethodOpt = Annotated[
    Optional[str],
    typer.Option(
        "--method",
        help=f"comma-separated synthesis methods: {choices.methods()} (those that tune the generator need "
        "--generator hf:smollm2 or hf:MODEL)" + _default("methods"),
        show_default=False,
    ),
]
CurateOpt = Annotated[
    Optional[str],
    typer.Option(
        "--curate",
        help="label-audit every method's set: comma-separated KEY=VALUE, e.g. "
        "auditor=fewshot,action=filter,threshold=0.5 (auditor: fewshot | generator | teacher; action: keep | "
        "filter (threshold= or bottom=) | relabel (confidence=) | weight; options.NAME=VALUE: an auditor "
        "option); classification tasks only",
        show_default=False,
    ),
]
LearnerOpt = Annotated[
    Optional[str],
    typer.Option(
        "--learner",
        help=f"comma-separated learners (default options): {choices.learners()}" + _default("learners"),
        show_default=False,
    ),
]
MaxTestOpt = Annotated[Optional[int], typer.Option("--max-test", help=_f["max_test"].description, show_default=False)]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="bypass the generation cache")]
OutputOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--output",
        "-o",
        help="run directory, resumed on a rerun \\[default: runs/<grid file name>, or runs/default]",
        show_default=False,
    ),
]


def _ints(text: str, option: str) -> list[int]:
    from fewforge.errors import ConfigError

    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"invalid {option} {text!r}", hint="use comma-separated integers, e.g. 13,21,42") from None


def _names(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def build_config(
    grid: Path | None,
    *,
    task: str | None = None,
    data: str | None = None,
    shots: str | None = None,
    seeds: str | None = None,
    per_label: str | None = None,
    num_synthetic: str | None = None,
    generator: str | None = None,
    method: str | None = None,
    learner: str | None = None,
    max_test: int | None = None,
    no_cache: bool = False,
    curate: str | None = None,
) -> RunConfig:
    """The grid file (or the default run's grid) with the options typed on the command line setting whole axes."""
    if grid is not None:
        RunConfig.from_yaml(grid)  # the file's own mistakes, named with its path, before options change it
    values = RunConfig.read_values(grid if grid is not None else DEFAULT_GRID)
    if learner:
        values["learners"] = [{"name": n} for n in _names(learner)]
    elif task and grid is None:
        values["learners"] = _default_learners(_names(task))
    if method:
        values["methods"] = [{"name": n} for n in _names(method)]
    if curate:  # every method of the grid gets the same audit
        methods = _entries(values["methods"]) if "methods" in values else [{"name": "zerogen"}]
        spec = curate_options(curate)
        values["methods"] = [{**m, "curate": spec} for m in methods]
    if per_label and num_synthetic:
        raise ConfigError("--per-label and --num-synthetic both set the synthetic size", hint="give one of them")
    if num_synthetic:  # a total given on the command line replaces the grid's per-label sizes
        values.pop("per_label", None)
    elif per_label:
        values.pop("num_synthetic", None)
    if (shots or per_label or num_synthetic) and "learners" in values:  # it applies to every learner
        values["learners"] = [
            {**spec, **({"shots": None} if shots else {}), **({"per_label": None} if per_label or num_synthetic else {})}
            for spec in _entries(values["learners"])
        ]
    given = {
        "tasks": _names(task) if task else None,
        "data": data,
        "shots": _ints(shots, "--shots") if shots else None,
        "seeds": _ints(seeds, "--seeds") if seeds else None,
        "per_label": _ints(per_label, "--per-label") if per_label else None,
        "num_synthetic": _ints(num_synthetic, "--num-synthetic") if num_synthetic else None,
        "generator": generator,
        "max_test": max_test,
        "cache": False if no_cache else None,
    }
    return RunConfig.build(**{**values, **{k: v for k, v in given.items() if v is not None}})


def _entries(value: Any) -> list[dict[str, Any]]:
    """A grid file's `methods:` or `learners:` as written (one bare name, a list of names or mappings) as
    mappings."""
    from fewforge.config import _as_list

    return [{"name": v} if isinstance(v, str) else dict(v) for v in _as_list(value)]


def _default_learners(tasks: list[str]) -> list[dict[str, Any]]:
    """`fewforge run --task T` without a grid file: the default run's learners that serve one of T's kinds
    (with their restrictions), plus each kind's own students (`--task adversarialqa` trains qa-encoder)."""
    from fewforge.config import default_learners
    from fewforge.learners import get_learner
    from fewforge.tasks import load_task

    kinds = {load_task(t).kind for t in tasks}
    specs = [s.model_dump(exclude_unset=True) for s in DEFAULTS.learners if kinds & set(get_learner(s.name).kinds)]
    return specs + [s for s in default_learners(tasks) if s["name"] not in {x["name"] for x in specs}]


def output_dir(output: Path | None, grid: Path | None) -> Path:
    """--output, else runs/<grid file name>: the grid's name becomes a folder, so it is checked as one."""
    from fewforge.names import check_name

    return output or Path("runs") / (check_name(grid.stem, "grid file name") if grid is not None else "default")


def command_line() -> str:
    """The command as typed (for reports): `fewforge <arguments>`."""
    return "fewforge " + shlex.join(sys.argv[1:])


# Single-model commands (train, evaluate) take one task and one learner.
TaskOpt = Annotated[str, typer.Option("--task", "-t", help="built-in task name, or path to a task YAML/TOML file")]
OneLearnerOpt = Annotated[
    str, typer.Option("--learner", help=f"learner: {choices.learners()}")
]


def curate_options(text: str) -> dict[str, Any]:
    """`--curate auditor=fewshot,action=filter,threshold=0.5` as a `curate:` mapping; `options.NAME=VALUE`
    sets an auditor option."""
    values: dict[str, Any] = {}
    for pair in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--curate {pair!r} is not KEY=VALUE", hint="e.g. --curate auditor=fewshot,action=keep")
        values[key.strip()] = yaml.safe_load(value) if value.strip() else None
    options = {k.removeprefix("options."): v for k, v in values.items() if k.startswith("options.")}
    out = {k: v for k, v in values.items() if not k.startswith("options.")}
    return {**out, "options": options} if options else out


def learner_options(pairs: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings as learner options; values read as YAML scalars (200, 0.3, true, null, text)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option {pair!r} is not KEY=VALUE", hint="e.g. --option max_steps=200")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = value
    return out
RunDirOpt = Annotated[Path, typer.Option("--output", "-o", help="run directory")]
