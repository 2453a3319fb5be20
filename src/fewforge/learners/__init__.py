"""Learners: a classifier trained on real (+ synthetic) examples. Add one with a module and one line here."""

from __future__ import annotations

from fewforge.learners.base import FitReport, Learner, LearnerConfig
from fewforge.registry import Registry

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


def get_learner(name: str) -> type[Learner]:
    """The learner class registered as `name` (its module is imported now, not before)."""
    return LEARNERS.get(name)


__all__ = ["LEARNERS", "FitReport", "Learner", "LearnerConfig", "get_learner"]
