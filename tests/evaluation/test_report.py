"""The report's tables (papers' shape, best in bold) and its HTML/Markdown rendering from a run folder."""

from __future__ import annotations

import json

from grid_records import record

from fewforge.evaluation import summarize, write_results
from fewforge.evaluation.report import markdown, paper_tables, render_html, write_report


def grid_records():
    out = []
    for task in ("sst2", "rte"):
        for shots in (4, 16):
            for seed in (13, 21):
                base = 0.6 + 0.01 * shots + (0.05 if task == "sst2" else 0)
                out.append(record(seed, base + 0.001 * seed, shots=shots, task=task))
                out.append(record(seed, base + 0.03 + 0.001 * seed, condition="real+synthetic", shots=shots, task=task))
    return out


def test_paper_tables_columns_and_bold():
    summary = summarize(grid_records())
    tables = paper_tables(summary, "accuracy")
    title, header, rows, bold = tables[0]
    assert title == "linear-probe, 4 shots per class: accuracy (%)"
    assert header == ["training data", "sst2", "rte", "mean"]
    assert [r[0] for r in rows] == ["real only", "real + zerogen (40/label)"]
    assert bold == {(1, 1), (1, 2), (1, 3)}  # real + synthetic is best in every column
    single = paper_tables(summarize([r for r in grid_records() if r["task"] == "rte"]), "accuracy")
    assert len(single) == 1 and single[0][1] == ["training data", "4 shots", "16 shots"]  # a learning curve


def test_report_files_from_a_run_folder(tmp_path):
    records = grid_records()
    summary = summarize(records)
    meta = {"description": "a test grid", "command": "fewforge run g.yaml", "config": {"seeds": [13, 21]},
            "test_size": {"sst2": 872, "rte": 277}, "synthetic_sets": {}}  # fmt: skip
    write_results(tmp_path / "results.json", records, summary, meta)
    set_dir = tmp_path / "synthetic" / "sst2" / "seed13" / "zerogen"
    set_dir.mkdir(parents=True)
    (set_dir / "data.jsonl").write_text(
        json.dumps({"text": "a kept <b>row</b>", "label": "positive", "id": "z-1"}) + "\n"
    )
    (set_dir / "dropped.jsonl").write_text(
        json.dumps(
            {
                "id": "z-2",
                "label": "positive",
                "reason": "near_duplicate",
                "raw": "x",
                "text": "a kept row!",
                "partner_id": "z-1",
                "partner_text": "a kept row",
                "similarity": 0.97,
            }
        )
        + "\n"  # fmt: skip
    )
    (set_dir / "card.json").write_text(
        json.dumps({"count": 1, "generated": 2, "postprocess": {"dropped": {"near_duplicate": 1}}})
    )
    html_path, md_path = write_report(tmp_path, command="fewforge report RUN")
    html = html_path.read_text()
    assert "a test grid" in html and "<b>" in html and "&lt;b&gt;row&lt;/b&gt;" in html  # text is escaped
    assert "z-1: a kept row" in html and "0.970" in html and "near_duplicate" in html
    text = md_path.read_text()
    assert "Run: `fewforge run g.yaml`" in text and "Report: `fewforge report RUN`" in text
    assert "| real + zerogen (40/label) | **" in text
    assert render_html({"summary": summary, "meta": {}}, [], "t").startswith("<!doctype html>")
    assert markdown({"summary": summary, "meta": {}}, [], "t", None).startswith("# t")


def test_one_shots_value_and_several_learners_make_one_method_table():
    records = [
        record(seed, acc, learner=learner, condition=condition, task=task)
        for seed in (13, 21)
        for task in ("sst2", "rte")
        for learner, condition, acc in (
            ("zero-shot", "real", 0.5),
            ("prompt-tuning", "real", 0.6),
            ("prompt-tuning", "real+synthetic", 0.7),
        )
    ]
    for r in records:
        if r["condition"] != "real":
            r["strategy"] = "paired+gs"
    tables = paper_tables(summarize(records), "accuracy")
    assert len(tables) == 1
    title, header, rows, bold = tables[0]
    assert title.startswith("every learner, 16 shots") and header == ["learner · training data", "sst2", "rte", "mean"]
    assert [r[0] for r in rows] == [
        "zero-shot · real only",
        "prompt-tuning · real only",
        "prompt-tuning · real + zerogen (40/label), paired+gs",
    ]
    assert rows[2][1:] == ["70.0 ± 0.0", "70.0 ± 0.0", "70.0"] and (2, 1) in bold
