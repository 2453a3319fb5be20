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


def test_a_damaged_output_under_done_json_is_not_finished_and_moves_aside(tmp_path):
    run = RunDir(tmp_path)
    path = tmp_path / "cells" / "c"
    stage = run.stage(path, "fp1", outputs=("out.txt",))
    with stage:
        (path / "out.txt").write_text("whole")
    assert run.stage(path, "fp1", outputs=("out.txt",)).done
    (path / "out.txt").write_text("whol")  # truncated after the stage finished
    again = run.stage(path, "fp1", outputs=("out.txt",))
    assert not again.done and again.damaged == "out.txt changed after the stage finished"
    with again:
        (path / "out.txt").write_text("whole again")
    (damaged,) = (tmp_path / "_stale" / "cells" / "c").iterdir()
    assert damaged.name.startswith("damaged-") and (damaged / "out.txt").read_text() == "whol"
    (path / "out.txt").unlink()
    assert run.stage(path, "fp1", outputs=("out.txt",)).damaged == "out.txt is missing"


def test_a_damaged_stale_copy_is_never_restored(tmp_path):
    run = RunDir(tmp_path)
    path = tmp_path / "synthetic" / "a"
    for fp in ("fp1", "fp2"):
        with run.stage(path, fp, outputs=("out.txt",)) as stage:
            (stage.path / "out.txt").write_text(fp)
    (tmp_path / "_stale" / "synthetic" / "a" / "fp1" / "out.txt").write_text("edited")
    back = run.stage(path, "fp1", outputs=("out.txt",))
    assert not back.done and not back.reused  # redone rather than brought back damaged


def test_a_folder_written_before_outputs_were_recorded_is_checked_by_reading_it(tmp_path):
    run = RunDir(tmp_path)
    path = tmp_path / "cells" / "old"
    path.mkdir(parents=True)
    write_json(path / "done.json", {"fingerprint": "fp"})  # no "outputs": an earlier fewforge wrote it
    (path / "record.json").write_text('{"cell": "old"}')
    assert run.stage(path, "fp", outputs=("record.json",)).done
    (path / "record.json").write_text('{"cell": ')
    assert run.stage(path, "fp", outputs=("record.json",)).damaged == "record.json is not valid JSON"


def test_a_rerun_names_the_inputs_that_changed(tmp_path):
    run = RunDir(tmp_path)
    path = tmp_path / "cells" / "c"
    with run.stage(path, "fp1", inputs={"split": "s1", "test": "t1"}) as stage:
        (stage.path / "out.txt").write_text("x")
    again = run.stage(path, "fp2", inputs={"split": "s1", "test": "t2"})
    assert again.replaces_finished and again.changed == ["test"]
    assert run.stage(path, "fp1", inputs={"split": "s1", "test": "t1"}).done  # nothing changed: reused


def test_temporaries_of_dead_processes_are_swept_and_nothing_else(tmp_path):
    run = RunDir(tmp_path)
    keep = [tmp_path / ".lock", tmp_path / "cells" / "c" / "record.json", tmp_path / "_stale" / "x" / ".a.json.q.tmp"]
    gone = [tmp_path / ".results.json.abc123.tmp", tmp_path / "synthetic" / "s" / ".data.jsonl.x9.tmp"]
    folders = [tmp_path / "synthetic" / "s" / ".hf.k2j.tmp", tmp_path / "work" / "w" / ".teacher-abc.tmp-4242"]
    for path in (*keep, *gone):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    for folder in folders:
        (folder / "inner").mkdir(parents=True)
        (folder / "inner" / "weights.bin").write_text("half")
    assert sorted(run.sweep_temporaries()) == sorted([*gone, *folders])
    assert all(p.exists() for p in keep) and not any(p.exists() for p in (*gone, *folders))


def test_inner_stages_of_a_method_reuse_retire_and_restore_like_the_runs(tmp_path):
    from fewforge.synthesis.base import SynthesisContext
    from fewforge.tasks import load_task

    run = RunDir(tmp_path / "run")
    ctx = SynthesisContext(task=load_task("sst2"), generator=None, seed=13,  # type: ignore[arg-type]
                           workdir=run.work_dir(tmp_path / "run" / "synthetic" / "a"), run=run)
    for fp in ("k1", "k2"):
        with ctx.stage("search", fp, outputs=("result.json",)) as stage:
            write_json(stage.path / "result.json", {"key": fp})
    assert (tmp_path / "run" / "_stale" / "work" / "synthetic" / "a" / "search" / "k1" / "result.json").is_file()
    back = ctx.stage("search", "k1", outputs=("result.json",))
    assert back.done and back.reused and json.loads((back.path / "result.json").read_text()) == {"key": "k1"}
    alone = SynthesisContext(task=ctx.task, generator=None, seed=13, workdir=tmp_path / "w")  # type: ignore[arg-type]
    with alone.stage("tuned", "a") as stage:
        (stage.path / "p").write_text("a")
    alone.stage("tuned", "b").__enter__()  # outside a run: the work folder keeps its own _stale/
    assert (tmp_path / "w" / "_stale" / "tuned" / "a" / "p").read_text() == "a"
