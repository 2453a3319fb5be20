"""The learner contract: fit on real (+ synthetic) examples with model selection on a dev set, then
predict labels and probabilities.

A learner is one module holding a pydantic `Config` and a class implementing this interface; register
it in `fewforge/learners/__init__.py`. A learner whose training is random subclasses `SeededLearner` and
writes `_train`: checking inputs, seeding, threads and timing are done once there. Inputs may be lists
of `Example`s or `datasets.Dataset`s; `predict` and `predict_proba` also take plain strings (tuples of
two strings for pair tasks).

How real and synthetic rows are combined is the config's `strategy` (learners/strategies.py). In a grid
the condition decides it: real-only cells train with "real", synthetic-only cells with "syn", and
real + synthetic cells with the learner's own mixing strategy (default "paired", the fair rule of
docs/fidelity.md: adding synthetic data never means seeing the real rows less).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from fewforge.data.schema import Example
from fewforge.errors import ConfigError, DataError
from fewforge.tasks.base import Task
from fewforge.tasks.kinds import kind_names

CONDITION_STRATEGY = {"real": "real", "synthetic": "syn"}  # real+synthetic: the learner's own strategy


class LearnerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = 1
    strategy: str = "paired"


@dataclass
class FitReport:
    best_dev_accuracy: float
    best_step: int
    steps: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)  # {"step", "loss", "dev_accuracy", ...}
    extra: dict[str, Any] = field(default_factory=dict)  # learner-specific facts (chosen C, real/syn weights)
    surgery: list[dict[str, Any]] = field(default_factory=list)  # per step: cosine, conflict, removed_norm
    # `paired+reweight`: each synthetic row's mean learned weight over the run (None: never drawn), input order
    row_weights: list[float | None] = field(default_factory=list)


def label_ids(task: Task, examples: Sequence[Example], what: str) -> list[int]:
    """Label indices in the task's label order; an unknown label is a one-line DataError naming the row."""
    ids = {label: i for i, label in enumerate(task.label_names)}
    out = []
    for n, e in enumerate(examples):
        if e.label not in ids:
            where = f"id {e.id!r}" if e.id else f"row {n}"
            raise DataError(
                f"{what} example ({where}) has label {e.label!r}, unknown to task {task.name!r}",
                hint=f"labels are {task.label_names}",
            )
        out.append(ids[e.label])
    return out


def sample_weights(examples: Sequence[Example]) -> list[float] | None:
    """Each synthetic row's training weight, `lineage["weight"]` (curation's `weight` action), 1.0 where a
    row has none; None when no row has one (the unweighted path). A weight must be a finite number >= 0."""
    import math

    if not any("weight" in e.lineage for e in examples):
        return None
    out = []
    for n, e in enumerate(examples):
        w = e.lineage.get("weight", 1.0)
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            where = f"id {e.id!r}" if e.id else f"row {n}"
            raise DataError(
                f"synthetic example ({where}) has weight {w!r}: a sample weight is a finite number >= 0",
                hint="fix or remove lineage.weight",
            )
        out.append(float(w))
    return out


@dataclass(frozen=True)
class Resources:
    """What one cell of a learner asks an executor for (executors/): CPU cores, GPUs (a fraction packs
    several cells on one GPU) and memory in GiB (None: no reservation). A grid learner's `resources:`
    overrides these per field."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float | None = None

    def updated(self, overrides: Mapping[str, Any] | None) -> "Resources":
        return dataclasses.replace(self, **dict(overrides or {}))


class Learner(ABC):
    name: ClassVar[str]
    Config: ClassVar[type[LearnerConfig]]
    kinds: ClassVar[tuple[str, ...]] = kind_names(classification=True)  # the task kinds it can learn (tasks/kinds/)
    seconds_per_cell: ClassVar[float] = 30.0  # a rough real-only fit + test prediction on 2 CPU cores (grid ETA)
    resources: ClassVar[Resources] = Resources(cpus=1, memory_gb=4)
    # a learner that loads a generator (scores with it) runs its cells on the driver, whatever the executor
    runs_on_driver: ClassVar[bool] = False

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
        """Train on real `train` (+ `synthetic`, combined by `config.strategy`); choose on `dev`.
        progress(step, total)."""

    @abstractmethod
    def predict_proba(self, examples: Sequence[Example]) -> Any:
        """A float array (n, labels) of class probabilities, columns in the task's label order
        (classification learners; the others predict texts with `predict`)."""

    def predict(self, examples: Sequence[Example] | Sequence[str]) -> list[str]:
        """Label names (classification), answer spans (QA) or output texts, one per input."""
        proba = self.predict_proba(examples)
        labels = self.task.label_names
        return [labels[int(i)] for i in proba.argmax(axis=1)] if len(proba) else []

    @abstractmethod
    def save(self, directory: Path) -> None: ...

    # -- what saved learners record beside their weights ------------------------------------------------

    META_FILE: ClassVar[str] = "fewforge.json"

    def _meta(self, **extra: Any) -> dict[str, Any]:
        """What every saved learner records beside its weights (read back by `_read_meta`)."""
        return {
            "learner": self.name,
            "task": self.task.name,
            "labels": self.task.label_names,
            "seed": self.seed,
            "config": self.config.model_dump(mode="json"),
            **extra,
        }

    @classmethod
    def _read_meta(cls, task: Task, directory: Path) -> dict[str, Any]:
        """The saved meta of `directory`, checked: written by this learner, for this task's labels."""
        import json

        from fewforge.errors import ConfigError, TaskError

        path = Path(directory) / cls.META_FILE
        if not path.is_file():
            raise ConfigError(f"{path} not found", hint=f"pass a directory written by the {cls.name!r} learner")
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("learner") != cls.name:
            raise ConfigError(f"{directory} holds a {meta.get('learner')!r} learner, not {cls.name!r}")
        if meta.get("labels") != task.label_names:
            raise TaskError(
                f"model in {directory} was trained for labels {meta.get('labels')}, task {task.name!r} has "
                f"{task.label_names}",
                hint="load it with the task it was trained on",
            )
        return meta

    @classmethod
    @abstractmethod
    def load(cls, task: Task, directory: Path) -> "Learner": ...

    # -- input handling shared by every learner ---------------------------------------------------

    def _training_data(
        self, train: Any, dev: Any, synthetic: Any
    ) -> tuple[list[Example], list[Example], list[Example]]:
        """Coerce inputs to Examples and check what the strategy needs (one-line errors)."""
        from fewforge.data.hf_datasets import as_examples
        from fewforge.learners.strategies import check

        train = as_examples(train, self.task, what="train")
        dev = as_examples(dev, self.task, what="dev")
        synthetic = as_examples(synthetic, self.task, what="synthetic")
        if not train:
            raise DataError("no real training examples", hint="the few-shot train split is empty")
        if not dev:
            raise DataError(
                "no dev examples", hint="the best model is chosen on dev; LM-BFF samples k per class for it"
            )
        check(self.config.strategy, len(train), len(synthetic))
        if self.task.is_classification:
            for rows, what in ((train, "train"), (dev, "dev"), (synthetic, "synthetic")):
                label_ids(self.task, rows, what)
        return train, dev, synthetic

    def _inputs(self, data: Any) -> list[Example]:
        """Examples to predict on: Examples, a datasets.Dataset, or plain strings (pairs: 2-tuples)."""
        from fewforge.data.hf_datasets import as_examples

        if isinstance(data, str):
            data = [data]
        rows = list(data) if not type(data).__module__.startswith("datasets") else None
        if rows is None:
            return as_examples(data, self.task, what="inputs")
        out = []
        fields = self.task.input_fields
        for i, row in enumerate(rows):
            if isinstance(row, Example):
                out.append(row)
                continue
            values = (row,) if isinstance(row, str) else tuple(row) if isinstance(row, (tuple, list)) else None
            if values is None or len(values) != len(fields) or not all(isinstance(v, str) for v in values):
                raise DataError(
                    f"input {i}: expected {'a string' if len(fields) == 1 else f'{len(fields)} strings'}, got {row!r}"[
                        :200
                    ],
                    hint=f"task {self.task.name!r} takes {', '.join(fields)}",
                )
            label = self.task.label_names[0] if self.task.is_classification else ""
            out.append(Example(inputs=dict(zip(fields, values)), label=label, id=f"input-{i}"))
        return out


def require_fitted(learner: Learner, model: Any) -> None:
    """One clear error when predict or save come before fit (or load)."""
    if model is None:
        raise ConfigError(f"the {learner.name} learner has no model yet", hint="call fit() or load() first")


class SeededLearner(Learner):
    """A learner whose training draws random numbers (torch learners, SetFit): `fit` checks the inputs and
    runs `_train` with the learner's own seed — the caller's global random state untouched — and thread
    count, and times it."""

    resources: ClassVar[Resources] = Resources(cpus=2, gpus=1, memory_gb=16)  # a torch model: a GPU where any

    def fit(
        self,
        train: Sequence[Example],
        dev: Sequence[Example],
        *,
        synthetic: Sequence[Example] = (),
        progress: Callable[[int, int], None] | None = None,
    ) -> FitReport:
        import time

        from fewforge.learners.runtime import seeded, torch_threads

        train, dev, synthetic = self._training_data(train, dev, synthetic)
        start = time.perf_counter()
        with torch_threads(getattr(self.config, "threads", None)), seeded(self.seed):
            report = self._train(train, dev, synthetic, progress)
        report.seconds = time.perf_counter() - start
        if report.row_weights:  # learned weights (`paired+reweight`): what the record and the report show
            from fewforge.learners.reweight import describe

            report.extra["reweight"] = {**report.extra.get("reweight", {}), **describe(synthetic, report.row_weights)}
        return report

    @abstractmethod
    def _train(
        self,
        train: list[Example],
        dev: list[Example],
        synthetic: list[Example],
        progress: Callable[[int, int], None] | None,
    ) -> FitReport:
        """Train on checked inputs inside the learner's random streams."""


class TorchLearner(SeededLearner):
    """A seeded learner whose torch `model` turns encoded rows into class logits (encoder, prompt tuning):
    prediction is written once here."""

    model: Any = None

    @abstractmethod
    def _encode(self, examples: Sequence[Example]) -> Any:
        """The rows as the model reads them."""

    @abstractmethod
    def _logits(self, rows: Any) -> Any:
        """[n, labels] logits of encoded rows, without gradients."""

    def predict_proba(self, examples: Sequence[Example] | Sequence[str]) -> Any:
        import numpy as np

        from fewforge.learners.runtime import torch_threads

        require_fitted(self, self.model)
        rows = self._inputs(examples)
        if not rows:
            return np.zeros((0, len(self.task.label_names)), dtype=np.float32)
        with torch_threads(getattr(self.config, "threads", None)):
            return self._logits(self._encode(rows)).softmax(-1).numpy()
