from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from fewforge.errors import DataError
from fewforge.evaluation import aggregate, format_summary_text, read_results, results_table, write_results

RECORDS = [
    {"condition": "real", "seed": 13, "accuracy": 0.80, "macro_f1": 0.70},
    {"condition": "real", "seed": 21, "accuracy": 0.84, "macro_f1": 0.76},
    {"condition": "real+syn", "seed": 13, "accuracy": 0.90, "macro_f1": 0.85},
    {"condition": "real+syn", "seed": 21, "accuracy": 0.88, "macro_f1": 0.86},
]


def test_write_then_read_round_trip(tmp_path):
    summary = aggregate(RECORDS)
    path = write_results(tmp_path / "run" / "results.json", RECORDS, summary, {"task": "bbc", "seeds": [13, 21]})
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temp file left behind
    data = read_results(path)
    assert data["records"] == RECORDS
    assert data["summary"] == json.loads(json.dumps(summary))
    assert data["meta"] == {"task": "bbc", "seeds": [13, 21]}


def test_write_replaces_an_existing_file(tmp_path):
    path = tmp_path / "results.json"
    write_results(path, RECORDS, aggregate(RECORDS), {"v": 1})
    write_results(path, RECORDS[:1], aggregate(RECORDS[:1]), {"v": 2})
    assert read_results(path)["meta"] == {"v": 2}
    assert len(read_results(path)["records"]) == 1


def test_read_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_results(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_results(tmp_path / "bad.json")
    (tmp_path / "partial.json").write_text('{"records": []}')
    with pytest.raises(DataError, match="summary"):
        read_results(tmp_path / "partial.json")


def test_plain_text_table_in_percent_with_delta():
    text = format_summary_text(aggregate(RECORDS))
    lines = text.splitlines()
    assert lines[0].split() == ["condition", "n", "accuracy", "macro_f1", "Δ", "accuracy"]
    assert lines[2].split() == ["real", "2", "82.0", "±", "2.8", "73.0", "±", "4.2", "baseline"]
    assert lines[3].split() == ["real+syn", "2", "89.0", "±", "1.4", "85.5", "±", "0.7", "+7.0"]


def test_single_condition_has_no_delta_column():
    text = format_summary_text(aggregate(RECORDS[:2]))
    assert "Δ" not in text
    assert "82.0 ± 2.8" in text


def test_rich_table_renders_the_same_cells():
    table = results_table(aggregate(RECORDS), title="bbc")
    assert [c.header for c in table.columns] == ["condition", "n", "accuracy", "macro_f1", "Δ accuracy"]
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(table)
    out = console.export_text()
    assert "89.0 ± 1.4" in out and "+7.0" in out and "baseline" in out
