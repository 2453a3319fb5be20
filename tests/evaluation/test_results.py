"""results.json round trip and the tables that show summaries."""

from __future__ import annotations

import io
import json

import pytest
from grid_records import make_records
from rich.console import Console

from fewforge.errors import DataError
from fewforge.evaluation import format_summary_text, read_results, results_table, summarize, write_results
from fewforge.evaluation.results import condition_label

RECORDS = make_records()


def test_write_then_read_round_trip(tmp_path):
    summary = summarize(RECORDS)
    path = write_results(tmp_path / "run" / "results.json", RECORDS, summary, {"task": "bbc"})
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temp file left behind
    data = read_results(path.parent)  # a run directory works too
    assert data["records"] == RECORDS and data["meta"] == {"task": "bbc"}
    assert data["summary"] == json.loads(json.dumps(summary))


def test_read_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_results(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        read_results(bad)
    bad.write_text("{}")
    with pytest.raises(DataError, match="missing"):
        read_results(bad)


def test_text_table_shows_percent_delta_and_labels():
    text = format_summary_text(summarize(RECORDS))
    lines = text.splitlines()
    assert lines[0].split() == [
        "task",
        "shots",
        "learner",
        "training",
        "data",
        "seeds",
        "accuracy",
        "macro_f1",
        "Δ",
        "95%",
        "CI",
        "p",
    ]
    assert "real only" in lines[2] and "82.0 ± 2.0" in lines[2]
    assert "real + zerogen (40/label)" in lines[3] and "+7.0" in lines[3]


def test_rich_table_renders():
    buffer = io.StringIO()
    Console(file=buffer, width=200).print(results_table(summarize(RECORDS), title="bbc"))
    assert "real + zerogen (40/label)" in buffer.getvalue() and "+7.0" in buffer.getvalue()


def test_condition_labels():
    assert condition_label({"condition": "real"}) == "real only"
    assert (
        condition_label({"condition": "synthetic", "method": "zerogen", "per_label": 10}) == "zerogen only (10/label)"
    )


def test_tables_show_trainable_parameters_and_conflict_rate():
    from fewforge.evaluation.results import summary_rows

    records = [dict(r) for r in RECORDS]
    for r in records:
        r["train"] = {"trainable_parameters": 57_600}
        if r["condition"] != "real":
            r["train"]["conflict_rate"] = 0.25 if r["seed"] == 13 else 0.75
    header, rows = summary_rows(summarize(records))
    assert header[-2:] == ["trainable params", "conflict rate"]
    mixed = [row for row, g in zip(rows, summarize(records)) if g["condition"] != "real"]
    assert mixed and all(row[-2] == "57.6K" and row[-1] == "50%" for row in mixed)
    assert all(row[-1] == "-" for row, g in zip(rows, summarize(records)) if g["condition"] == "real")
    plain_header, _ = summary_rows(summarize(RECORDS))  # without training facts: no extra columns
    assert "conflict rate" not in plain_header
