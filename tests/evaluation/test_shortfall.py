"""Rows name the synthetic rows their cells trained on: short sets are flagged, empty ones are real only."""

from __future__ import annotations

from fewforge.evaluation.aggregate import summarize
from fewforge.evaluation.results import condition_label, summary_rows
from fewforge.evaluation.shortfall import short_set_warnings


def record(seed: int, condition: str = "real+synthetic", trained: int = 60, asked: int | None = 60) -> dict:
    synthetic = condition != "real"
    return {
        "cell": f"sst2/k4/seed{seed}/lp/{condition}", "task": "sst2", "shots": 4, "seed": seed, "learner": "lp",
        "condition": condition, "method": "zerogen" if synthetic else None, "per_label": 30 if synthetic else None,
        "strategy": None, "metrics": {"accuracy": 0.8}, "labels": ["negative", "positive"],
        "train": {"real": 8, "synthetic": trained if synthetic else 0,
                  **({"synthetic_requested": asked} if synthetic and asked is not None else {})},
    }  # fmt: skip


def groups(*records: dict) -> dict[str, dict]:
    return {g["condition"]: g for g in summarize(records)}


def test_a_full_set_reads_as_before():
    summary = summarize([record(13, "real"), record(13), record(21, "real"), record(21)])
    assert [condition_label(g) for g in summary] == ["real only", "real + zerogen (30/label)"]
    header, _ = summary_rows(summary)
    assert "synthetic rows" not in header and short_set_warnings(summary) == []


def test_a_short_set_is_flagged_with_the_rows_it_trained_on():
    summary = summarize([record(13, "real"), record(13, trained=24), record(21, "real"), record(21)])
    assert condition_label(summary[1]) == "real + zerogen (30/label) ⚠ short"
    header, rows = summary_rows(summary)
    assert rows[1][header.index("synthetic rows")] == "24–60 of 60" and rows[0][header.index("synthetic rows")] == "-"
    (warning,) = short_set_warnings(summary)
    assert "sst2 4-shot lp, real+synthetic zerogen (30 per label)" in warning
    assert "fewer synthetic rows than the 60 asked (seed 13: 24)" in warning and "flagged ⚠ short" in warning


def test_a_set_that_came_back_empty_is_not_a_real_plus_synthetic_row():
    summary = summarize([record(13, "real"), record(13, trained=0), record(21, "real"), record(21, trained=0)])
    assert condition_label(summary[1]) == "real only (zerogen gave none of 30/label)"
    (warning,) = short_set_warnings(summary)
    assert "trained on the real rows alone and is shown as real only" in warning


def test_records_written_before_requests_were_recorded_are_not_flagged():
    summary = summarize([record(13, trained=0, asked=None)])
    assert condition_label(summary[0]) == "real + zerogen (30/label)" and short_set_warnings(summary) == []
