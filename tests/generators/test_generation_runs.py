"""Generation at scale through the `fewforge` command, as a user with an API runs it: a loopback
OpenAI-compatible server (fake_openai.py) that refuses, fails and rate-limits; real SST-2 rows, ZeroGen,
the real MiniLM for filtering and the linear probe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from fake_openai import FakeOpenAI, Fault


def fewforge(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "fewforge.cli.app", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def grid(tmp_path: Path, data_dir: Path, url: str, name: str = "grid.yaml", **generator_options) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({
        "tasks": ["sst2"], "data": str(data_dir), "shots": [4], "seeds": [13], "per_label": [6],
        "methods": [{"name": "zerogen", "options": {"postprocess": {"near_dup": "ngram"}}}],
        "learners": ["linear-probe"], "max_test": 40,
        "generator": f"openai:fake@{url}",
        "generator_options": {"backoff": 0.01, "backoff_cap": 0.05, **generator_options},
    }))
    return path


def set_dir(run: Path) -> Path:
    return run / "synthetic" / "sst2" / "seed13" / "zerogen"


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    return line


def test_a_rejected_request_among_the_first_seven_leaves_the_set_filled(tmp_path: Path, data_dir: Path):
    with FakeOpenAI(rule=lambda n, b: Fault(400, "flagged by the moderation filter") if n == 3 else None, cap=80) as srv:
        run = tmp_path / "run"
        result = fewforge("generate", str(grid(tmp_path, data_dir, srv.url)), "--output", str(run))
        assert result.returncode == 0, result.stderr
        rows = [json.loads(x) for x in (set_dir(run) / "data.jsonl").read_text().splitlines()]
        assert len(rows) == 12 and {r["label"] for r in rows} == {"positive", "negative"}
        (failure,) = [json.loads(x) for x in (set_dir(run) / "failures.jsonl").read_text().splitlines()]
        assert failure["status"] == 400 and failure["message"] == "flagged by the moderation filter"
        assert failure["attempts"] == 1 and len(failure["key"]) == 64
        card = json.loads((set_dir(run) / "card.json").read_text())
        assert card["failures"]["failed"] == 1 and card["spend"]["failed"] == 1
        assert card["postprocess"]["dropped"]["request_failed"] == 1  # topped up like a filtered row
        sent = srv.completions
        again = fewforge("generate", str(grid(tmp_path, data_dir, srv.url)), "--output", str(run))
        assert again.returncode == 0 and srv.completions == sent  # a finished set is not asked again


def test_too_many_failures_fail_the_set_in_one_line_and_a_rerun_asks_only_for_those(tmp_path: Path, data_dir: Path):
    failing = {"on": True}

    def rule(n: int, body: dict) -> Fault | None:
        return Fault(400, "context length exceeded") if failing["on"] and n % 2 else None

    with FakeOpenAI(rule=rule, cap=200) as srv:
        run = tmp_path / "run"
        line = one_error_line(fewforge("generate", str(grid(tmp_path, data_dir, srv.url)), "--output", str(run)))
        assert "generation requests failed" in line and "max_failed_fraction 0.2" in line
        assert "400: context length exceeded" in line
        answered = srv.completions
        failing["on"] = False
        result = fewforge("generate", str(grid(tmp_path, data_dir, srv.url)), "--output", str(run))
        assert result.returncode == 0, result.stderr
        card = json.loads((set_dir(run) / "card.json").read_text())
        assert card["cache"]["hits"] > 0 and srv.completions - answered == card["cache"]["misses"]
        assert max(srv.answered.values()) == 1  # no request answered in the failed run was sent again


def test_estimate_budget_and_credentials(tmp_path: Path, data_dir: Path):
    with FakeOpenAI(cap=80) as srv:
        url = srv.url.replace("http://", "http://alice:pw-secret@")
        priced = {"price": {"input": 2.0, "output": 8.0}}
        path = grid(tmp_path, data_dir, url, **priced)
        run = tmp_path / "run"
        before = fewforge("estimate", str(path), "--output", str(run))
        assert before.returncode == 0, before.stderr
        total = [x for x in before.stdout.splitlines() if "total" in x][0].split("│")
        assert total[2].strip() == "14" and total[4].strip() == "14"  # ceil(6 * 1.1) per label, none cached
        assert "$" in before.stdout and "pw-secret" not in before.stdout + before.stderr

        tight = grid(tmp_path, data_dir, url, "tight.yaml", **priced, budget_usd=0.0001)
        line = one_error_line(fewforge("run", str(tight), "--output", str(run)))
        assert "above budget_usd" in line and srv.count == 0  # refused before the first request

        result = fewforge("run", str(path), "--output", str(run))
        assert result.returncode == 0, result.stderr
        after = fewforge("estimate", str(path), "--output", str(run))
        assert "finished" in after.stdout
        assert [x for x in after.stdout.splitlines() if "total" in x][0].split("│")[4].strip() == "0"
        card = json.loads((set_dir(run) / "card.json").read_text())
        assert card["spend"]["usd"] > 0 and card["spend"]["prompt_tokens"] > 0
        for file in [p for p in run.rglob("*") if p.is_file() and p.suffix in (".yaml", ".json", ".log", ".md", ".html")]:
            assert "pw-secret" not in file.read_text(errors="ignore"), file
        assert f"{card['spend']['usd']:.4f}" in (run / "report.md").read_text()  # the spend in the report


def test_submit_only_then_generate_collects(tmp_path: Path, data_dir: Path):
    with FakeOpenAI(batch_polls=1, cap=80) as srv:
        path = tmp_path / "grid.yaml"
        grid(tmp_path, data_dir, srv.url)
        values = yaml.safe_load(path.read_text())
        values["generator"] = f"openai-batch:fake@{srv.url}"
        values["generator_options"] = {"poll_interval": 0.01}
        path.write_text(yaml.safe_dump(values))
        run = tmp_path / "run"
        submitted = fewforge("generate", str(path), "--output", str(run), "--submit-only")
        assert submitted.returncode == 0, submitted.stderr
        assert "submitted" in submitted.stdout and "batch-1" in submitted.stdout
        assert len(srv.batches) == 1 and not (set_dir(run) / "done.json").exists()
        collected = fewforge("generate", str(path), "--output", str(run))
        assert collected.returncode == 0, collected.stderr
        assert (set_dir(run) / "done.json").exists() and len(srv.batches) >= 1
        assert len((set_dir(run) / "data.jsonl").read_text().splitlines()) == 12
