"""The experiment grid: its axes, every default filled in, written to the run directory as config.yaml.

A grid is tasks × shots × seeds × synthesis methods (× synthetic sizes) × learners × conditions.
`fewforge run grid.yaml` reads one; the CLI options (`--task`, `--shots`, ...) set whole axes, so a
single `fewforge run --task sst2 --shots 16` is a grid too. Lists may be written as a single value
(`tasks: sst2`), and methods and learners as a bare name (`learners: [linear-probe, encoder]`).

Fields marked `semantic=False` (paths, the description, caching, what is saved) cannot change results
and stay out of fingerprints, so editing them never invalidates finished work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from fewforge.errors import ConfigError
from fewforge.evaluation.contamination import ContaminationConfig

Condition = Literal["real", "real+synthetic", "synthetic"]
CONDITIONS: tuple[str, ...] = ("real", "real+synthetic", "synthetic")
LMBFF_SEEDS = [13, 21, 42, 87, 100]
_NOT_SEMANTIC = {"semantic": False}


class MethodSpec(BaseModel):
    """One synthesis method of the grid, with its options (validated against the method's Config)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="registered synthesis method, e.g. zerogen")
    id: str | None = Field(
        None, description="name in records and folders (default: name); needed when a method appears twice"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="options of the method's config")
    curate: dict[str, Any] | None = Field(
        None,
        description="label audit of the method's set (synthesis/curation): {auditor: fewshot | generator | teacher, "
        "action: keep | filter | relabel | weight, threshold, bottom, confidence, normalize, options}",
    )

    @property
    def label(self) -> str:
        return self.id or self.name


class LearnerSpec(BaseModel):
    """One learner of the grid, with its options; `shots`/`per_label` restrict where it runs."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="registered learner, e.g. linear-probe or encoder")
    id: str | None = Field(
        None, description="name in records and folders (default: name); needed when a learner appears twice"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="options of the learner's config")
    tasks: list[str] | None = Field(
        None, description="run only on these tasks (names; default: every task of the grid)"
    )
    shots: list[int] | None = Field(None, description="run only at these shots values (default: every one of the grid)")
    per_label: list[int] | None = Field(None, description="run only at these synthetic sizes (default: every one)")
    conditions: list[Condition] | None = Field(
        None, description="train only in these conditions (default: every one of the grid), e.g. [real] for a baseline"
    )
    strategies: list[str] | None = Field(
        None,
        description="mixing strategies of its real+synthetic cells, one cell each (e.g. [real+syn, paired, "
        "paired+gs]); default: the learner's `strategy` option, one cell",
    )
    resources: dict[str, float] | None = Field(
        None,
        description="what each of its cells asks an executor for, overriding the learner's defaults: cpus, gpus "
        "(0.5 packs two cells on one GPU), memory_gb",
        json_schema_extra=_NOT_SEMANTIC,
    )
    baseline: str | None = Field(
        None,
        description="id of the learner whose real-only cells this learner's Δ is measured against (default: "
        "its own), for a variant listed under its own id, e.g. prompt-tuning+ls against prompt-tuning",
        json_schema_extra=_NOT_SEMANTIC,
    )

    @property
    def label(self) -> str:
        return self.id or self.name

    @field_validator("tasks", "shots", "per_label", "strategies", "conditions", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("resources")
    @classmethod
    def _resources(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        unknown = sorted(set(value or {}) - {"cpus", "gpus", "memory_gb"})
        if unknown:
            raise ValueError(f"unknown resources {unknown}: give cpus, gpus and/or memory_gb")
        if any(v < 0 for v in (value or {}).values()):
            raise ValueError("resources are numbers >= 0")
        return value


def _as_list(value: Any) -> Any:
    if value is None or isinstance(value, (list, tuple)):
        return value
    if isinstance(value, str) and "," in value:
        return [v.strip() for v in value.split(",") if v.strip()]
    return [value]


# The default run (README) is a grid file like any other: its own restrictions (the encoder at one shots
# value) live there, never in the field defaults below, which must be valid for every grid.
DEFAULT_GRID = Path(__file__).with_name("default-run.yaml")
DEFAULT_PER_LABEL = [10, 30]
# What a grid that names no learner trains on its classification tasks; other kinds add their own students.
CLASSIFICATION_LEARNERS = ("linear-probe", "encoder")


def default_learners(tasks: list[Any]) -> list[dict[str, Any]]:
    """The learners of a grid that names none: the classification learners when a task classifies, plus each
    task kind's own students (qa-encoder for extractive QA, causal-lm for text-to-text), each once."""
    from fewforge.errors import FewforgeError
    from fewforge.tasks import load_task

    names: list[str] = []
    for spec in tasks:
        try:
            kind = load_task(spec).spec
        except FewforgeError:  # planning reports the bad task with its own error; it needs no learner for it
            continue
        names += [*(CLASSIFICATION_LEARNERS if kind.classification else ()), *kind.default_learners]
    return [{"name": n} for n in dict.fromkeys(names or CLASSIFICATION_LEARNERS)]


class RunConfig(BaseModel):
    """An experiment grid. Every field is an axis or a setting shared by all cells."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(
        "", description="what this grid measures (shown in the report)", json_schema_extra=_NOT_SEMANTIC
    )
    tasks: list[str] = Field(["bbc"], min_length=1, description="built-in task names or task YAML/TOML files")
    data: str | None = Field(
        None,
        description="data directory with <task>/train.jsonl (pool) and dev.jsonl (test); relative paths in a "
        "grid file are relative to that file; default: $FEWFORGE_DATA, else the packaged BBC News corpus",
        json_schema_extra=_NOT_SEMANTIC,
    )
    shots: list[int] = Field(
        [2, 4, 8, 16], min_length=1, description="k examples per class for few-shot train (and again for dev), LM-BFF"
    )
    # Three of LM-BFF's five seeds keep the default run under 10 minutes on 2 cores (docs/fidelity.md).
    seeds: list[int] = Field(
        [13, 21, 42], min_length=1, description="few-shot sampling seeds (LM-BFF: 13,21,42,87,100)"
    )
    generator: str = Field(
        "smollm2",
        description="generator spec: smollm2 | gemma3-270m | llamacpp:PATH.gguf | hf:smollm2 | hf:PATH_OR_ID | openai:MODEL@URL",
    )
    generator_options: dict[str, Any] = Field(
        default_factory=dict, description="options of the generator backend (e.g. n_parallel, device, chat)"
    )
    methods: list[MethodSpec] = Field(
        default_factory=lambda: [MethodSpec(name="zerogen")], description="synthesis methods"
    )
    per_label: list[int] = Field(
        default_factory=lambda: list(DEFAULT_PER_LABEL),
        min_length=1,
        description="synthetic examples per label; several values train on the first n per label of one generated set",
    )
    num_synthetic: list[int] | None = Field(
        None,
        description="total synthetic sizes instead of per_label: split evenly over a task's labels (the whole size "
        "for QA and text-to-text tasks)",
    )
    learners: list[LearnerSpec] = Field(
        min_length=1,
        description="target learners; default: linear-probe and encoder for classification tasks, and each other "
        "task kind's own student (qa-encoder, causal-lm)",
    )
    conditions: list[Condition] = Field(
        ["real", "real+synthetic"],
        min_length=1,
        description="training data: real only, real + synthetic, synthetic only",
    )
    max_test: int | None = Field(
        None, ge=1, description="evaluate on a deterministic subset of at most this many test rows (default: all)"
    )
    executor: str = Field(
        "local",
        description="where cells run: local | processes:N | ray[:ADDRESS] | slurm:PARTITION[,time=MIN,gpus=N,"
        "parallel=N] (README: Running a grid on many GPUs or a cluster)",
        json_schema_extra=_NOT_SEMANTIC,
    )
    cache: bool = Field(True, description="use the persistent generation cache", json_schema_extra=_NOT_SEMANTIC)
    save_models: bool = Field(
        False, description="save every trained model in its cell folder", json_schema_extra=_NOT_SEMANTIC
    )
    contamination: ContaminationConfig = Field(
        default_factory=ContaminationConfig,
        description="check every synthetic set against the test rows and the few-shot dev rows (exact, n-gram, "
        "MiniLM near-copies); `drop: true` drops flagged rows before training",
    )

    @model_validator(mode="before")
    @classmethod
    def _learners_for_the_tasks(cls, values: Any) -> Any:
        """No `learners:`: the grid's own tasks decide them, so a minimal grid of any kind plans."""
        if isinstance(values, dict) and values.get("learners") is None:
            tasks = _as_list(values.get("tasks")) or cls.model_fields["tasks"].default
            values = {**values, "learners": default_learners(tasks)}
        return values

    @field_validator("tasks", "shots", "seeds", "per_label", "conditions", "methods", "learners", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _as_list(value)

    @field_serializer("generator", "generator_options")
    def _redacted(self, value: Any) -> Any:
        """Credentials written inside a server URL are used, never written: config.yaml, results.json,
        cards and logs all hold this dump."""
        from fewforge.generators.urls import redact_value

        return redact_value(value)

    @field_validator("methods", "learners", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return [{"name": v} if isinstance(v, str) else v for v in value] if isinstance(value, list) else value

    @field_validator("tasks", "shots", "seeds", "per_label", "conditions")
    @classmethod
    def _unique(cls, values: list) -> list:
        if len(set(values)) != len(values):
            raise ValueError(f"duplicates in {values}")
        return values

    @field_validator("num_synthetic", mode="before")
    @classmethod
    def _listify_total(cls, value: Any) -> Any:
        return _as_list(value) if value is not None else None

    @field_validator("shots", "per_label", "num_synthetic")
    @classmethod
    def _positive(cls, values: list[int] | None) -> list[int] | None:
        if values is None:
            return values
        if len(set(values)) != len(values):
            raise ValueError(f"duplicates in {values}")
        if any(v < 1 for v in values):
            raise ValueError(f"every value must be at least 1, got {values}")
        return values

    @model_validator(mode="after")
    def _check(self) -> "RunConfig":
        # (a saved config.yaml holds the default per_label beside num_synthetic: that reads back)
        if self.num_synthetic is not None and list(self.per_label) != list(DEFAULT_PER_LABEL):
            raise ValueError("give the synthetic size once: per_label (per label) or num_synthetic (in all)")
        for kind, specs in (("method", self.methods), ("learner", self.learners)):
            labels = [s.label for s in specs]
            twice = sorted({x for x in labels if labels.count(x) > 1})
            if twice:
                raise ValueError(f"{kind} {twice[0]!r} appears twice: give each entry its own `id`")
        return self

    def sizes(self, n_groups: int) -> list[int]:
        """Synthetic examples per label for a task with `n_groups` labels (1 without labels)."""
        if self.num_synthetic is None:
            return list(self.per_label)
        return list(dict.fromkeys(max(1, n // n_groups) for n in self.num_synthetic))

    @property
    def uses_synthetic(self) -> bool:
        return any(c != "real" for c in self.conditions)

    # -- reading and writing ---------------------------------------------------------------------

    @classmethod
    def build(cls, **values: Any) -> "RunConfig":
        """Validate user values; any problem becomes one ConfigError naming the key path."""
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            raise config_error(exc, cls) from None

    @classmethod
    def from_yaml(cls, path: Path) -> "RunConfig":
        path = Path(path)
        values = cls.read_values(path)
        try:
            return cls(**values)
        except ValidationError as exc:
            raise config_error(exc, cls, source=str(path)) from None

    @classmethod
    def default_run(cls) -> "RunConfig":
        """`fewforge run` with no grid file."""
        return cls.from_yaml(DEFAULT_GRID)

    @classmethod
    def read_values(cls, path: Path) -> dict[str, Any]:
        """A grid file's keys as written (a relative `data:` resolved against the file), not yet validated:
        what the file leaves out stays out, so options given on the command line can still decide it."""
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"grid file {path} not found", hint="check the path") from None
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read grid file {path}: {exc}".splitlines()[0]) from None
        if not isinstance(values, dict):
            raise ConfigError(
                f"grid file {path} must be a mapping of key: value", hint=f"valid keys: {', '.join(cls.model_fields)}"
            )
        data = values.get("data")
        if isinstance(data, str) and data and not data.startswith("hub:") and not Path(data).expanduser().is_absolute():
            values["data"] = str((path.parent / data).resolve())
        return values

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    def semantic(self) -> dict[str, Any]:
        """The fields that can change results (for fingerprints and change reports)."""
        skip = {
            name for name, info in type(self).model_fields.items() if (info.json_schema_extra or {}) == _NOT_SEMANTIC
        }
        if not self.contamination.drop:  # the check alone changes no result, only what cards report
            skip.add("contamination")
        out = self.model_dump(mode="json", exclude=skip)
        for spec in out.get("learners", []):  # where cells run changes no result
            spec.pop("resources", None)
        return out


def key_path(loc: tuple[Any, ...]) -> str:
    """('learners', 1, 'options') -> 'learners[1].options'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "config"


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Valid keys of the (nested) model that holds `loc`'s last part."""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        inner = field.annotation
        for arg in (*getattr(inner, "__args__", ()), inner):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                model = arg
                break
            for sub in getattr(arg, "__args__", ()):
                if isinstance(sub, type) and issubclass(sub, BaseModel):
                    model = sub
                    break
        else:
            return []
    return list(model.model_fields)


def config_error(exc: ValidationError, model: type[BaseModel], source: str = "", path: str = "") -> ConfigError:
    """The first pydantic problem as one line naming its key path (`path` prefixes it, e.g.
    'learners[1].options'), with the valid keys at that level as the hint."""
    first = exc.errors()[0]
    loc = tuple(first["loc"])
    where = ".".join(p for p in (path, key_path(loc) if loc else "") if p) or "config"
    prefix = f"{source}: " if source else ""
    valid = _fields_at(model, loc)
    hint = f"valid keys here: {', '.join(valid)}" if valid else ""
    if first["type"] == "extra_forbidden":
        return ConfigError(f"{prefix}unknown key {where!r}", hint=hint)
    value = first.get("input")
    got = f" (got {value!r})" if isinstance(value, (str, int, float, bool, list)) and len(repr(value)) < 80 else ""
    msg = first["msg"].removeprefix("Value error, ")
    return ConfigError(f"{prefix}invalid {where}: {msg}{got}", hint=hint)
