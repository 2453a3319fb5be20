from __future__ import annotations

import pytest

from fewforge.errors import ConfigError, DataError
from fewforge.evaluation import accuracy, macro_f1, score
from fewforge.tasks.base import Task

TASK = Task(name="toy", kind="single", labels={"neg": "bad", "pos": "good", "neu": "okay"}, description="review")


def test_accuracy_counts_exact_matches():
    assert accuracy(["a", "b", "a", "b"], ["a", "b", "b", "b"]) == 0.75
    assert accuracy(["x"], ["x"]) == 1.0


def test_macro_f1_by_hand():
    gold = ["pos", "pos", "neg", "neg"]
    pred = ["pos", "neg", "neg", "neg"]
    # pos: P=1, R=.5 -> F1=2/3; neg: P=2/3, R=1 -> F1=.8
    assert macro_f1(gold, pred) == pytest.approx((2 / 3 + 0.8) / 2)


def test_macro_f1_counts_a_never_predicted_task_label_as_zero():
    gold = ["pos", "neg"]
    pred = ["pos", "neg"]
    assert macro_f1(gold, pred) == 1.0
    # "neu" is a task label with no gold and no prediction: sklearn's zero_division=0 makes it 0
    assert macro_f1(gold, pred, labels=["neg", "pos", "neu"]) == pytest.approx(2 / 3)


def test_score_uses_the_task_metrics_in_order():
    result = score(TASK, ["pos", "neg", "neu", "pos"], ["pos", "neg", "pos", "pos"])
    assert list(result) == ["accuracy", "macro_f1"]
    assert result["accuracy"] == 0.75
    # pos: P=2/3 R=1 F1=.8; neg: 1; neu: 0
    assert result["macro_f1"] == pytest.approx((0.8 + 1 + 0) / 3)


def test_unknown_metric_is_a_config_error():
    task = Task(name="toy", kind="single", labels={"a": "a", "b": "b"}, description="x", metrics=("accuracy", "perplexity"))
    with pytest.raises(ConfigError, match="perplexity"):
        score(task, ["a"], ["a"])


@pytest.mark.parametrize(("gold", "pred"), [(["a", "b"], ["a"]), ([], [])])
def test_length_mismatch_and_empty_are_data_errors(gold, pred):
    with pytest.raises(DataError):
        accuracy(gold, pred)
    with pytest.raises(DataError):
        macro_f1(gold, pred)
