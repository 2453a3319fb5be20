"""`fewforge fit`: from a user's own handful of labeled rows to a deployable model in one command — the
task inferred from the columns, an honest k-fold estimate without a test set, and a model folder that
loads with the learner's own library (see fit/run.py for the order of the work)."""

from __future__ import annotations

from fewforge.fit.config import FitConfig
from fewforge.fit.run import fit

__all__ = ["FitConfig", "fit"]
