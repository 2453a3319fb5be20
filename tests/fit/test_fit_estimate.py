"""The k-fold estimate's arithmetic on hand-made rows and scores (fewforge/fit/estimate.py)."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from fewforge.data.schema import Example
from fewforge.fit.estimate import REAL, SYNTHETIC, corrected_interval, estimate_table, plan_folds, summarize, verdict
from fewforge.tasks.base import Task

TASK = Task(name="toy", kind="single", labels={"a": "a", "b": "b", "c": "c"}, description="text")


def rows(per_label: dict[str, int]) -> list[Example]:
    return [Example({"text": f"{label} {i}"}, label, id=f"{label}-{i}") for label, n in per_label.items() for i in range(n)]


def test_folds_are_stratified_disjoint_and_hold_every_row_once_per_repeat() -> None:
    data = rows({"a": 8, "b": 8, "c": 2})
    folds = plan_folds(TASK, data, folds=4, repeats=2, seed=13)
    assert len(folds) == 8 and [f.name for f in folds[:2]] == ["r0-f0", "r0-f1"]
    for repeat in (0, 1):
        held = [e.id for f in folds if f.repeat == repeat for e in f.held]
        assert sorted(held) == sorted(e.id for e in data)  # each row held out exactly once per repeat
    for fold in folds:
        assert not {e.id for e in fold.train} & {e.id for e in fold.held}
        assert Counter(e.label for e in fold.held)["a"] == 2  # 8 rows of a label: 2 per fold
        assert {e.label for e in fold.train} == {"a", "b", "c"}  # a 2-row label still trains in every fold
    again = plan_folds(TASK, data, folds=4, repeats=2, seed=13)
    assert [[e.id for e in f.held] for f in again] == [[e.id for e in f.held] for f in folds]
    assert [[e.id for e in f.held] for f in folds[:4]] != [[e.id for e in f.held] for f in folds[4:]]  # new split
    assert len(plan_folds(TASK, rows({"a": 2, "b": 1}), folds=4, repeats=1, seed=1)) == 3  # k lowered to the rows


def test_corrected_interval_is_nadeau_bengio() -> None:
    from scipy.stats import t

    values = [0.9, 0.8, 1.0, 0.7, 0.9, 0.8, 0.9, 1.0]
    mean, low, high = corrected_interval(values, 1 / 3)
    var = sum((v - 0.875) ** 2 for v in values) / 7
    half = t.ppf(0.975, 7) * math.sqrt((1 / 8 + 1 / 3) * var)
    assert mean == pytest.approx(0.875) and (low, high) == (pytest.approx(0.875 - half), pytest.approx(0.875 + half))
    naive = t.ppf(0.975, 7) * math.sqrt(var / 8)
    assert high - low > 2 * naive  # wider than the plain t interval, which ignores overlapping training sets


def record(fold: str, gold: list[str], predicted: list[str]) -> dict:
    return {"fold": fold, "gold": gold, "predicted": predicted, "scores": [float(g == p) for g, p in zip(gold, predicted)]}


def test_summary_pairs_conditions_fold_by_fold_and_the_verdict_follows_the_interval() -> None:
    gold = ["a", "b", "c", "a"]
    real = [record(f"r0-f{i}", gold, ["a", "b", "a", "b"]) for i in range(4)]  # 0.5 in every fold
    better = [record(f"r0-f{i}", gold, ["a", "b", "c", "a" if i < 3 else "b"]) for i in range(4)]  # 1, 1, 1, 0.75
    summary = summarize(TASK, {REAL: real, SYNTHETIC: better}, folds=4, n_rows=16)
    assert summary["repeats"] == 1 and summary["conditions"][REAL]["estimate"] == pytest.approx(0.5)
    assert summary["conditions"][SYNTHETIC]["pooled"]["accuracy"] == pytest.approx(15 / 16)
    diff = summary["difference"]
    assert diff["per_fold"] == pytest.approx([0.5, 0.5, 0.5, 0.25]) and diff["low"] > 0
    assert verdict(summary) == SYNTHETIC
    worse = summarize(TASK, {REAL: better, SYNTHETIC: real}, folds=4, n_rows=16)
    assert worse["difference"]["high"] < 0 and verdict(worse) == REAL  # synthetic rows clearly hurt: not used
    table = estimate_table(summary, {REAL: "real rows only", SYNTHETIC: "real + synthetic"})
    assert table.splitlines()[0] == "| training data | accuracy (estimate) | 95% CI | macro_f1 |"
    assert "| real rows only | 50.0 |" in table and "| difference (paired over 4 folds) | +43.8 |" in table
