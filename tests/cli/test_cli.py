"""The `fewforge` command end to end, as a user runs it (subprocesses, real packaged models and data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

# A reduced experiment: tiny synthesis and training budgets, same code paths as the default run.
TINY_LEARNER = {"max_length": 64, "batch_size": 8, "min_steps": 4, "max_steps": 8, "eval_every": 4}


def fewforge(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "fewforge.cli.app", *args],
        capture_output=True, text=True, env=full_env, timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in error_lines[0], result.stderr


def write_config(path: Path, **values) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


def test_tasks_lists_builtins() -> None:
    result = fewforge("tasks")
    assert result.returncode == 0, result.stderr
    for name in ("sst2", "rte", "bbc", "qqp"):
        assert name in result.stdout


def test_unknown_task_is_one_line_error(tmp_path: Path) -> None:
    assert_one_line_error(fewforge("run", "--task", "nope", "--output", str(tmp_path)), "nope")


def test_invalid_option_is_one_line_error(tmp_path: Path) -> None:
    assert_one_line_error(fewforge("run", "--shots", "0", "--output", str(tmp_path)), "shots")


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
        "generate", "--task", "sst2", "--data", str(data_dir), "--seeds", "13", "--per-label", "2",
        "--generator", "openai:some-model@http://127.0.0.1:9/v1", "--output", str(run_dir),
    )
    assert_one_line_error(result, "127.0.0.1:9")
    # the few-shot split sampled before the failure is on disk and reused by the next run
    assert (run_dir / "fewshot" / "seed13" / "train.jsonl").exists()
    assert (run_dir / "fewshot" / "seed13" / "done.json").exists()


def test_run_end_to_end_then_resume(tmp_path: Path) -> None:
    """The zero-flag default path (packaged BBC, packaged SmolLM2, packaged MiniLM), reduced in size."""
    run_dir = tmp_path / "run"
    config = write_config(
        tmp_path / "tiny.yaml", seeds=[13], shots=4, per_label=3, max_test=40, learner_options=TINY_LEARNER
    )
    env = {"FEWFORGE_DATA": ""}  # no data directory: the packaged corpus must be used
    first = fewforge("run", "--config", str(config), "--output", str(run_dir), env=env)
    assert first.returncode == 0, first.stderr

    results = json.loads((run_dir / "results.json").read_text())
    assert {(r["condition"], r["seed"]) for r in results["records"]} == {("real", 13), ("real+synthetic", 13)}
    for record in results["records"]:
        assert 0.0 <= record["accuracy"] <= 1.0 and 0.0 <= record["macro_f1"] <= 1.0
        assert record["test_size"] == 40
    assert set(results["summary"]) == {"real", "real+synthetic"}
    assert "real+synthetic" in first.stdout  # the final table

    synthetic_path = run_dir / "synthetic" / "seed13" / "zerogen.jsonl"
    rows = [json.loads(line) for line in synthetic_path.read_text().splitlines()]
    labels = {"business", "entertainment", "politics", "sports", "tech"}
    assert len(rows) == 3 * len(labels) and {r["label"] for r in rows} == labels
    assert all(r["text"].strip() and r["lineage"]["method"] == "zerogen" for r in rows)
    assert (run_dir / "config.yaml").exists() and (run_dir / "logs" / "run.log").exists()
    assert (run_dir / "models" / "real_synthetic-seed13").is_dir()

    # A rerun reuses everything: same synthetic bytes, same records, nothing retrained.
    synthetic_before = synthetic_path.read_bytes()
    record_path = run_dir / "records" / "real_synthetic-seed13.json"
    mtime = record_path.stat().st_mtime_ns
    second = fewforge("run", "--config", str(config), "--output", str(run_dir), env=env)
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stderr
    assert synthetic_path.read_bytes() == synthetic_before
    assert record_path.stat().st_mtime_ns == mtime
    assert json.loads((run_dir / "results.json").read_text())["records"] == results["records"]

    # Changing the synthesis budget redoes synthesis and keeps the old data in _stale/.
    bigger = write_config(
        tmp_path / "bigger.yaml", seeds=[13], shots=4, per_label=4, max_test=40, learner_options=TINY_LEARNER
    )
    third = fewforge("run", "--config", str(bigger), "--output", str(run_dir), env=env)
    assert third.returncode == 0, third.stderr
    assert "per_label 3 → 4" in third.stderr
    assert len(synthetic_path.read_text().splitlines()) == 4 * len(labels)
    assert list((run_dir / "_stale").rglob("zerogen.jsonl"))


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_default_run_full_size(tmp_path: Path) -> None:
    """`fewforge run` with no options at all, full size, as the README's first command runs it; then
    again, which must reuse every finished stage and leave the synthetic data byte for byte."""

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fewforge.cli.app", "run"], cwd=tmp_path, capture_output=True, text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "FEWFORGE_DATA": ""}, timeout=1800,
        )

    first = run()
    assert first.returncode == 0, first.stderr
    run_dir = tmp_path / "runs" / "default"
    results = json.loads((run_dir / "results.json").read_text())
    assert len(results["records"]) == 6
    assert {r["condition"] for r in results["records"]} == {"real", "real+synthetic"}
    assert all(r["accuracy"] > 0.8 for r in results["records"] if r["condition"] == "real")  # measured ~0.95
    assert all(0.2 < r["accuracy"] <= 1.0 for r in results["records"])  # 5 topics: chance is 0.2
    assert "real+synthetic" in first.stdout and "±" in first.stdout
    synthetic = run_dir / "synthetic" / "seed13" / "zerogen.jsonl"
    assert len(synthetic.read_text().splitlines()) >= 500
    before = {p: p.read_bytes() for p in run_dir.glob("synthetic/*/zerogen.jsonl")}

    second = run()
    assert second.returncode == 0, second.stderr
    assert {p: p.read_bytes() for p in run_dir.glob("synthetic/*/zerogen.jsonl")} == before
    assert json.loads((run_dir / "results.json").read_text())["records"] == results["records"]
    assert not (run_dir / "_stale").exists()
