"""RunDir.stage: the one place that decides reuse / redo / retire, and never loses finished work."""

from __future__ import annotations

import json

import pytest

from fewforge.files import write_json, write_yaml
from fewforge.rundir import RunDir


def finish(run: RunDir, path, fp: str, text: str) -> None:
    stage = run.stage(path, fp)
    assert not stage.done
    with stage:
        (path / "out.txt").write_text(text)
        stage.info["rows"] = len(text)


def test_finished_stage_is_reused(tmp_path):
    run = RunDir(tmp_path)
    path = tmp_path / "synthetic" / "a"
    finish(run, path, "fp1", "one")
    stage = run.stage(path, "fp1")
    assert stage.done and not stage.reused
    assert json.loads((path / "done.json").read_text())["rows"] == 3
    with pytest.raises(RuntimeError):  # entering a finished stage is a caller bug
        stage.__enter__()


def test_changed_stage_retires_then_an_old_fingerprint_comes_back(tmp_path):
    run = RunDir(tmp_path)
    path = tmp_path / "synthetic" / "a"
    finish(run, path, "fp1", "one")
    finish(run, path, "fp2", "two")  # inputs changed: fp1's folder moves aside
    stale = tmp_path / "_stale" / "synthetic" / "a" / "fp1"
    assert (stale / "out.txt").read_text() == "one"
    assert (path / "out.txt").read_text() == "two"
    back = run.stage(path, "fp1")  # the old inputs return: the old output comes back, nothing redone
    assert back.done and back.reused
    assert (path / "out.txt").read_text() == "one"
    assert (tmp_path / "_stale" / "synthetic" / "a" / "fp2" / "out.txt").read_text() == "two"


def test_interrupted_stage_is_moved_aside_not_read(tmp_path):
    run = RunDir(tmp_path)
    path = tmp_path / "cells" / "c"
    stage = run.stage(path, "fp1")
    with pytest.raises(KeyboardInterrupt):
        with stage:
            (path / "half.txt").write_text("partial")
            raise KeyboardInterrupt
    assert not (path / "done.json").exists()
    finish(run, path, "fp1", "whole")  # the rerun starts over and keeps the partial attempt aside
    assert not (path / "half.txt").exists()
    kept = list((tmp_path / "_stale" / "cells" / "c").glob("unfinished-*/half.txt"))
    assert [p.read_text() for p in kept] == ["partial"]


def test_retire_never_overwrites_a_stale_copy(tmp_path):
    run = RunDir(tmp_path)
    for text in ("first", "second"):
        write_json(tmp_path / "results.json", {"v": text})
        run.retire(tmp_path / "results.json", "same")
    copies = sorted((tmp_path / "_stale" / "results.json").iterdir())
    assert [json.loads(p.read_text())["v"] for p in copies] == ["first", "second"]
    assert run.retire(tmp_path / "absent.json") is None


def test_atomic_writes_leave_no_temp_files_and_plain_permissions(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    write_yaml(tmp_path / "b.yaml", {"y": [1, 2]})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.yaml"]
    assert (tmp_path / "a.json").stat().st_mode & 0o044  # readable by others, as open() would make it
    with pytest.raises(ValueError):  # NaN is not JSON: refused, and the old file stays
        write_json(tmp_path / "a.json", {"x": float("nan")})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
