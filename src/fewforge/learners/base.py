"""The learner contract: fit on labeled examples with early stopping on a dev set, then predict.

A learner is one module holding a pydantic `Config` and a class implementing this interface;
register it in `fewforge/learners/__init__.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from pydantic import BaseModel, ConfigDict

from fewforge.data.schema import Example
from fewforge.tasks.base import Task


class LearnerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = 1


@dataclass
class FitReport:
    best_dev_accuracy: float
    best_step: int
    steps: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)  # {"step", "loss", "dev_accuracy"}


class Learner(ABC):
    name: ClassVar[str]
    Config: ClassVar[type[LearnerConfig]]

    def __init__(self, task: Task, config: LearnerConfig | None = None, *, seed: int = 0) -> None:
        self.task = task
        self.config = config if config is not None else self.Config()
        self.seed = seed

    @abstractmethod
    def fit(
        self,
        train: Sequence[Example],
        dev: Sequence[Example],
        *,
        synthetic: Sequence[Example] = (),
        progress: Callable[[int, int], None] | None = None,
    ) -> FitReport:
        """Train on real `train` (+ `synthetic`), keep the checkpoint with the best `dev` accuracy.

        Real and synthetic data come separately so that a learner's training strategy (mixed,
        curriculum, paired, gradient surgery) decides how to combine them. progress(step, total).
        """

    @abstractmethod
    def predict(self, examples: Sequence[Example]) -> list[str]:
        """Label names, one per example."""

    @abstractmethod
    def save(self, directory: Path) -> None: ...

    @classmethod
    @abstractmethod
    def load(cls, task: Task, directory: Path) -> "Learner": ...
