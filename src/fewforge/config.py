"""The resolved configuration of an experiment: every default filled in, written to config.yaml.

Fields marked `semantic=False` (paths, concurrency, limits on what is shown) cannot change results and
stay out of fingerprints, so tuning them never invalidates finished work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fewforge.errors import ConfigError

Condition = Literal["real", "real+synthetic", "synthetic"]
LMBFF_SEEDS = [13, 21, 42, 87, 100]


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field("bbc", description="built-in task name, or path to a task YAML/TOML file")
    data: str | None = Field(
        None,
        description="data directory with <task>/train.jsonl (pool) and dev.jsonl (test); "
        "default: $FEWFORGE_DATA, else the packaged BBC News corpus for the bbc task",
        json_schema_extra={"semantic": False},
    )
    shots: int = Field(16, ge=1, description="k examples per class for few-shot train (and again for dev), LM-BFF")
    # Three of LM-BFF's five seeds keep the default run under 15 minutes on 2 cores (docs/fidelity.md).
    seeds: list[int] = Field([13, 21, 42], min_length=1, description="few-shot sampling seeds (LM-BFF: 13,21,42,87,100)")
    generator: str = Field("smollm2", description="generator spec: smollm2 | gemma3-270m | llamacpp:PATH.gguf | hf:PATH_OR_ID | openai:MODEL@URL")
    method: str = Field("zerogen", description="synthesis method")
    per_label: int = Field(100, ge=1, description="synthetic examples per label")
    method_options: dict[str, Any] = Field(default_factory=dict, description="extra options of the synthesis method's config")
    synthesis_seed: int = Field(0, description="sampling seed of the generator")
    learner: str = Field("encoder", description="target model learner")
    learner_options: dict[str, Any] = Field(default_factory=dict, description="extra options of the learner's config")
    conditions: list[Condition] = Field(
        ["real", "real+synthetic"], min_length=1, description="training data conditions to compare"
    )
    max_test: int | None = Field(
        None, ge=1, description="evaluate on a deterministic subset of at most this many test rows (default: all)"
    )
    cache: bool = Field(True, description="use the persistent generation cache", json_schema_extra={"semantic": False})
    save_models: bool = Field(True, description="save trained models in the run directory", json_schema_extra={"semantic": False})

    @field_validator("seeds", "conditions")
    @classmethod
    def _unique(cls, values: list) -> list:
        if len(set(values)) != len(values):
            raise ValueError(f"duplicates in {values}")
        return values

    @classmethod
    def build(cls, **values: Any) -> "RunConfig":
        """Validate user values; any problem becomes one ConfigError line naming the field."""
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "config"
            raise ConfigError(
                f"invalid option {where}: {first['msg']}",
                hint=f"valid options: {', '.join(cls.model_fields)}",
            ) from None

    @classmethod
    def from_yaml(cls, path: Path) -> "RunConfig":
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}".splitlines()[0]) from None
        if not isinstance(values, dict):
            raise ConfigError(f"config {path} must be a mapping of option: value")
        return cls.build(**values)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def semantic(self) -> dict[str, Any]:
        """The fields that can change results (for fingerprints)."""
        skip = {
            name
            for name, info in type(self).model_fields.items()
            if (info.json_schema_extra or {}).get("semantic") is False
        }
        return self.model_dump(mode="json", exclude=skip)
