"""Synthetic-data quality: distinct-n, similarity to real rows, the label auditor, and `fewforge quality` on a run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fewforge.data.schema import Example
from fewforge.evaluation.quality import (
    Auditor,
    class_similarity,
    columns_note,
    distinct_n,
    levenshtein,
    parent_child,
    quality_rows,
    self_bleu,
)
from fewforge.tasks import load_task


def _sst2(data_dir: Path, n: int, offset: int = 0) -> list[Example]:
    lines = [json.loads(line) for line in (data_dir / "sst2" / "train.jsonl").read_text().splitlines()]
    return [Example({"text": r["text"]}, r["label"], id=f"r{i}") for i, r in enumerate(lines[offset : offset + n])]


def test_distinct_n_counts_unique_ngrams_over_all():
    texts = ["a b a b", "A B c"]
    assert distinct_n(texts, 1) == pytest.approx(3 / 7)  # a b a b a b c: {a, b, c}
    assert distinct_n(texts, 2) == pytest.approx(3 / 5)  # ab ba ab | ab bc
    assert distinct_n(["one"], 2) == 0.0


def test_self_bleu_is_sacrebleu_against_the_other_rows_and_falls_with_diversity():
    import sacrebleu

    same = ["the movie was great fun"] * 5
    varied = ["the movie was great fun", "a dull plot with flat jokes", "i loved every minute of it",
              "the movie was a dull mess", "great actors, weak script"]  # fmt: skip
    others = [varied[:i] + varied[i + 1 :] for i in range(len(varied))]
    expected = [sacrebleu.sentence_bleu(t, refs, lowercase=True).score for t, refs in zip(varied, others)]
    assert self_bleu(varied) == pytest.approx(sum(expected) / len(expected))
    assert self_bleu(same) == pytest.approx(100.0) and self_bleu(varied) < 30
    assert self_bleu(["one row"]) is None and self_bleu(varied, rows=2) is not None  # a seeded sample of 2


def test_levenshtein_counts_word_edits():
    assert levenshtein("a b c".split(), "a x c".split()) == 1
    assert levenshtein("a b c d".split(), "b c d e".split()) == 2  # delete a, insert e
    assert levenshtein([], "a b".split()) == 2 and levenshtein("a b".split(), "a b".split()) == 0
    assert levenshtein(list("kitten"), list("sitting")) == 3


def _child(text: str, parent: str, label: str = "positive", **lineage) -> Example:
    parent_row = {"id": "p", "inputs": {"text": parent}, "label": label}
    return Example({"text": text}, label, lineage={"extrapolates": parent_row, **lineage})


def test_parent_child_similarity_orders_copies_paraphrases_and_unrelated_rows():
    task = load_task("sst2")
    parent = "the acting is superb and the story moved me to tears"
    copy = parent_child(task, [_child(parent, parent)])
    near = parent_child(task, [_child("the acting is wonderful and the story made me cry", parent)])
    far = parent_child(task, [_child("an invoice paid late last quarter", parent)])
    assert copy["parent_child_cos"] == pytest.approx(1.0, abs=1e-5) and copy["parent_child_edit"] == 0
    assert copy["parent_child_edit_norm"] == 0 and copy["parent_words"] == copy["child_words"] == 11
    assert copy["parent_child_cos"] > near["parent_child_cos"] > far["parent_child_cos"]
    assert 0 < near["parent_child_edit_norm"] < far["parent_child_edit_norm"] == 1.0
    assert near["parent_child_edit"] == 4  # word-level: superb→wonderful, moved→made, to→cry, tears deleted
    rows = [
        _child(parent, parent, ees_round=1),
        _child("so moving", parent, ees_round=2),
        _child("fine", parent, ees_round=2),
        Example({"text": "a plain zerogen row"}, "negative", lineage={"method": "zerogen"}),  # skipped
        Example({"text": "broken parent"}, "negative", lineage={"extrapolates": {"inputs": {}}}),  # skipped
    ]  # fmt: skip
    mixed = parent_child(task, rows)
    assert mixed["extrapolated_rows"] == 3 and mixed["extrapolated_by_round"] == {"1": 1, "2": 2}
    none = parent_child(task, rows[3:])
    assert none["extrapolated_rows"] == 0 and none["parent_child_cos"] is None and none["extrapolated_by_round"] is None


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
            if not flip:  # dawgen's first 6 rows extrapolate a real row: 3 copy it, 3 are other rows
                for i, r in enumerate(rows[:6]):
                    parent = rows[0] if i >= 3 else r
                    extrapolates = {"id": "p", "inputs": {"text": parent["text"]}, "label": r["label"]}
                    r["lineage"] = {"extrapolates": extrapolates, "ees_round": 1 + i % 2}
            # a grid id ("dawgen-3ep") names the set, not the method's name (two configs of one method)
            directory = run / "synthetic" / "sst2" / "k16" / f"seed{seed}" / (method if flip else "dawgen-3ep")
            directory.mkdir(parents=True)
            (directory / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            # what tuned the generator: soft prompts (FewGen/DawGen) on seed 13, a DAFTT teacher on seed 21
            tuned = {} if flip else {"tuning": {"wall_time_s": 30.0}} if seed == 13 else {"teacher_time_s": 12.0}
            write_json(directory / "card.json", {"task": "sst2", "method": method, "split_seed": seed,
                                                 "generated": 50, "kept_after_filters": 40, **tuned})
    command = [sys.executable, "-m", "fewforge.cli.app", "quality", str(run), "--coverage-rows", "40"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    quality = json.loads((run / "quality.json").read_text())
    assert len(quality["sets"]) == 4 and quality["auditors"]["sst2"]["train_rows"] == 270
    fidelity = {(s["method"], s["seed"]): s["label_fidelity"] for s in quality["sets"]}
    for seed in (13, 21):
        assert fidelity[("dawgen-3ep", seed)] > 0.5
        assert fidelity[("zerogen", seed)] == pytest.approx(1 - fidelity[("dawgen-3ep", seed)])
    assert all(s["keep_rate"] == pytest.approx(0.8) for s in quality["sets"])
    tuning = {(s["method"], s["seed"]): s["tuning_s"] for s in quality["sets"]}
    assert tuning == {("zerogen", 13): None, ("zerogen", 21): None, ("dawgen-3ep", 13): 30.0, ("dawgen-3ep", 21): 12.0}
    for s in quality["sets"]:
        assert 0 < s["self_bleu"] < 100 and s["self_bleu_rows"] == 40
        assert 0 <= s["coverage"] <= 1 and s["coverage_rows"] == 40 and s["coverage_map"]["projection"] == "tsne"
        assert s["coverage_radius"] == pytest.approx(2 * s["coverage_map"]["gold_nn_median"])
        if s["method"] == "dawgen-3ep":
            assert s["extrapolated_rows"] == 6 and s["extrapolated_by_round"] == {"1": 3, "2": 3}
            assert 0.5 < s["parent_child_cos"] < 1 and 0 < s["parent_child_edit_norm"] < 1
        else:
            assert s["extrapolated_rows"] == 0 and s["parent_child_cos"] is None
    assert quality["options"]["coverage_gamma"] == 2.0
    reference = quality["coverage_reference"]["sst2"]
    assert quality["options"]["coverage_rows"] == 40
    assert reference["coverage_rows"] == 40 and 0.5 < reference["coverage"] <= 1
    header, rows = quality_rows(quality)
    assert [r[1] for r in rows] == ["zerogen", "dawgen-3ep"] and all(r[2] == "2" for r in rows)
    assert {"self-BLEU", "coverage %", "extrapolated", "cos parent", "edit / length"} <= set(header)
    assert rows[0][header.index("cos parent")] == "" and rows[1][header.index("extrapolated")] == "6"
    note = columns_note(quality)
    assert "γ = 2 × the median" in note and "by other real rows, the same way: sst2" in note
    results = {"meta": {}, "summary": []}
    assert "Synthetic data quality" in markdown(results, [], "t", None, quality)

    bad = subprocess.run([sys.executable, "-m", "fewforge.cli.app", "quality", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a run directory" in bad.stderr and "Traceback" not in bad.stderr


def _quality(with_new_keys: bool) -> dict:
    """A quality.json of two sets; without the new keys it is one written before them."""
    sets = []
    for method, shift in (("zerogen", 5.0), ("s3", 0.0)):
        s = {"path": f"synthetic/sst2/k16/seed13/{method}", "task": "sst2", "method": method, "seed": 13, "shots": 16,
             "rows": 40, "label_fidelity": 0.9, "distinct_2": 0.5, "cos_same_label": 0.3, "cos_other_labels": 0.2,
             "cos_gap": 0.1, "keep_rate": 0.8, "tuning_s": None}  # fmt: skip
        if with_new_keys:
            gold = [[float(x), float(y)] for x in range(4) for y in range(4)]
            s |= {"self_bleu": 12.5, "self_bleu_rows": 40, "coverage": 0.25 if shift else 1.0, "coverage_rows": 16,
                  "coverage_radius": 2.0, "extrapolated_rows": 0 if shift else 6,
                  "parent_child_cos": None if shift else 0.91, "parent_child_edit_norm": None if shift else 0.7,
                  "coverage_map": {"projection": "tsne", "gamma": 2.0, "gold_nn_median": 1.0, "gold": gold,
                                   "synthetic": [[x + shift, y] for x, y in gold]}}  # fmt: skip
        sets.append(s)
    return {"auditors": {"sst2": {"learner": "linear-probe", "train_rows": 270, "test_accuracy": 0.8}}, "sets": sets}


def test_the_report_shows_the_new_columns_and_the_coverage_map_and_still_renders_an_old_quality_json(tmp_path):
    from fewforge.evaluation import write_results
    from fewforge.evaluation.plots import coverage_maps
    from fewforge.evaluation.report import markdown, render_html, write_report
    from fewforge.files import write_json

    results = {"meta": {}, "summary": []}
    old, new = _quality(False), _quality(True)
    old_header = ["task", "method", "sets", "rows", "label fidelity %", "distinct-2", "cos same label",
                  "cos other labels", "gap", "kept %", "tuning s"]  # fmt: skip
    assert quality_rows(old)[0] == old_header and columns_note(old) == ""
    page, text = render_html(results, [], "t", old), markdown(results, [], "t", None, old)
    assert "Synthetic data quality" in page and "<svg" not in page and "| zerogen | 1 | 40 | 90.0 |" in text
    header, rows = quality_rows(new)
    assert header[5:7] == ["distinct-2", "self-BLEU"] and "coverage %" in header
    assert [r[header.index("coverage %")] for r in rows] == ["25.0", "100.0"]
    assert [r[header.index("cos parent")] for r in rows] == ["", "0.910"]
    no_parents = {**new, "sets": [{**s, "extrapolated_rows": 0, "parent_child_cos": None} for s in new["sets"]]}
    assert "extrapolated" not in quality_rows(no_parents)[0] and "cos parent" not in quality_rows(no_parents)[0]
    svg = coverage_maps(new)
    assert svg.startswith("<svg") and "25.0% covered" in svg and "100.0% covered" in svg
    page = render_html(results, [], "t", new)
    assert "Coverage of the real train rows" in page and "<svg" in page and "self-BLEU" in page
    text = markdown(results, [], "t", None, new, "report-coverage.svg")
    assert "| self-BLEU |" in text and "![coverage of the real train rows" in text and "(report-coverage.svg)" in text
    write_results(tmp_path / "results.json", [], [], {"config": {"seeds": [13]}, "synthetic_sets": {}})
    write_json(tmp_path / "quality.json", new)
    write_report(tmp_path)
    assert (tmp_path / "report-coverage.svg").read_text().startswith("<svg")
    assert "(report-coverage.svg)" in (tmp_path / "report.md").read_text()


def test_a_tuned_sets_guard_and_diagnostics_become_quality_columns():
    from fewforge.evaluation.tuning_diagnostics import tuning_diagnostics

    tuning = {
        "guard": {"kept_epoch": 0, "epochs": [
            {"epoch": 0, "drift": [0.0, 0.0], "dev_accuracy": 0.75}, {"epoch": 1, "drift": [0.4, 1.5], "dev_accuracy": 0.5}]},
        "diagnostics": [{"epoch": 1, "effective_tokens": 10.0, "valid_tokens": 40.0, "max_over_mean_weight": 6.0,
                         "hinge": 0.98, "hinge_share": 0.3}],
    }  # fmt: skip
    d = tuning_diagnostics(tuning)
    assert d == {"kept_epoch": 0, "dev_acc_untuned": 0.75, "dev_acc_kept": 0.75, "effective_share": 0.25,
                 "max_over_mean_weight": 6.0, "hinge": 0.98, "hinge_share": 0.3, "drift": 1.5,
                 "audit_untuned": None, "audit_kept": None}  # fmt: skip
    assert set(tuning_diagnostics({}).values()) == {None}  # an untuned set (ZeroGen) has none
    quality = {"sets": [{"task": "sst2", "method": "zerogen", "rows": 10, **tuning_diagnostics({})},
                        {"task": "sst2", "method": "dawgen", "rows": 10, **d}]}  # fmt: skip
    header, rows = quality_rows(quality)
    assert [r[header.index("kept epoch")] for r in rows] == ["", "0"]
    assert [r[header.index("dev gen-acc kept %")] for r in rows] == ["", "75.0"]
    assert "kept epoch = the tuning epoch the guard kept" in columns_note(quality)
    assert "kept epoch" not in quality_rows({"sets": [quality["sets"][0]]})[0]
    assert "guard audit kept %" not in header  # the dev guard's sets have no audit columns

    audited = {**tuning, "guard": {"kept_epoch": 1, "criterion": "audit", "epochs": [
        {"epoch": 0, "drift": [0.0, 0.0], "audit_fidelity": 0.5}, {"epoch": 1, "drift": [0.1, 0.2], "audit_fidelity": 0.625}]}}
    a = tuning_diagnostics(audited)
    assert (a["audit_untuned"], a["audit_kept"], a["dev_acc_kept"]) == (0.5, 0.625, None)
    header, rows = quality_rows({"sets": [{"task": "sst2", "method": "fewgen", "rows": 10, **a}]})
    assert rows[0][header.index("guard audit untuned %")] == "50.0" and rows[0][header.index("guard audit kept %")] == "62.5"
    assert "labels as intended, untuned and as kept (guard: audit)" in columns_note({"sets": [{"audit_kept": 0.6}]})
