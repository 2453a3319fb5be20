"""The zero-shot baseline through a generator's scores (the packaged SmolLM2 via llama.cpp)."""

from __future__ import annotations

import numpy as np
import pytest

from fewforge.data.schema import Example
from fewforge.learners import get_learner
from fewforge.tasks.base import Task


@pytest.fixture(scope="module")
def capitals() -> Task:
    return Task(
        name="capitals", kind="single", labels={"paris": "Paris", "fruit": "banana"}, description="fact",
        cloze_template="{text} {mask}.",
    )


def test_the_likelier_verbalizer_wins_and_probabilities_are_the_softmax_of_scores(capitals) -> None:
    from fewforge.generators import get_generator

    cls = get_learner("generator-zero-shot")
    learner = cls(capitals, cls.Config(), seed=0)
    rows = [Example({"text": "The capital of France is"}, "paris", id="a"),
            Example({"text": "Paris is the capital of France. The capital of France is"}, "paris", id="b")]
    report = learner.fit(rows, rows)
    assert report.best_dev_accuracy == 1.0 and report.steps == 0
    proba = learner.predict_proba(rows)
    assert proba.shape == (2, 2) and np.allclose(proba.sum(axis=1), 1.0)
    gen = get_generator("smollm2", chat=False)
    scores = [s.logprob for s in gen.score(["The capital of France is"] * 2, [" Paris", " banana"])]
    expected = np.exp(scores) / np.exp(scores).sum()
    assert np.allclose(proba[0], expected, atol=1e-4)
    assert learner.predict(["The capital of France is"]) == ["paris"]


def test_real_sst2_rows_get_valid_labels(data_dir) -> None:
    from fewforge.data.sources import load_task_data
    from fewforge.tasks import load_task

    task = load_task("sst2")
    _, test = load_task_data(task, data_dir)
    cls = get_learner("generator-zero-shot")
    learner = cls(task, cls.Config(), seed=0)
    predicted = learner.predict(test[:12])
    assert len(predicted) == 12 and set(predicted) <= set(task.label_names)
