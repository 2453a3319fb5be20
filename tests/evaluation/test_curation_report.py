"""The report's curation sections (evaluation/curation_report.py): curated sets made by the real curation
stage (a scripted auditor) and saved as a run saves them, and cell records carrying the weights that
`paired+reweight` learned, rendered into report.md and report.html."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from grid_records import record

from fewforge.data.schema import Example
from fewforge.evaluation import summarize, write_results
from fewforge.evaluation.curation_report import label_rows, set_rows, sparkline
from fewforge.evaluation.report import synthetic_sets, write_report
from fewforge.learners.reweight import describe
from fewforge.synthesis import curation
from fewforge.synthesis.base import SyntheticDataset
from fewforge.synthesis.curation import Audit, AuditContext, Auditor, AuditorOptions, curate
from fewforge.tasks import load_task

P_POSITIVE = [0.95, 0.2, 0.6, 0.45, 0.05, 0.7, 0.99, 0.3]  # rows 0-3 labelled positive, 4-7 negative


class Scripted(Auditor):
    name = "scripted"
    Options = AuditorOptions

    def audit(self, ctx, rows):
        return Audit([[1 - p, p] for p in P_POSITIVE[: len(rows)]])


def _save(root: Path, name: str, dataset: SyntheticDataset) -> str:
    """data.jsonl, dropped.jsonl and card.json, as a run writes them."""
    directory = root / "synthetic" / "sst2" / "seed13" / name
    directory.mkdir(parents=True)
    (directory / "data.jsonl").write_text("".join(json.dumps(e.to_record()) + "\n" for e in dataset.examples))
    (directory / "dropped.jsonl").write_text("".join(json.dumps(d) + "\n" for d in dataset.dropped))
    (directory / "card.json").write_text(json.dumps({**dataset.card, "count": len(dataset.examples), "generated": 8}))
    return str(directory.relative_to(root))


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(curation.stage, "get_auditor", lambda name, options=None: Scripted())
    task = load_task("sst2")
    rows = [
        Example({"text": f"review number {i}"}, "positive" if i < 4 else "negative", id=f"r{i}", lineage={"method": "z"})
        for i in range(8)
    ]
    ctx = AuditContext(task, 13)
    relabelled = curate(SyntheticDataset(rows), {"auditor": "scripted", "action": "relabel", "confidence": 0.75}, ctx)
    filtered = curate(SyntheticDataset(rows), {"auditor": "scripted", "action": "filter", "threshold": 0.5}, ctx)
    names = [_save(tmp_path, "zerogen-relabel", relabelled), _save(tmp_path, "zerogen-filter", filtered)]
    # two seeds of a reweighted cell trained on the relabelled set: rows r3 and r5 (which the auditor
    # still gives another label) weigh least
    records = [record(13, 0.80, task="sst2"), record(21, 0.82, task="sst2")]
    for seed, weights in ((13, [1.6, 1.0, 1.2, 0.2, 1.0, 0.0, 0.8, 1.4]), (21, [1.5, 1.1, 1.0, 0.4, 0.9, 0.2, 0.8, 1.3])):
        cell = record(seed, 0.85, condition="real+synthetic", task="sst2")
        cell["strategy"] = "paired+reweight"
        cell["train"] = {"reweight": {"mode": "centred", "zero_share": 0.4, "skipped_batches": 1, "batches": 48,
                                      **describe(relabelled.examples, weights)}}
        records.append(cell)
    meta = {"config": {"seeds": [13, 21]}, "test_size": {"sst2": 872}, "synthetic_sets": dict.fromkeys(names, {})}
    write_results(tmp_path / "results.json", records, summarize(records), meta)
    return tmp_path


def test_curated_sets_show_counts_histograms_and_example_rows(run_dir):
    sets = synthetic_sets(run_dir, ["synthetic/sst2/seed13/zerogen-relabel", "synthetic/sst2/seed13/zerogen-filter"])
    header, rows = set_rows(sets)
    by_set = {r[0].rsplit("/", 1)[1]: dict(zip(header, r)) for r in rows}
    assert by_set["zerogen-relabel"]["relabelled"] == "2" and by_set["zerogen-relabel"]["rows after"] == "8"
    assert by_set["zerogen-filter"]["dropped"] == "audit_threshold 4" and by_set["zerogen-filter"]["rows after"] == "4"
    assert by_set["zerogen-filter"]["action"] == "filter (score < 0.5)" and by_set["zerogen-filter"]["agreement"] == "50.0 %"
    header, rows = label_rows(sets)
    negative = next(dict(zip(header, r)) for r in rows if r[0].endswith("relabel") and r[1] == "negative")
    assert negative["rows"] == "4" and negative["relabelled out / in"] == "1 / 1"
    assert negative["score histogram (0 → 1)"] == sparkline([1, 0, 0, 1, 0, 0, 0, 1, 0, 1])
    # every dropped row comes back, most doubtful first; relabelled rows are found among all kept rows
    found = next(s for s in sets if s["path"].endswith("filter"))["curation_examples"]
    assert [r["id"] for r in found["dropped"]] == ["r6", "r1", "r5", "r3"]
    found = next(s for s in sets if s["path"].endswith("relabel"))["curation_examples"]
    assert {(r["id"], r["from"], r["label"]) for r in found["relabelled"]} == {
        ("r6", "negative", "positive"), ("r1", "positive", "negative")
    }

    html_path, md_path = write_report(run_dir)
    md = md_path.read_text()
    assert "## Curation: the label audit of each curated set" in md
    assert "| synthetic/sst2/seed13/zerogen-filter | scripted | filter (score < 0.5) | 8 | 4 | 50.0 % |" in md
    assert "| dropped (audit_threshold) | r6 | negative | 0.010 | positive | review number 6 |" in md
    assert "| relabelled | r1 | positive → negative | 0.200 | negative | review number 1 |" in md
    html = html_path.read_text()
    assert "Curation: label audit" in html and "audit scores per intended label" in html
    assert html.count("<svg") >= 3  # a histogram per curated set, and the learned weights
    assert "positive → negative" in html and "review number 6" in html


def test_learned_weights_are_summarised_over_seeds_with_the_audit(run_dir):
    md = write_report(run_dir)[1].read_text()
    assert "## Learned sample weights (`paired+reweight`)" in md
    section = md.split("## Learned sample weights")[1]
    line = next(line for line in section.splitlines() if line.startswith("| sst2 | 16 | linear-probe | real + zerogen"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[4:9] == ["2", "centred", "25 %", "40 %", "2 of 96"]  # 2 of 8 rows below 0.5 in each seed
    # after the relabelling the auditor still disagrees with r3 and r5: (0.1 + 0.3) / 2 against the others
    assert cells[9:11] == ["1.13", "0.20"]
    assert "| lowest | r5 | negative | 0.000 | 0.300 | review number 5 |" in md
