"""Learners: a classifier trained on real (+ synthetic) examples. Add one with a module and one line here."""

from __future__ import annotations

from fewforge.learners.base import FitReport, Learner, LearnerConfig
from fewforge.registry import Registry

LEARNERS: Registry[type[Learner]] = Registry("learner")
LEARNERS.register("linear-probe", "fewforge.learners.linear_probe:LinearProbe")
LEARNERS.register("encoder", "fewforge.learners.encoder:EncoderClassifier")


def get_learner(name: str) -> type[Learner]:
    """The learner class registered as `name` (its module is imported now, not before)."""
    return LEARNERS.get(name)


__all__ = ["LEARNERS", "FitReport", "Learner", "LearnerConfig", "get_learner"]
