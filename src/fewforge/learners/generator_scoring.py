"""Zero-shot classification by a generator's scores (DESIGN.md §4): the label whose verbalizer the
generator finds likeliest after the task's cloze prefix, through any backend that can `score`
(transformers, llama.cpp, OpenAI-compatible servers with logprobs) — the zero-shot baseline without
loading a torch model of its own, and with the same weights the synthetic data came from.

Nothing trains: `fit` only scores the dev rows for the report. The prompt is the task's cloze template up
to {mask} (or the kind's causal cloze when something other than punctuation follows it), sent as raw text
(`chat: false`, the default) or through the backend's chat template; each label's verbalizer follows it as
" word". Probabilities are the softmax over the labels of the verbalizers' summed log-probabilities
(`normalize: mean` divides by their token counts first, for multi-token words).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Sequence

from pydantic import Field

from fewforge.data.schema import Example
from fewforge.generators.label_scores import score_labels
from fewforge.learners.base import FitReport, Learner, LearnerConfig, require_fitted
from fewforge.learners.prompt_tuning import answer_prefix
from fewforge.tasks.base import Task


class GeneratorZeroShotConfig(LearnerConfig):
    strategy: str = "real"
    generator: str = Field("smollm2", description="a generator spec that can score (smollm2, hf:MODEL, openai:...)")
    chat: bool = Field(False, description="send the cloze prefix through the backend's chat template")
    template: str | None = Field(None, description="a cloze template with {mask}; None: the task's")
    normalize: Literal["sum", "mean"] = Field("sum", description="score a verbalizer by its summed or mean log-prob")


class GeneratorZeroShot(Learner):
    name: ClassVar[str] = "generator-zero-shot"
    Config: ClassVar[type[LearnerConfig]] = GeneratorZeroShotConfig
    config: GeneratorZeroShotConfig
    seconds_per_cell: ClassVar[float] = 30.0
    runs_on_driver: ClassVar[bool] = True  # it loads a generator: kept beside the one the grid generates with

    def __init__(self, task: Task, config: GeneratorZeroShotConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(task, config, seed=seed)
        self.prefix, self.separator = answer_prefix(self.config.template or task.cloze_template, task.kind)
        self._generator: Any = None

    def _backend(self) -> Any:
        if self._generator is None:
            from fewforge.generators import get_generator

            self._generator = get_generator(self.config.generator, chat=self.config.chat)
        return self._generator

    def fit(
        self,
        train: Sequence[Example],
        dev: Sequence[Example],
        *,
        synthetic: Sequence[Example] = (),
        progress: Callable[[int, int], None] | None = None,
    ) -> FitReport:
        started = time.perf_counter()
        _, dev, _ = self._training_data(train, dev, synthetic)
        predicted = self.predict(dev)
        accuracy = sum(p == e.label for p, e in zip(predicted, dev)) / len(dev)
        if progress is not None:
            progress(1, 1)
        return FitReport(
            best_dev_accuracy=accuracy, best_step=0, steps=0, seconds=time.perf_counter() - started,
            history=[{"step": 0, "dev_accuracy": accuracy}], extra={"generator": self.config.generator},
        )

    def predict_proba(self, examples: Sequence[Example]) -> Any:
        import numpy as np

        rows = self._inputs(examples)
        if not rows:
            return np.zeros((0, len(self.task.label_names)))
        words = [self.separator + self.task.labels[label] for label in self.task.label_names]
        prompts = [self.prefix.format(**e.inputs, description=self.task.description) for e in rows]
        scored = score_labels(self._backend(), prompts, words, normalize=self.config.normalize)
        return np.array([s.probs for s in scored], dtype=np.float64)

    def save(self, directory: Path) -> None:
        require_fitted(self, self.prefix)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / self.META_FILE).write_text(json.dumps(self._meta(), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, task: Task, directory: Path) -> "GeneratorZeroShot":
        meta = cls._read_meta(task, Path(directory))
        return cls(task, GeneratorZeroShotConfig(**meta["config"]), seed=meta.get("seed", 0))
