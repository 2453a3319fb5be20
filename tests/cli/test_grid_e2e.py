"""Slow end-to-end runs (CI runs them with `-m slow`): the smoke grid survives SIGKILL during generation
and during training, its report renders in headless Chromium, and the default run works at full size."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "examples" / "smoke-grid.yaml"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def _start(run_dir: Path, data_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fewforge.cli.app",
            "run",
            str(SMOKE),
            "--data",
            str(data_dir),
            "--output",
            str(run_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def _query(path: Path, sql: str) -> list[tuple]:
    if not path.exists():
        return []
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # the table is not created yet
        return []


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 900) -> None:
    """SIGKILL the run as soon as `ready()` holds (polled twice a second)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before the kill point:\n{proc.stderr.read()[-3000:]}")
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            return
        time.sleep(0.5)
    proc.kill()
    raise AssertionError("the kill point was never reached")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_dir: Path) -> dict:
    """The smoke grid, killed with SIGKILL during generation, again during training, then finished."""
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    cache, store = run_dir / "cache" / "generations.sqlite", run_dir / "results.sqlite"

    first = _start(run_dir, data_dir)  # killed once the first generated chunk is committed
    _kill_when(
        first, lambda: bool(_query(cache, "select count(*) from generations")[0][0] if _query(cache, "select 1") else 0)
    )
    cached_before = _query(cache, "select count(*) from generations")[0][0]
    assert cached_before > 0 and not (run_dir / "results.json").exists()

    second = _start(run_dir, data_dir)  # killed in training, once some cells are done and one is running
    _kill_when(
        second,
        lambda: (
            _query(store, "select count(*) from cells where status = 'done'")[0][0] >= 3
            and bool(_query(store, "select 1 from cells where status = 'running'"))
        ),
    )
    states = dict(_query(store, "select status, count(*) from cells group by status"))
    assert states.get("done", 0) >= 3 and states.get("running", 0) == 1 and not (run_dir / "results.json").exists()

    third = subprocess.run(
        [
            sys.executable,
            "-m",
            "fewforge.cli.app",
            "run",
            str(SMOKE),
            "--data",
            str(data_dir),
            "--output",
            str(run_dir),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=1800,
    )
    assert third.returncode == 0, third.stderr[-3000:]
    return {"dir": run_dir, "cached_before": cached_before, "stdout": third.stdout, "stderr": third.stderr}


def test_smoke_grid_survives_kill_9_with_every_cell_once(smoke_run: dict) -> None:
    run_dir = smoke_run["dir"]
    results = json.loads((run_dir / "results.json").read_text())
    cells = [r["cell"] for r in results["records"]]
    # 2 tasks x 2 shots x 2 seeds x 2 learners x (real, real+synthetic)
    assert len(cells) == 32 and len(set(cells)) == 32
    rows = sqlite3.connect(run_dir / "results.sqlite").execute("select cell, status, attempts from cells").fetchall()
    assert sorted(c for c, _, _ in rows) == sorted(cells) and {s for _, s, _ in rows} == {"done"}
    assert sum(a for _, _, a in rows) in range(32, 34)  # the cell killed mid-training ran twice, no other
    for cell in cells:  # exactly one finished record per cell folder
        folder = run_dir / "cells" / cell
        assert (folder / "done.json").is_file() and len(list(folder.glob("record.json"))) == 1
    # four synthetic sets (2 tasks x 2 seeds), each exactly 8 per label, no repeated ids or texts
    # a set is a finished folder with data.jsonl (its contamination check is a stage inside it)
    sets = sorted(p.parent for p in (run_dir / "synthetic").rglob("done.json") if (p.parent / "data.jsonl").is_file())
    assert len(sets) == 4
    hits = 0
    for folder in sets:
        rows = [json.loads(line) for line in (folder / "data.jsonl").read_text().splitlines()]
        assert (
            len(rows) == 16
            and len({r["id"] for r in rows}) == 16
            and len({r.get("text") or r["text_b"] for r in rows}) == 16
        )
        hits += json.loads((folder / "card.json").read_text())["cache"]["hits"]
    # generation resumed from the cache: what the killed runs generated was not generated again
    assert hits >= smoke_run["cached_before"] > 0
    keys = (
        sqlite3.connect(run_dir / "cache" / "generations.sqlite")
        .execute("select count(*), count(distinct key) from generations")
        .fetchone()
    )
    assert keys[0] == keys[1]
    assert "real + zerogen (8/label)" in smoke_run["stdout"]


def _screenshot(html: Path, png: Path) -> Path:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium is not installed: apt-get install -y chromium (.ci/run does)")
    profile = png.parent / "chromium-profile"
    subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1280,2400",
            f"--screenshot={png}",
            html.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert png.is_file() and png.stat().st_size > 10_000, "Chromium wrote no screenshot"
    return png


def test_report_renders_in_headless_chromium(smoke_run: dict, tmp_path: Path) -> None:
    from PIL import Image

    run_dir = smoke_run["dir"]
    result = subprocess.run(
        [sys.executable, "-m", "fewforge.cli.app", "report", str(run_dir)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    html = (run_dir / "report.html").read_text()
    assert "<svg" in html and "Accuracy vs shots" in html and "Dropped rows" in html and "95% CI" in html
    image = Image.open(_screenshot(run_dir / "report.html", tmp_path / "report.png")).convert("L")
    histogram = image.histogram()  # pixels per gray level, 0 (black) to 255 (white)
    dark = sum(histogram[:128]) / sum(histogram)
    assert 0.005 < dark < 0.5, dark  # text, tables and plots on a white page: neither blank nor black
    assert sum(1 for count in histogram if count) > 50  # anti-aliased text and plot lines, not a flat fill


@pytest.mark.timeout(3600)
def test_default_run_full_size(tmp_path: Path) -> None:
    """`fewforge run` with no options at all, full size, as the README's first command runs it; then
    again, which must reuse every finished stage and leave the synthetic data byte for byte."""

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fewforge.cli.app", "run"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**_env(), "FEWFORGE_DATA": ""},
            timeout=1800,
        )

    first = run()
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = tmp_path / "runs" / "default"
    results = json.loads((run_dir / "results.json").read_text())
    real = [r for r in results["records"] if r["condition"] == "real" and r["learner"] == "linear-probe"]
    assert all(r["metrics"]["accuracy"] > 0.6 for r in real)  # measured 0.75 (2 shots) to 0.95 (16 shots)
    assert all(0.2 < r["metrics"]["accuracy"] <= 1.0 for r in results["records"])  # 5 topics: chance is 0.2
    assert "real + zerogen" in first.stdout and "±" in first.stdout
    assert (run_dir / "report.html").is_file()
    before = {p: p.read_bytes() for p in run_dir.glob("synthetic/*/*/*/data.jsonl")}
    assert len(before) == 3  # one set per seed serves every shots value

    second = run()
    assert second.returncode == 0, second.stderr
    assert {p: p.read_bytes() for p in run_dir.glob("synthetic/*/*/*/data.jsonl")} == before
    assert json.loads((run_dir / "results.json").read_text())["records"] == results["records"]
    assert not (run_dir / "_stale").exists()
