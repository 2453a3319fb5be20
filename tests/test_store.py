"""results.sqlite: one row per cell, its status through a run, and grids that change."""

from __future__ import annotations

from fewforge.store import ResultsStore


def cell(name: str, seed: int = 13) -> dict:
    return {"cell": name, "task": "sst2", "shots": 4, "seed": seed, "learner": "linear-probe",
            "condition": "real", "method": None, "per_label": None}  # fmt: skip


def test_status_runs_pending_running_done_and_failed(tmp_path):
    with ResultsStore(tmp_path / "results.sqlite") as store:
        store.plan([cell("a"), cell("b")])
        assert {r["cell"]: r["status"] for r in store.rows()} == {"a": "pending", "b": "pending"}
        store.start("a", "fp1")
        store.start("b", "fp2")
        store.fail("b", "DataError: bad label")
        record = {
            "cell": "a",
            "metrics": {"accuracy": 0.7},
            "seconds": {"train": 1.5, "predict": 0.2},
            "fingerprint": "fp1",
        }
        store.finish(
            record, {"record": "cells/a/record.json", "predictions": "cells/a/predictions.jsonl", "model": None}
        )
        rows = {r["cell"]: r for r in store.rows()}
    assert rows["a"]["status"] == "done" and rows["a"]["attempts"] == 1 and rows["a"]["train_seconds"] == 1.5
    assert rows["a"]["metrics"] == '{"accuracy": 0.7}' and rows["a"]["record_path"] == "cells/a/record.json"
    assert rows["b"]["status"] == "failed" and rows["b"]["error"].startswith("DataError")


def test_replanning_keeps_old_cells_marked_out_of_the_grid(tmp_path):
    path = tmp_path / "results.sqlite"
    with ResultsStore(path) as store:
        store.plan([cell("a"), cell("b")])
        store.start("a", "fp")
    with ResultsStore(path) as store:  # a later run of a changed grid
        store.plan([cell("a"), cell("c")])
        assert [r["cell"] for r in store.rows()] == ["a", "c"]
        everything = {r["cell"]: r for r in store.rows(in_grid_only=False)}
    assert set(everything) == {"a", "b", "c"} and everything["b"]["in_grid"] == 0
    assert everything["a"]["attempts"] == 1  # a cell is one row, whatever the number of runs


def _record(name: str) -> dict:
    return {**cell(name), "metrics": {"accuracy": 0.5}, "fingerprint": "fp", "seconds": {"train": 1.0},
            "paths": {"record": f"cells/{name}/record.json"}}


def test_a_damaged_store_is_moved_aside_and_rebuilt_from_the_records(tmp_path):
    path = tmp_path / "results.sqlite"
    with ResultsStore(path) as store:
        store.plan([cell("a"), cell("b")])
    path.write_bytes(b"\x00garbage" * 500)
    warnings: list[str] = []
    with ResultsStore.open(path, lambda: [_record("a")], warnings.append) as store:
        rows = {r["cell"]: r for r in store.rows(in_grid_only=False)}
    assert rows["a"]["status"] == "done" and rows["a"]["record_path"] == "cells/a/record.json"
    assert set(rows) == {"a"}  # b had no record: it was never finished, and the next plan adds it again
    (moved,) = tmp_path.glob("results.sqlite.damaged-*")
    assert moved.read_bytes().startswith(b"\x00garbage")
    (warning,) = warnings
    assert "was damaged (file is not a database)" in warning and "record.json files of the 1 finished cells" in warning
    with ResultsStore.open(path, lambda: [], warnings.append):  # an intact store opens as it is
        pass
    assert len(warnings) == 1
