"""Fault injection on real, tiny grids (linear probe, a scripted generator, a copy of a few SST-2 rows):
what a user sees when a run directory is shared, misnamed, edited, damaged, filled up or killed, and
that the rerun after each fault finishes with every cell once (docs/run-directories.md)."""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from fault_tools import generator_texts, scripted_generator, snapshot, tiny_data
from rich.console import Console

from fewforge.config import RunConfig
from fewforge.errors import ConfigError
from fewforge.lock import RunInUseError
from fewforge.pipeline import run_experiment

TOOLS = Path(__file__).with_name("fault_tools.py")
GRID = {
    "tasks": ["sst2"], "shots": [2], "seeds": [13], "per_label": [4], "learners": ["linear-probe"],
    "conditions": ["real", "real+synthetic"],
}  # fmt: skip
CELLS = ["sst2/k2/seed13/linear-probe/real", "sst2/k2/seed13/linear-probe/real_synthetic-zerogen-n4"]


@pytest.fixture(scope="module")
def tiny(data_dir: Path, tmp_path_factory) -> Path:
    return tiny_data(data_dir, tmp_path_factory.mktemp("data"), tasks=("sst2", "rt-snippets"))


@pytest.fixture(scope="module")
def texts(data_dir: Path) -> dict[str, list[str]]:
    return generator_texts(data_dir)


@pytest.fixture
def scripted(monkeypatch, texts):
    """scripted(mode): every plan in this test gets the scripted generator answering in `mode`."""
    import fewforge.grid

    def install(mode: str = "unique") -> None:
        monkeypatch.setattr(fewforge.grid, "_generator", lambda cfg: scripted_generator(texts, mode))

    install()
    return install


def grid(tiny: Path, **changes: Any) -> RunConfig:
    return RunConfig(**{**GRID, "data": str(tiny), **changes})


def run(cfg: RunConfig, out: Path, log: Path | None = None) -> dict[str, Any]:
    console = Console(file=open(log or out.with_suffix(".console"), "a"), width=300)
    try:
        return run_experiment(cfg, out, console=console, report=False)
    finally:
        console.file.close()


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """`fewforge ARGS` in this process (so the scripted generator is in place): (exit code, stdout, stderr)."""
    from fewforge.cli.app import main

    argv, sys.argv = sys.argv, ["fewforge", *args]
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = argv
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *fragments: str) -> str:
    assert code == 2 and "Traceback" not in err, err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    for fragment in fragments:
        assert fragment in line, err
    return line


def every_cell_once(out: Path, cells: list[str] = CELLS) -> dict[str, Any]:
    results = json.loads((out / "results.json").read_text())
    assert sorted(r["cell"] for r in results["records"]) == sorted(cells)
    rows = sqlite3.connect(out / "results.sqlite").execute("select cell, status from cells where in_grid = 1").fetchall()
    assert sorted(rows) == sorted((c, "done") for c in cells)
    for cell in cells:
        assert (out / "cells" / cell / "done.json").is_file() and (out / "cells" / cell / "record.json").is_file()
    return results


@pytest.fixture(scope="module")
def finished(tiny: Path, texts, tmp_path_factory) -> Path:
    """The tiny grid, run once to the end; each test copies it."""
    import fewforge.grid

    out = tmp_path_factory.mktemp("finished") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fewforge.grid, "_generator", lambda cfg: scripted_generator(texts, "unique"))
        run(grid(tiny), out)
    every_cell_once(out)
    return out


@pytest.fixture
def done_run(finished: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE", **extra}


# -- 1. two runs on one directory -------------------------------------------------------------------


def test_a_second_run_on_a_directory_in_use_refuses_and_leaves_no_trace(done_run, tiny, data_dir, scripted, capsys):
    grid_file = done_run.parent / "grid.yaml"
    grid_file.write_text(yaml.safe_dump({**GRID, "data": str(tiny)}))
    # as if the last run had been interrupted while generating: the first run below generates again
    shutil.rmtree(done_run / "synthetic")
    shutil.rmtree(done_run / "cache")
    block = done_run.parent / "go"
    first = subprocess.Popen(
        [sys.executable, str(TOOLS), "run", str(grid_file), "--output", str(done_run), "--no-report"],
        env=_env(FAULT_DATA=str(data_dir), FAULT_BLOCK=str(block)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 240
        while not Path(str(block) + ".waiting").exists():  # the first run holds the lock and is generating
            assert first.poll() is None and time.time() < deadline, first.communicate()[1][-3000:]
            time.sleep(0.1)
        before = snapshot(done_run)
        code, _, err = cli(capsys, "run", str(grid_file), "--output", str(done_run))
        line = one_line_error(code, err, "is in use by", f"pid {first.pid}", "fewforge run", str(grid_file))
        assert "another --output" in err and "report" in err
        with pytest.raises(RunInUseError):  # the library refuses the same way
            run(grid(tiny), done_run)
        assert snapshot(done_run) == before, line  # nothing of the second run is on disk, not even a log line
        # read-only commands work beside the running grid
        code, out, err = cli(capsys, "report", str(done_run), "--html", str(done_run.parent / "r.html"),
                             "--md", str(done_run.parent / "r.md"))
        assert code == 0 and "real + zerogen (4/label)" in (done_run.parent / "r.md").read_text(), err
        code, out, err = cli(capsys, "cache", "info", "--output", str(done_run))
        assert code == 0 and "'rows': 0" in out and "damaged" not in out, err  # open, nothing committed yet
    finally:
        block.touch()
        _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-3000:]
    every_cell_once(done_run)
    assert json.loads((done_run / ".lock").read_text() or "{}") == {}  # released: nobody to name


# -- 2. names that are not folder names ---------------------------------------------------------------


@pytest.mark.parametrize("bad", ["..", ".", "a/b"])
def test_ids_that_are_not_folder_names_are_refused_before_anything_moves(done_run, tiny, scripted, bad):
    before = snapshot(done_run)
    with pytest.raises(ConfigError, match=r"methods\[0\]\.id .* cannot name a folder"):
        run(grid(tiny, methods=[{"name": "zerogen", "id": bad}]), done_run)
    with pytest.raises(ConfigError, match=r"learners\[0\]\.id .* cannot name a folder"):
        run(grid(tiny, learners=[{"name": "linear-probe", "id": bad}]), done_run)
    assert snapshot(done_run) == before and not (done_run / "_stale").exists()


def test_a_task_whose_name_climbs_out_of_the_data_folder_is_refused(done_run, tiny, tmp_path):
    task = tmp_path / "climb.yaml"
    task.write_text(yaml.safe_dump({"name": "../sst2", "type": "single", "description": "movie review",
                                    "labels": {"negative": "terrible", "positive": "great"}}))
    before = snapshot(done_run)
    with pytest.raises(ConfigError, match=r"tasks\[0\] name '\.\./sst2' cannot name a folder"):
        run(grid(tiny, tasks=[str(task)], conditions=["real"]), done_run)
    assert snapshot(done_run) == before


# -- 3. fingerprints of what is scored ---------------------------------------------------------------


def test_edited_test_texts_rerun_exactly_the_affected_cells(tiny, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny, data)
    out, log = tmp_path / "run", tmp_path / "console.txt"
    cfg = grid(data, tasks=["sst2", "rt-snippets"], conditions=["real"])
    run(cfg, out, log)
    cells = ["sst2/k2/seed13/linear-probe/real", "rt-snippets/k2/seed13/linear-probe/real"]
    done = {c: (out / "cells" / c / "done.json").read_text() for c in cells}
    rows = (data / "rt-snippets" / "dev.jsonl").read_text().splitlines()
    edited = json.loads(rows[3])
    edited["text"] = "an entirely different review, same id and label: " + edited["text"]
    (data / "rt-snippets" / "dev.jsonl").write_text("\n".join([*rows[:3], json.dumps(edited), *rows[4:]]) + "\n")
    run(cfg, out, log)
    assert (out / "cells" / cells[0] / "done.json").read_text() == done[cells[0]]  # sst2: reused
    assert (out / "cells" / cells[1] / "done.json").read_text() != done[cells[1]]  # rt-snippets: rerun
    assert [p.name for p in (out / "_stale" / "cells" / cells[1]).iterdir()] == [json.loads(done[cells[1]])["fingerprint"]]
    said = log.read_text()
    assert "rt-snippets: 1 finished cell reruns because the test rows changed" in said and "sst2: 1" not in said
    every_cell_once(out, cells)


# -- 4. short and empty synthetic sets ----------------------------------------------------------------


def test_a_set_that_came_back_short_or_empty_is_flagged_not_reported_as_asked(tiny, tmp_path, scripted, capsys):
    scripted("few:3")  # three distinct reviews per label: n2 cells get theirs, n6 cells half
    out = tmp_path / "short"
    results = run(grid(tiny, per_label=[2, 6]), out)
    record = next(r for r in results["records"] if r["per_label"] == 6)
    assert record["train"]["synthetic"] == 6 and record["train"]["synthetic_requested"] == 12
    summary = {(g["condition"], g["per_label"]): g for g in results["summary"]}
    assert summary[("real+synthetic", 6)]["training"]["synthetic_rows"] == {"13": 6}
    from fewforge.evaluation.report import write_report

    write_report(out)
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    for text in (md, html):
        assert "real + zerogen (6/label) ⚠ short" in text and "real + zerogen (2/label) ⚠" not in text
        assert "trained on fewer synthetic rows than the 12 asked (seed 13: 6)" in text
    assert "| 6 of 12 |" in md  # the synthetic rows the row actually trained on
    code, stdout, err = cli(capsys, "run", "--task", "sst2", "--data", str(tiny), "--shots", "2", "--seeds", "13",
                            "--per-label", "2,6", "--learner", "linear-probe", "--output", str(out), "--no-report")
    assert code == 0, err
    assert "⚠ short" in stdout and "6 of 12" in stdout and "warning:" in err and "12 asked" in err

    scripted("empty")  # every answer is filtered out: the set is empty
    out = tmp_path / "empty"
    results = run(grid(tiny), out)
    record = next(r for r in results["records"] if r["condition"] == "real+synthetic")
    assert record["train"]["synthetic"] == 0 and record["train"]["synthetic_requested"] == 8
    from fewforge.evaluation.results import summary_rows

    _, rows = summary_rows(results["summary"])
    labels = [row[3] for row in rows]
    assert labels == ["real only", "real only (zerogen gave none of 4/label)"]
    assert not any("real + zerogen" in label for label in labels)


# -- 5. damaged stores and records --------------------------------------------------------------------


def _moved_aside(path: Path) -> list[Path]:
    """The damaged copies beside `path` (their -wal / -shm companions travel with them)."""
    return [p for p in path.parent.glob(path.name + ".damaged-*") if not p.name.endswith(("-wal", "-shm"))]


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes(os.urandom(len(data)) if how == "random" else data[: len(data) // 3])


@pytest.mark.parametrize("how", ["random", "truncated"])
def test_a_damaged_results_store_is_moved_aside_and_rebuilt(done_run, tiny, scripted, how):
    first = json.loads((done_run / "results.json").read_text())["records"]
    _damage(done_run / "results.sqlite", how)
    log = done_run.parent / "console.txt"
    run(grid(tiny), done_run, log)
    results = every_cell_once(done_run)
    assert [r["metrics"] for r in results["records"]] == [r["metrics"] for r in first]  # reused, not retrained
    assert len(_moved_aside(done_run / "results.sqlite")) == 1
    assert "results.sqlite was damaged" in log.read_text() and "rebuilt" in log.read_text()


@pytest.mark.parametrize("how", ["random", "truncated"])
def test_a_damaged_generation_cache_is_moved_aside_and_regenerated(done_run, tiny, scripted, how):
    cache = done_run / "cache" / "generations.sqlite"
    _damage(cache, how)
    log = done_run.parent / "console.txt"
    run(grid(tiny, per_label=[4, 6]), done_run, log)  # a larger set: generation reads the cache again
    assert "generations.sqlite was damaged: moved aside to generations.sqlite.damaged-" in log.read_text()
    every_cell_once(done_run, [*CELLS, *(c.replace("n4", "n6") for c in CELLS[1:])])
    assert len(_moved_aside(cache)) == 1
    card = json.loads(next((done_run / "synthetic").rglob("card.json")).read_text())
    assert card["cache"]["hits"] == 0 and card["cache"]["misses"] > 0  # regenerated, nothing read from damage
    rows = sqlite3.connect(cache).execute("select count(*) from generations").fetchone()[0]
    assert rows == card["cache"]["misses"]


def test_a_damaged_record_under_done_json_reruns_its_cell(done_run, tiny, scripted):
    cell = done_run / "cells" / CELLS[0]
    (cell / "record.json").write_text('{"cell": "truncated by a full dis')
    log = done_run.parent / "console.txt"
    run(grid(tiny), done_run, log)
    every_cell_once(done_run)
    assert json.loads((cell / "record.json").read_text())["cell"] == CELLS[0]
    (damaged,) = (done_run / "_stale" / "cells" / CELLS[0]).glob("damaged-*")
    assert (damaged / "record.json").read_text().startswith('{"cell": "truncated')
    assert "record.json changed after the stage finished; the cell reruns" in log.read_text()


# -- 6. disk full, file size limit --------------------------------------------------------------------


def test_disk_full_is_one_line_naming_the_file_and_the_rerun_finishes(tiny, tmp_path, scripted, monkeypatch, capsys):
    import fewforge.cells

    real = fewforge.cells.write_lines

    def full_disk(path, records):
        if Path(path).name == "predictions.jsonl":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, records)

    # The store's own bookkeeping after the failure fails too (the same full disk): it must not hide the first.
    from fewforge.store import ResultsStore

    monkeypatch.setattr(ResultsStore, "fail", lambda self, cell, error: (_ for _ in ()).throw(
        sqlite3.OperationalError("database or disk is full")))
    monkeypatch.setattr(fewforge.cells, "write_lines", full_disk)
    out = tmp_path / "run"
    args = ("run", "--task", "sst2", "--data", str(tiny), "--shots", "2", "--seeds", "13", "--per-label", "4",
            "--learner", "linear-probe", "--output", str(out), "--no-report")
    code, _, err = cli(capsys, *args)
    one_line_error(code, err, "cannot write", "predictions.jsonl", "no space left on the disk")
    assert "rerun the same command" in err and "database or disk is full" not in err
    monkeypatch.undo()
    scripted()
    code, _, err = cli(capsys, *args)
    assert code == 0, err
    every_cell_once(out)


def test_a_file_size_limit_in_a_real_process_is_one_line_and_the_rerun_finishes(tiny, tmp_path, scripted):
    out, grid_file = tmp_path / "run", tmp_path / "grid.yaml"
    grid_file.write_text(yaml.safe_dump({**GRID, "data": str(tiny), "conditions": ["real"]}))
    limit = 24 * 1024  # the results store's write-ahead log outgrows it while the first cells finish

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-m", "fewforge.cli.app", "run", str(grid_file), "--output", str(out), "--no-report"],
        env=_env(), capture_output=True, text=True, timeout=300, preexec_fn=limited,
    )
    one_line_error(result.returncode, result.stderr, "cannot write", "file size limit")
    assert "ulimit -f" in result.stderr
    run(grid(tiny, conditions=["real"]), out)  # the limit lifted: the rerun resumes and finishes
    every_cell_once(out, CELLS[:1])


# -- 7. SIGKILL ---------------------------------------------------------------------------------------


def test_sigkill_inside_a_cell_then_the_rerun_runs_every_cell_once(tiny, tmp_path, data_dir, scripted):
    out, grid_file = tmp_path / "run", tmp_path / "grid.yaml"
    grid_file.write_text(yaml.safe_dump({**GRID, "data": str(tiny)}))
    killed = subprocess.run(
        [sys.executable, str(TOOLS), "run", str(grid_file), "--output", str(out), "--no-report"],
        env=_env(FAULT_DATA=str(data_dir), FAULT_KILL_CELL="2"), capture_output=True, text=True, timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    status = dict(sqlite3.connect(out / "results.sqlite").execute("select cell, status from cells").fetchall())
    assert status == {CELLS[0]: "done", CELLS[1]: "running"} and not (out / "results.json").exists()
    assert (out / "cells" / CELLS[1] / "predictions.jsonl").is_file() and not (out / "cells" / CELLS[1] / "done.json").exists()
    (out / ".results.json.x1y2z3.tmp").write_text("half a file")  # what a kill inside an atomic write leaves
    assert json.loads((out / ".lock").read_text())["pid"]  # the dead holder's name stays; its lock does not

    run(grid(tiny), out)
    every_cell_once(out)
    attempts = dict(sqlite3.connect(out / "results.sqlite").execute("select cell, attempts from cells").fetchall())
    assert attempts == {CELLS[0]: 1, CELLS[1]: 2}
    (kept,) = (out / "_stale" / "cells" / CELLS[1]).glob("unfinished-*")  # the half cell, moved aside, not read
    assert (kept / "predictions.jsonl").is_file()
    assert not (out / ".results.json.x1y2z3.tmp").exists()
