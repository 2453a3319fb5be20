"""The Ray and SLURM executors on the tiny real grid of test_executors.py, each on its engine's local
stand-in: a local Ray cluster with two logical GPUs, and submitit's local executor. Slow (`-m slow`,
run by .ci/run): starting Ray and a process per cell costs about a minute on 2 cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from executor_tools import EXIT_ONCE, GRID, MEET, ExitOnceProbe, MeetingProbe, comparable, run
from fault_tools import tiny_data

from fewforge.config import RunConfig

pytestmark = pytest.mark.slow
TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def tiny(data_dir: Path, tmp_path_factory) -> Path:
    return tiny_data(data_dir, tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def local_run(tiny: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "run"
    run(RunConfig(**GRID, data=str(tiny)), out)
    return out


@pytest.fixture(scope="module")
def workers_path(tmp_path_factory):
    """Engine workers import fewforge and this folder's test learners by name, as a cluster's nodes would
    from their installed environment; the test learners' folders are set before Ray starts (its workers
    inherit the environment of that moment). Yields {variable: folder}."""
    import fewforge

    root = tmp_path_factory.mktemp("engines")
    values = {
        "PYTHONPATH": os.pathsep.join([str(Path(fewforge.__file__).parents[1]), str(TESTS), os.environ.get("PYTHONPATH", "")]),
        MEET: f"{root / 'meet'}:4",  # every meeting cell waits until 4 run at once
        EXIT_ONCE: str(root / "exits"),  # each cell's first worker dies before training
    }
    (root / "meet").mkdir()
    (root / "exits").mkdir()
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    yield {MEET: root / "meet", EXIT_ONCE: root / "exits"}
    for name, value in before.items():
        if value is None:
            os.environ.pop(name)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def ray_cluster(workers_path):
    ray = pytest.importorskip("ray")  # installed by the `test` extra
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def registered(monkeypatch, cls: type) -> str:
    from fewforge.learners import LEARNERS

    monkeypatch.setitem(LEARNERS._targets, cls.name, f"{cls.__module__}:{cls.__name__}")
    return cls.name


def test_ray_gives_the_records_of_local(ray_cluster, tiny, local_run, tmp_path):
    out = tmp_path / "run"
    run(RunConfig(**GRID, data=str(tiny), executor="ray"), out)
    assert comparable(out) == comparable(local_run)


def test_ray_packs_two_half_gpu_cells_on_one_logical_gpu(ray_cluster, tiny, local_run, tmp_path, monkeypatch):
    learner = {"name": registered(monkeypatch, MeetingProbe), "resources": {"cpus": 0.5, "gpus": 0.5, "memory_gb": 0}}
    out = tmp_path / "run"
    results = run(RunConfig(**{**GRID, "learners": [learner]}, data=str(tiny), executor="ray"), out)
    trained = [r["train"] for r in results["records"]]
    assert [t["met"] for t in trained] == [4] * 4  # 4 cells at once on 2 GPUs and 2 CPUs
    assert sorted(t["gpu"] for t in trained) == ["0", "0", "1", "1"]  # two cells share each logical GPU
    assert comparable(out, learner=False) == comparable(local_run, learner=False)


def test_ray_retries_a_worker_that_exits(ray_cluster, workers_path, tiny, local_run, tmp_path, monkeypatch):
    exits = workers_path[EXIT_ONCE]
    out = tmp_path / "run"
    cfg = RunConfig(**{**GRID, "learners": [registered(monkeypatch, ExitOnceProbe)]}, data=str(tiny), executor="ray")
    results = run(cfg, out)
    assert len(results["records"]) == 4 and len(list(exits.iterdir())) == 4  # each cell's worker died once
    assert comparable(out, learner=False) == comparable(local_run, learner=False)


def test_submitit_local_executor_gives_the_records_of_local(workers_path, tiny, local_run, tmp_path):
    pytest.importorskip("submitit")
    out = tmp_path / "run"
    run(RunConfig(**GRID, data=str(tiny), executor="slurm:local,time=10"), out)
    assert comparable(out) == comparable(local_run)
    assert list((out / "logs" / "slurm").glob("*_log.out"))  # submitit's own logs, in the run directory
