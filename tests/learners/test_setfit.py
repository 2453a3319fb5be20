"""The SetFit learner through the setfit library, on the packaged MiniLM and a tiny SST-2 slice."""

from __future__ import annotations

import numpy as np
import pytest

from fewforge.data.fewshot import sample_fewshot
from fewforge.data.schema import Example
from fewforge.data.sources import load_task_data
from fewforge.learners.setfit_learner import SetFitConfig, SetFitLearner
from fewforge.tasks import load_task


@pytest.fixture(scope="module")
def sst2(data_dir):
    task = load_task("sst2")
    pool, test = load_task_data(task, data_dir)
    return task, sample_fewshot(pool, test, task, 4, seed=21), test[:16]


def test_setfit_trains_predicts_and_reloads(sst2, tmp_path):
    task, split, test = sst2
    learner = SetFitLearner(task, SetFitConfig(num_iterations=2, threads=2), seed=21)
    steps = []
    report = learner.fit(split.train, split.dev, progress=lambda step, total: steps.append((step, total)))
    assert report.extra["strategy"] == "real" and report.extra["pairs"] == 2 * 2 * 8  # 2 per row and side
    assert steps and steps[-1] == (2, 2)  # 32 pairs / batch 16
    proba = learner.predict_proba(test)
    assert proba.shape == (16, 2) and np.allclose(proba.sum(1), 1.0)
    learner.save(tmp_path / "m")
    assert np.allclose(SetFitLearner.load(task, tmp_path / "m").predict_proba(test), proba, atol=1e-6)
    assert learner.predict(["a joyous , moving film"])[0] in ("negative", "positive")


def test_max_length_truncates_the_body(sst2):
    """The body reads at most max_length tokens, in training and predict (it once reached the head only)."""
    task, split, test = sst2
    short = SetFitLearner(task, SetFitConfig(num_iterations=1, threads=2, max_length=8), seed=21)
    short.fit(split.train, split.dev)
    body = short.model.model_body
    assert body.max_seq_length == 8
    long_text = " ".join(["wonderful"] * 40)
    assert np.allclose(body.encode([long_text]), body.encode([" ".join(["wonderful"] * 30)]), atol=1e-6)


def test_paired_adds_synthetic_pairs_without_dropping_real_ones(sst2):
    task, split, _ = sst2
    synthetic = [Example(inputs={"text": f"review {i} was {w}"}, label=l)
                 for i in range(6) for w, l in (("wonderful", "positive"), ("awful", "negative"))]
    paired = SetFitLearner(task, SetFitConfig(num_iterations=2, threads=2), seed=21)
    report = paired.fit(split.train, split.dev, synthetic=synthetic)
    assert report.extra["pairs"] == 2 * 32  # the 32 real pairs + 32 synthetic ones
    union = SetFitLearner(task, SetFitConfig(num_iterations=2, strategy="real+syn", threads=2), seed=21)
    assert union.fit(split.train, split.dev, synthetic=synthetic).extra["pairs"] == 32  # same budget, diluted
