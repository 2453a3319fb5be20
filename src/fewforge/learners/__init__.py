"""Learners: a classifier trained on real (+ synthetic) examples. Add one with a module and one line here."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from pydantic import ValidationError

from fewforge.data.schema import Example
from fewforge.errors import ConfigError
from fewforge.learners.base import FitReport, Learner, LearnerConfig
from fewforge.registry import Registry
from fewforge.tasks.base import Task

LEARNERS: Registry[type[Learner]] = Registry("learner")
LEARNERS.register("linear-probe", "fewforge.learners.linear_probe:LinearProbe")
LEARNERS.register("encoder", "fewforge.learners.encoder:EncoderClassifier")
LEARNERS.register("prompt-tuning", "fewforge.learners.prompt_tuning:PromptTuning")
LEARNERS.register("setfit", "fewforge.learners.setfit_learner:SetFitLearner")
LEARNERS.register("qa-encoder", "fewforge.learners.extractive_qa:QAEncoder")
# DawGen's baselines on the prompt-tuning target (same model, template and verbalizer)
LEARNERS.register("lm-ft", "fewforge.learners.encoder:LMClassifier")
LEARNERS.register("zero-shot", "fewforge.learners.prompt_tuning:ZeroShot")
LEARNERS.register("icl", "fewforge.learners.prompt_tuning:InContext")
LEARNERS.register("pft", "fewforge.learners.prompt_tuning:PromptFineTuning")
LEARNERS.register("pft+pt", "fewforge.learners.prompt_tuning:PromptFineTuningSoft")
LEARNERS.register("seq2seq", "fewforge.learners.text_to_text:Seq2SeqLearner")
LEARNERS.register("causal-lm", "fewforge.learners.text_to_text:CausalLMLearner")
# zero-shot through any generator backend that can score (the same weights the synthetic data came from)
LEARNERS.register("generator-zero-shot", "fewforge.learners.generator_scoring:GeneratorZeroShot")


def get_learner(name: str) -> type[Learner]:
    """The learner class registered as `name` (its module is imported now, not before)."""
    return LEARNERS.get(name)


def student_factory(task: Task, seed: int) -> Callable[..., Learner]:
    """`SynthesisContext.train_learner` for methods that train a student inside (S3): a fresh learner of
    the named kind with its default config (plus `options`), fitted on real `train` + `synthetic` (or synthetic only when
    `train` is empty) with model selection on `dev`, seeded with the split seed."""

    def train_learner(
        train: Sequence[Example],
        dev: Sequence[Example],
        synthetic: Sequence[Example],
        name: str,
        options: Mapping[str, Any] | None = None,
    ) -> Learner:
        cls = get_learner(name)
        if task.kind not in cls.kinds:
            raise ConfigError(
                f"learner {name!r} cannot learn {task.kind} tasks like {task.name!r}",
                hint=f"pick a student for {task.kind} tasks: {', '.join(task.spec.default_learners) or 'linear-probe'}",
            )
        strategy = "syn" if not train else ("real" if not synthetic else cls.Config().strategy)
        try:
            config = cls.Config(**{**dict(options or {}), "strategy": strategy})
        except ValidationError as e:
            raise ConfigError(
                f"invalid student options for learner {name!r}: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}",
                hint=f"valid options: {', '.join(sorted(cls.Config.model_fields))}",
            ) from None
        learner = cls(task, config, seed=seed)
        learner.fit(list(train), list(dev), synthetic=list(synthetic))
        return learner

    return train_learner


__all__ = ["LEARNERS", "FitReport", "Learner", "LearnerConfig", "get_learner", "student_factory"]
