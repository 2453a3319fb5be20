"""The synthesis-method contract: (task, real few-shot data, generator) -> a synthetic dataset.

A method is one module holding a pydantic `Config` (with a `version`, bumped whenever the method's
output changes for the same config, so stale results are never reused) and a class implementing
`synthesize`. Register it in `fewforge/synthesis/__init__.py`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from pydantic import BaseModel, ConfigDict

from fewforge.data.schema import Example
from fewforge.generators.base import Generator
from fewforge.tasks.base import Task


class MethodConfig(BaseModel):
    """Base of every method's config: typos are errors, not silently ignored options."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = 1


@dataclass
class SyntheticDataset:
    examples: list[Example]
    # data card: counts per label, filters applied with drop counts and reasons, model, timing
    card: dict[str, Any] = field(default_factory=dict)

    def label_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(e.label for e in self.examples).items()))

    def save(self, directory: Path, name: str) -> Path:
        """Write <name>.jsonl (+ .parquet) and <name>.card.json; returns the JSONL path."""
        from fewforge.data.io import write_jsonl, write_parquet

        directory.mkdir(parents=True, exist_ok=True)
        path = write_jsonl(directory / f"{name}.jsonl", self.examples)
        write_parquet(directory / f"{name}.parquet", self.examples)
        card = {**self.card, "count": len(self.examples), "per_label": self.label_counts()}
        (directory / f"{name}.card.json").write_text(json.dumps(card, indent=2, default=str))
        return path


class SynthesisMethod(ABC):
    name: ClassVar[str]
    Config: ClassVar[type[MethodConfig]]

    def __init__(self, config: MethodConfig | None = None) -> None:
        self.config = config if config is not None else self.Config()

    @abstractmethod
    def synthesize(
        self,
        task: Task,
        real: Sequence[Example],
        generator: Generator,
        *,
        pool: Sequence[Example] = (),
        progress: Callable[[int, int], None] | None = None,
    ) -> SyntheticDataset:
        """Make labeled synthetic examples.

        `real` is the labeled few-shot train set; `pool` holds unlabeled real inputs a method may
        condition on (pair tasks draw their first sentence from it; labels there are ignored).
        `progress(done, total)` reports generated prompts.
        """
