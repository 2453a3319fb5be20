"""Synthetic-data quality: distinct-n, similarity to real rows, the label auditor, and `fewforge quality` on a run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fewforge.data.schema import Example
from fewforge.evaluation.quality import Auditor, class_similarity, distinct_n, quality_rows
from fewforge.tasks import load_task


def _sst2(data_dir: Path, n: int, offset: int = 0) -> list[Example]:
    lines = [json.loads(line) for line in (data_dir / "sst2" / "train.jsonl").read_text().splitlines()]
    return [Example({"text": r["text"]}, r["label"], id=f"r{i}") for i, r in enumerate(lines[offset : offset + n])]


def test_distinct_n_counts_unique_ngrams_over_all():
    texts = ["a b a b", "A B c"]
    assert distinct_n(texts, 1) == pytest.approx(3 / 7)  # a b a b a b c: {a, b, c}
    assert distinct_n(texts, 2) == pytest.approx(3 / 5)  # ab ba ab | ab bc
    assert distinct_n(["one"], 2) == 0.0


def test_the_auditor_ranks_flipped_labels_last_and_similarity_sees_the_class(data_dir):
    task = load_task("sst2")
    real, held = _sst2(data_dir, 400), _sst2(data_dir, 60, offset=400)
    auditor = Auditor(task, real, held)
    flipped = [Example(e.inputs, "positive" if e.label == "negative" else "negative") for e in held]
    assert auditor.agreement(held) > 0.65 and auditor.agreement(flipped) == pytest.approx(1 - auditor.agreement(held))
    same, other = class_similarity(task, held, real)
    flipped_same, flipped_other = class_similarity(task, flipped, real)
    assert same > other and flipped_same < flipped_other  # rows read as their true class


def test_quality_command_scores_every_set_and_the_report_shows_it(tmp_path, data_dir):
    from fewforge.config import RunConfig
    from fewforge.evaluation.report import markdown
    from fewforge.files import write_json, write_yaml

    data = tmp_path / "data" / "sst2"
    data.mkdir(parents=True)
    lines = (data_dir / "sst2" / "train.jsonl").read_text().splitlines()
    (data / "train.jsonl").write_text("\n".join(lines[:300]) + "\n")
    (data / "dev.jsonl").write_text("\n".join(lines[300:360]) + "\n")
    run = tmp_path / "run"
    cfg = RunConfig.model_validate({"tasks": ["sst2"], "data": str(tmp_path / "data"), "seeds": [13, 21]})
    write_yaml(run / "config.yaml", cfg.model_dump(mode="json"))
    for seed in (13, 21):
        for method, flip in (("zerogen", True), ("dawgen", False)):  # zerogen's rows carry the wrong labels
            rows = [json.loads(line) for line in lines[400 + seed : 440 + seed]]
            for r in rows:
                if flip:
                    r["label"] = "positive" if r["label"] == "negative" else "negative"
            directory = run / "synthetic" / "sst2" / "k16" / f"seed{seed}" / method
            directory.mkdir(parents=True)
            (directory / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            write_json(directory / "card.json", {"task": "sst2", "method": method, "split_seed": seed,
                                                 "generated": 50, "kept_after_filters": 40})
    done = subprocess.run([sys.executable, "-m", "fewforge.cli.app", "quality", str(run)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    quality = json.loads((run / "quality.json").read_text())
    assert len(quality["sets"]) == 4 and quality["auditors"]["sst2"]["train_rows"] == 270
    fidelity = {(s["method"], s["seed"]): s["label_fidelity"] for s in quality["sets"]}
    for seed in (13, 21):
        assert fidelity[("dawgen", seed)] > 0.5 and fidelity[("zerogen", seed)] == pytest.approx(1 - fidelity[("dawgen", seed)])
    assert all(s["keep_rate"] == pytest.approx(0.8) for s in quality["sets"])
    header, rows = quality_rows(quality)
    assert [r[1] for r in rows] == ["zerogen", "dawgen"] and all(r[2] == "2" for r in rows)
    results = {"meta": {}, "summary": []}
    assert "Synthetic data quality" in markdown(results, [], "t", None, quality)

    bad = subprocess.run([sys.executable, "-m", "fewforge.cli.app", "quality", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a run directory" in bad.stderr and "Traceback" not in bad.stderr
