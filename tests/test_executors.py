"""Executors on a tiny real grid (linear probe, real rows of SST-2): a process pool gives the records the
driver's own process gives, a failing cell leaves the others finished and a rerun runs exactly it, and
the executor spec is checked before anything runs."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from executor_tools import FAIL_SEED, GRID, FlakyProbe, comparable, run
from fault_tools import generator_texts, scripted_generator, tiny_data
from rich.console import Console

from fewforge.config import RunConfig
from fewforge.errors import CellsFailed, ConfigError
from fewforge.executors import get_executor


@pytest.fixture(scope="module")
def tiny(data_dir: Path, tmp_path_factory) -> Path:
    return tiny_data(data_dir, tmp_path_factory.mktemp("data"))


SYNTHETIC = {**GRID, "seeds": [13], "conditions": ["real", "real+synthetic"], "per_label": [4]}  # + a ZeroGen set


@pytest.fixture(scope="module")
def scripted(data_dir: Path):
    """Every plan of this module generates with the scripted generator (tests/fault_tools.py)."""
    import fewforge.grid

    texts = generator_texts(data_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fewforge.grid, "_generator", lambda cfg: scripted_generator(texts))
        yield


@pytest.fixture(scope="module")
def local_run(tiny: Path, scripted, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "run"
    run(RunConfig(**SYNTHETIC, data=str(tiny)), out)
    return out


@pytest.mark.slow  # over a minute on 2 cores: CI's -m slow runs it
def test_processes_give_the_records_of_local_and_start_cells_while_sets_generate(
    tiny, scripted, local_run, tmp_path, monkeypatch
):
    import fewforge.pipeline

    out = tmp_path / "run"
    first_real = out / "cells" / "sst2/k2/seed13/linear-probe/real" / "done.json"
    generate = fewforge.pipeline.synthesis_stages

    def after_a_real_cell(*args: Any, **kwargs: Any) -> Any:
        deadline = time.time() + 240
        while not first_real.exists() and time.time() < deadline:  # a worker trains it meanwhile
            time.sleep(0.2)
        assert first_real.exists(), "no real-only cell finished while the sets waited to generate"
        return generate(*args, **kwargs)

    monkeypatch.setattr(fewforge.pipeline, "synthesis_stages", after_a_real_cell)
    run(RunConfig(**SYNTHETIC, data=str(tiny), executor="processes:2"), out)
    expected, got = comparable(local_run), comparable(out)
    assert len(got) == 4 and got == expected  # accuracy, predictions (probabilities), fingerprints
    status = sqlite3.connect(out / "results.sqlite").execute("select status, attempts from cells").fetchall()
    assert status == [("done", 1)] * 4


def test_a_failing_cell_leaves_the_others_done_and_the_rerun_runs_exactly_it(tiny, tmp_path, monkeypatch):
    from fewforge.learners import LEARNERS

    monkeypatch.setitem(LEARNERS._targets, FlakyProbe.name, f"{FlakyProbe.__module__}:FlakyProbe")
    monkeypatch.setenv(FAIL_SEED, "21")  # read where the cell runs (a worker process inherits it)
    # the driver records failures alike for every executor (cells return them); local is the cheapest here
    cfg = RunConfig(**{**GRID, "learners": [FlakyProbe.name]}, data=str(tiny))
    out = tmp_path / "run"
    with pytest.raises(CellsFailed, match="^2 cells failed; rerun to retry them"):
        run(cfg, out)
    results = json.loads((out / "results.json").read_text())
    assert sorted(r["cell"] for r in results["records"]) == [f"sst2/k{k}/seed13/flaky-probe/real" for k in (2, 4)]
    failed = {f["cell"]: f for f in results["meta"]["failed_cells"]}
    assert sorted(failed) == [f"sst2/k{k}/seed21/flaky-probe/real" for k in (2, 4)]
    for cell, failure in failed.items():
        assert failure["error"] == "RuntimeError: injected failure for seed 21"
        assert failure["log"] == f"cells/{cell}/error.log"
        assert "Traceback" in (out / failure["log"]).read_text()
    rows = sqlite3.connect(out / "results.sqlite").execute("select cell, status, error, log_path from cells").fetchall()
    assert {r[0]: r[1] for r in rows} == {**{c: "failed" for c in failed}, **{r["cell"]: "done" for r in results["records"]}}
    assert all(r[2] and r[3] for r in rows if r[1] == "failed")
    report = (out / "report.md").read_text()
    assert all(f"cell {cell} failed: RuntimeError: injected failure for seed 21" in report for cell in failed)

    monkeypatch.delenv(FAIL_SEED)
    results = run(cfg, out)
    assert len(results["records"]) == 4 and results["meta"]["failed_cells"] == []
    attempts = dict(sqlite3.connect(out / "results.sqlite").execute("select cell, attempts from cells").fetchall())
    assert attempts == {**{c: 2 for c in failed}, **{c: 1 for c in attempts if c not in failed}}
    assert all(list((out / "_stale" / "cells" / cell).glob("unfinished-*/error.log")) for cell in failed)
    assert "failed" not in (out / "report.md").read_text()


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("threads:4", "unknown executor 'threads:4'"),
        ("processes:zero", "executor processes:zero needs a number of workers"),
        ("slurm", "executor slurm needs a partition"),
        ("slurm:gpu,hours=2", "executor option 'hours=2' of slurm:gpu,hours=2"),
    ],
)
def test_a_wrong_executor_is_one_line(spec, fragment):
    with pytest.raises(ConfigError) as error:
        get_executor(spec)
    assert fragment in error.value.message and error.value.hint


def test_a_missing_extra_names_its_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(ConfigError) as error:
        get_executor("ray")
    assert error.value.hint == "pip install 'fewforge[ray]'"


def test_importing_fewforge_imports_no_engine():
    code = ("import sys, fewforge, fewforge.pipeline, fewforge.executors, fewforge.cli.app; "
            "print(sorted(m for m in ('ray', 'submitit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unknown_learner_resources_are_one_line(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("learners:\n  - {name: encoder, resources: {gpu: 1}}\n")
    with pytest.raises(ConfigError) as error:
        RunConfig.from_yaml(grid)
    assert "learners[0].resources" in error.value.message and "unknown resources ['gpu']" in error.value.message


def test_the_cli_refuses_an_unknown_executor_before_writing(tmp_path, capsys):
    from fewforge.cli.app import main

    out = tmp_path / "run"
    argv, sys.argv = sys.argv, ["fewforge", "run", "--task", "sst2", "--executor", "gpus:4", "--output", str(out)]
    try:
        with pytest.raises(SystemExit) as exit_code:
            main()
    finally:
        sys.argv = argv
    err = capsys.readouterr().err
    assert exit_code.value.code == 2 and "error: unknown executor 'gpus:4'" in err and "Traceback" not in err
    assert not out.exists()


def test_the_grid_bar_counts_sets_and_cells():
    import io

    from fewforge.progress import GridProgress

    with GridProgress(Console(file=io.StringIO(), force_terminal=True), 10, {"sets": 2, "cells": 4, "none": 0}) as bar:
        bar.advance(1, "sets")
        bar.advance(2, "cells")
        bar.advance(2, "cells")
        count = bar.bar.tasks[bar.grid].fields["count"]
    assert count == " 50% · sets 1/2 · cells 2/4"
