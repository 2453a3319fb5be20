"""Summaries over seeds: grouping by every axis but the seed, mean ± sample std, comparisons with real only."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from grid_records import make_records, record  # noqa: E402

from fewforge.errors import DataError
from fewforge.evaluation import mean_std, summarize

RECORDS = make_records()


def test_mean_and_sample_std_per_group_and_metric():
    summary = summarize(RECORDS)
    assert [g["condition"] for g in summary] == ["real", "real+synthetic"]  # first-seen order
    real = summary[0]
    assert real["seeds"] == [13, 21, 42] and real["n"] == 3
    assert real["metrics"]["accuracy"]["mean"] == pytest.approx(0.82)
    assert real["metrics"]["accuracy"]["std"] == pytest.approx(statistics.stdev([0.80, 0.84, 0.82]))  # ddof=1
    assert summary[1]["metrics"]["macro_f1"] == {"mean": pytest.approx(0.855), "std": pytest.approx(0.00707107), "n": 2}
    assert real["vs_baseline"] is None


def test_comparison_pairs_seeds_with_the_same_task_shots_and_learner():
    other = [record(13, 0.5, learner="encoder"), record(21, 0.5, learner="encoder", condition="real+synthetic")]
    summary = summarize(RECORDS + other)
    vs = summary[1]["vs_baseline"]
    # only seeds 13 and 21 have both conditions: Δ = mean(0.90, 0.88) - mean(0.80, 0.84)
    assert vs["pairs"] == 2 and vs["metric"] == "accuracy"
    assert vs["delta"] == pytest.approx(0.07)
    # paired t with differences 0.10, 0.04: t = 0.07 / (0.0424 / sqrt 2) = 2.333, 1 df: p = 1 - 2 atan(t) / pi
    assert vs["p"] == pytest.approx(1 - 2 * math.atan(0.07 / (statistics.stdev([0.10, 0.04]) / math.sqrt(2))) / math.pi)
    assert vs["ci"] is None  # no per-example scores given
    encoder = [g for g in summary if g["learner"] == "encoder"]
    assert encoder[1]["vs_baseline"] is None  # the encoder's real-only cell is seed 13, its syn cell seed 21


def test_a_variant_is_compared_with_the_real_only_cells_of_the_learner_named_as_its_baseline():
    variant = [record(s, a, learner="pt+ls", condition="real+synthetic") for s, a in ((13, 0.70), (21, 0.90))]
    alone = summarize(RECORDS + variant)
    assert alone[-1]["learner"] == "pt+ls" and alone[-1]["vs_baseline"] is None  # no real-only cells of its own
    summary = summarize(RECORDS + variant, baselines={"pt+ls": "linear-probe"})
    vs = summary[-1]["vs_baseline"]
    assert vs["pairs"] == 2 and vs["delta"] == pytest.approx(0.80 - 0.82)  # against seeds 13/21 of real only
    assert summary[-1]["baseline_learner"] == "linear-probe" and "baseline_learner" not in summary[1]


def test_bootstrap_ci_from_per_example_scores():
    rng = np.random.default_rng(0)
    base = {13: rng.random(400) < 0.6, 21: rng.random(400) < 0.6}
    better = {s: v | (rng.random(400) < 0.5) for s, v in base.items()}  # strictly more correct rows
    records = [record(s, base[s].mean()) for s in base] + [
        record(s, better[s].mean(), condition="real+synthetic") for s in base
    ]
    scores = {
        (r["condition"], r["seed"]): (better if r["condition"] != "real" else base)[r["seed"]].astype(float)
        for r in records
    }
    summary = summarize(records, scores=lambda r: scores[(r["condition"], r["seed"])])
    vs = summary[1]["vs_baseline"]
    low, high = vs["ci"]
    assert 0 < low < vs["delta"] < high < 0.4  # the improvement is certain, and the interval holds it


def test_single_values_and_missing_metrics():
    summary = summarize([record(1, 0.5), record(2, 0.7, 0.6)])
    assert summary[0]["metrics"]["macro_f1"] == {"mean": 0.6, "std": 0.0, "n": 1}  # absent ≠ 0
    assert mean_std([0.5]) == (0.5, 0.0)
    with pytest.raises(DataError):
        mean_std([])


def test_bad_records_are_errors():
    with pytest.raises(DataError, match="lacks"):
        summarize([{"seed": 1, "metrics": {}}])
    with pytest.raises(DataError, match="same cell"):
        summarize([record(1, 0.5), record(1, 0.6)])
