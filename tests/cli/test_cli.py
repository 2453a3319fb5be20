"""The `fewforge` command end to end, as a user runs it (subprocesses, real packaged models and data)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

# A reduced grid: tiny synthesis and training budgets, same code paths as the default run.
TINY_ENCODER = {"max_length": 48, "batch_size": 8, "min_steps": 4, "max_steps": 4, "eval_every": 2}


def fewforge(*args: str, env: dict[str, str] | None = None, timeout: int = 900, cwd: Path | None = None):
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "fewforge.cli.app", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in error_lines[0], result.stderr


def write_grid(path: Path, **values) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


def test_tasks_lists_builtins() -> None:
    result = fewforge("tasks")
    assert result.returncode == 0, result.stderr
    for name in ("sst2", "rte", "bbc", "qqp"):
        assert name in result.stdout


def test_bad_input_is_one_line_and_touches_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir).mkdir()
    (run_dir / "results.json").write_text('{"records": [], "summary": [], "meta": {}}')
    before = sorted(p.name for p in run_dir.rglob("*"))
    assert_one_line_error(fewforge("run", "--task", "nope", "--output", str(run_dir)), "nope")
    assert_one_line_error(fewforge("run", "--shots", "0", "--output", str(run_dir)), "shots")
    grid = write_grid(tmp_path / "g.yaml", learners=[{"name": "encoder", "options": {"learning_rte": 1e-4}}])
    assert_one_line_error(fewforge("run", str(grid), "--output", str(run_dir)), "learners[0].options.learning_rte")
    assert_one_line_error(fewforge("run", str(tmp_path / "absent.yaml"), "--output", str(run_dir)), "absent.yaml")
    assert sorted(p.name for p in run_dir.rglob("*")) == before  # validated before anything is written


def test_missing_data_dir_is_one_line_error(tmp_path: Path) -> None:
    result = fewforge("sample", "--task", "sst2", "--data", str(tmp_path / "absent"), "--output", str(tmp_path / "run"))
    assert_one_line_error(result, "absent")


def test_malformed_jsonl_names_file_and_line(tmp_path: Path, data_dir: Path) -> None:
    task_dir = tmp_path / "data" / "sst2"
    task_dir.mkdir(parents=True)
    lines = (data_dir / "sst2" / "train.jsonl").read_text().splitlines()[:200]
    lines[6] = '{"text": "broken'
    (task_dir / "train.jsonl").write_text("\n".join(lines) + "\n")
    (task_dir / "dev.jsonl").write_text((data_dir / "sst2" / "dev.jsonl").read_text())
    result = fewforge("sample", "--task", "sst2", "--data", str(tmp_path / "data"), "--output", str(tmp_path / "run"))
    assert_one_line_error(result, "train.jsonl", "7")


def test_unreachable_server_keeps_finished_work(tmp_path: Path, data_dir: Path) -> None:
    run_dir = tmp_path / "run"
    result = fewforge(
        "generate",
        "--task",
        "sst2",
        "--data",
        str(data_dir),
        "--shots",
        "4",
        "--seeds",
        "13",
        "--per-label",
        "2",
        "--generator",
        "openai:some-model@http://127.0.0.1:9/v1",
        "--output",
        str(run_dir),
    )
    assert_one_line_error(result, "127.0.0.1:9")
    # the few-shot split sampled before the failure is on disk and reused by the next run
    assert (run_dir / "fewshot" / "sst2" / "k4" / "seed13" / "train.jsonl").exists()
    assert (run_dir / "fewshot" / "sst2" / "k4" / "seed13" / "done.json").exists()


@pytest.mark.slow  # over a minute on 2 cores: CI's -m slow runs it
def test_run_grid_end_to_end_then_resume_then_change(tmp_path: Path) -> None:
    """The zero-flag data path (packaged BBC, packaged SmolLM2, packaged MiniLM), reduced in size."""
    run_dir = tmp_path / "run"
    grid = dict(
        seeds=[13],
        shots=[2, 4],
        per_label=[3],
        max_test=40,
        learners=["linear-probe", {"name": "encoder", "shots": [2], "options": TINY_ENCODER}],
    )
    config = write_grid(tmp_path / "tiny.yaml", **grid)
    env = {"FEWFORGE_DATA": ""}  # no data directory: the packaged corpus must be used
    first = fewforge("run", str(config), "--output", str(run_dir), env=env)
    assert first.returncode == 0, first.stderr

    results = json.loads((run_dir / "results.json").read_text())
    cells = {r["cell"] for r in results["records"]}
    assert cells == {
        "bbc/k2/seed13/linear-probe/real",
        "bbc/k2/seed13/linear-probe/real_synthetic-zerogen-n3",
        "bbc/k4/seed13/linear-probe/real",
        "bbc/k4/seed13/linear-probe/real_synthetic-zerogen-n3",
        "bbc/k2/seed13/encoder/real",
        "bbc/k2/seed13/encoder/real_synthetic-zerogen-n3",
    }
    for record in results["records"]:
        assert 0.0 <= record["metrics"]["accuracy"] <= 1.0 and record["test_size"] == 40
        predictions = (run_dir / record["paths"]["predictions"]).read_text().splitlines()
        assert len(predictions) == 40 and len(json.loads(predictions[0])["proba"]) == 5
    mixed = [g for g in results["summary"] if g["condition"] == "real+synthetic"]
    assert len(mixed) == 3 and all(g["vs_baseline"]["ci"] is not None for g in mixed)
    assert "real + zerogen (3/label)" in first.stdout  # the final table
    with sqlite3.connect(run_dir / "results.sqlite") as db:
        assert db.execute("select count(*), min(status), max(status) from cells").fetchone() == (6, "done", "done")
    assert (run_dir / "report.html").is_file() and (run_dir / "report.md").is_file()

    set_dir = run_dir / "synthetic" / "bbc" / "seed13" / "zerogen"  # one set serves shots 2 and 4
    rows = [json.loads(line) for line in (set_dir / "data.jsonl").read_text().splitlines()]
    assert len(rows) == 15 and {r["label"] for r in rows} == {"business", "entertainment", "politics", "sports", "tech"}
    assert all(r["text"].strip() and r["lineage"]["method"] == "zerogen" for r in rows)
    assert (set_dir / "hf" / "dataset_info.json").is_file() and (set_dir / "README.md").is_file()

    # A rerun reuses everything: same synthetic bytes, same records, nothing retrained.
    before = (set_dir / "data.jsonl").read_bytes()
    record_path = run_dir / "cells" / "bbc" / "k2" / "seed13" / "encoder" / "real" / "record.json"
    mtime = record_path.stat().st_mtime_ns
    second = fewforge("run", str(config), "--output", str(run_dir), env=env)
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stderr
    assert (set_dir / "data.jsonl").read_bytes() == before and record_path.stat().st_mtime_ns == mtime
    assert json.loads((run_dir / "results.json").read_text())["records"] == results["records"]

    # A bigger synthetic budget redoes the set (its first rows come from the cache) and keeps the old
    # set in _stale/; real-only cells are untouched.
    bigger = write_grid(tmp_path / "bigger.yaml", **{**grid, "per_label": [4]})
    third = fewforge("run", str(bigger), "--output", str(run_dir), env=env)
    assert third.returncode == 0, third.stderr
    assert "per_label [3] → [4]" in third.stderr
    assert len((set_dir / "data.jsonl").read_text().splitlines()) == 20
    assert json.loads((set_dir / "card.json").read_text())["cache"]["hits"] >= 15
    assert list((run_dir / "_stale" / "synthetic").rglob("data.jsonl"))
    assert record_path.stat().st_mtime_ns == mtime

    report = fewforge("report", str(run_dir), "--markdown", str(tmp_path / "out.md"))
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "out.md").read_text()
    assert text.startswith("# fewforge report: run") and "real + zerogen (4/label)" in text
    assert f"fewforge report {run_dir}" in text  # the exact command is in the document


@pytest.mark.slow  # 40 s or more on 2 cores: CI's -m slow runs it
def test_train_prompt_tuning_with_surgery_then_predict_and_evaluate(tmp_path: Path, data_dir: Path) -> None:
    rows = [json.loads(line) for line in (data_dir / "sst2" / "train.jsonl").read_text().splitlines()[:400]]
    by_label: dict[str, list[dict]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    train = [r for label in sorted(by_label) for r in by_label[label][:4]]
    dev = [r for label in sorted(by_label) for r in by_label[label][4:8]]
    for name, part in (("train", train), ("dev", dev)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    synthetic = [{"text": "A warm, funny film.", "label": "positive"}, {"text": "Tedious and flat.", "label": "negative"}]
    (tmp_path / "syn.jsonl").write_text("".join(json.dumps(r) + "\n" for r in synthetic))
    tiny = ["-O", "prompt_tokens=4", "-O", "min_steps=4", "-O", "max_steps=4", "-O", "eval_every=2", "-O", "threads=2"]
    common = ["train", "--task", "sst2", "--train", str(tmp_path / "train.jsonl"), "--dev", str(tmp_path / "dev.jsonl"),
              "--synthetic", str(tmp_path / "syn.jsonl"), "--learner", "prompt-tuning"]
    model = tmp_path / "model"
    result = fewforge(*common, "--strategy", "paired+gs", "--epsilon", "0.5", *tiny, "--output", str(model))
    assert result.returncode == 0, result.stderr
    assert "gradient conflicts in" in result.stderr
    card = json.loads((model / "model_card.json").read_text())
    assert card["learner"] == "prompt-tuning" and card["config"]["epsilon"] == 0.5
    assert card["training"]["synthetic"] == 2 and card["training"]["trainable_parameters"] == 4 * 576
    assert len(json.loads((model / "training.json").read_text())["surgery"]) == 4
    assert "fewforge predict --model" in (model / "README.md").read_text()

    predicted = subprocess.run(
        [sys.executable, "-m", "fewforge.cli.app", "predict", "--model", str(model)],
        input="A masterpiece.\nUnwatchable.\n", capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert predicted.returncode == 0, predicted.stderr
    lines = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [r["input"] for r in lines] == ["A masterpiece.", "Unwatchable."]
    assert all(r["label"] in ("negative", "positive") and abs(sum(r["proba"].values()) - 1) < 1e-3 for r in lines)
    scored = fewforge("evaluate", "--model", str(model), "--test", str(tmp_path / "dev.jsonl"))
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["test_size"] == 8

    assert_one_line_error(fewforge(*common, "--epsilon", "-1", "--output", str(tmp_path / "m2")), "epsilon")
    (tmp_path / "odd.jsonl").write_text(json.dumps({"text": "meh", "label": "neutral"}) + "\n")
    odd = [*common[:-4], "--synthetic", str(tmp_path / "odd.jsonl"), "--learner", "prompt-tuning"]
    assert_one_line_error(fewforge(*odd, *tiny, "--output", str(tmp_path / "m3")), "neutral")
    assert not (tmp_path / "m2").exists()
