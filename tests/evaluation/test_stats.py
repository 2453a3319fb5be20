"""Paired tests, bootstrap intervals and per-class tables against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ttest_rel

from fewforge.evaluation.stats import bootstrap_ci, confusion, paired_p, per_class_f1


def test_paired_p_matches_scipy_and_refuses_what_it_cannot_test():
    a, b = [0.81, 0.84, 0.86], [0.80, 0.80, 0.83]
    assert paired_p(a, b) == pytest.approx(ttest_rel(a, b).pvalue)
    assert paired_p([0.8], [0.7]) is None  # one seed: no test
    assert paired_p([0.8, 0.9], [0.7, 0.8]) is None  # identical differences: t undefined


def test_bootstrap_interval_covers_the_difference():
    rng = np.random.default_rng(1)
    base = (rng.random((3, 500)) < 0.7).astype(float)
    same = bootstrap_ci(base, base)
    assert same == (0.0, 0.0)
    flipped = base.copy()
    flipped[:, :50] = 1.0  # 50 more rows right in every seed
    low, high = bootstrap_ci(flipped, base)
    true = (flipped - base).mean()
    assert low <= true <= high and low > 0
    assert bootstrap_ci(base[:, :10], base) is None  # shapes must pair up


def test_per_class_f1_and_confusion():
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "a"]
    f1 = per_class_f1(gold, pred, ["a", "b", "c"])
    assert f1 == pytest.approx({"a": 0.5, "b": 0.8, "c": 0.0})
    assert confusion(gold, pred, ["a", "b", "c"]) == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
