from __future__ import annotations

import statistics

import pytest

from fewforge.errors import DataError
from fewforge.evaluation import aggregate, mean_std

RECORDS = [
    {"condition": "real", "seed": 13, "accuracy": 0.80, "macro_f1": 0.70, "method": "none"},
    {"condition": "real+syn", "seed": 13, "accuracy": 0.90, "macro_f1": 0.85},
    {"condition": "real", "seed": 21, "accuracy": 0.84, "macro_f1": 0.76},
    {"condition": "real+syn", "seed": 21, "accuracy": 0.88, "macro_f1": 0.86},
    {"condition": "real", "seed": 42, "accuracy": 0.82, "macro_f1": 0.73},
]


def test_mean_and_sample_std_per_condition_and_metric():
    summary = aggregate(RECORDS)
    assert list(summary) == ["real", "real+syn"]  # first-seen order: the baseline stays first
    assert list(summary["real"]) == ["accuracy", "macro_f1"]  # non-numeric fields are not metrics
    acc = summary["real"]["accuracy"]
    assert acc["mean"] == pytest.approx(0.82)
    assert acc["std"] == pytest.approx(statistics.stdev([0.80, 0.84, 0.82]))  # ddof=1
    assert acc["std"] == pytest.approx(0.02)
    assert acc["n"] == 3
    assert summary["real+syn"]["macro_f1"] == {"mean": pytest.approx(0.855), "std": pytest.approx(0.00707107), "n": 2}


def test_one_seed_has_zero_std():
    summary = aggregate([{"condition": "c", "seed": 1, "accuracy": 0.5}])
    assert summary == {"c": {"accuracy": {"mean": 0.5, "std": 0.0, "n": 1}}}
    assert mean_std([0.7]) == (0.7, 0.0)


def test_explicit_metrics_and_missing_values():
    records = [
        {"condition": "a", "seed": 1, "accuracy": 0.5, "macro_f1": 0.4},
        {"condition": "a", "seed": 2, "accuracy": 0.7},
    ]
    summary = aggregate(records, metrics=["macro_f1", "accuracy"])
    assert list(summary["a"]) == ["macro_f1", "accuracy"]
    assert summary["a"]["macro_f1"]["n"] == 1  # a missing value is left out, not counted as 0
    assert summary["a"]["accuracy"]["n"] == 2


def test_ordering_is_stable_across_record_order():
    shuffled = [RECORDS[i] for i in (2, 1, 0, 4, 3)]
    assert aggregate(shuffled) == aggregate(RECORDS)


def test_bad_records_are_data_errors():
    with pytest.raises(DataError, match="lacks"):
        aggregate([{"seed": 1, "accuracy": 0.5}])
    with pytest.raises(DataError, match="both"):
        aggregate([{"condition": "a", "seed": 1, "accuracy": 0.5}, {"condition": "a", "seed": 1, "accuracy": 0.6}])
