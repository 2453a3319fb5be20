"""Learners for the executor tests, in a module of their own so that worker processes (a spawned pool,
Ray workers, submitit's processes) import them by name: a linear probe that fails on demand, one that
kills its worker once, and one that waits for its neighbours and says which GPU it was given."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console

from fewforge.config import RunConfig
from fewforge.learners.linear_probe import LinearProbe
from fewforge.pipeline import run_experiment

# 4 cells of real SST-2 rows (tests/fault_tools.tiny_data): a grid with no generation
GRID = {"tasks": ["sst2"], "shots": [2, 4], "seeds": [13, 21], "learners": ["linear-probe"], "conditions": ["real"]}

FAIL_SEED = "EXECUTOR_TEST_FAIL_SEED"  # the seed whose cells raise
EXIT_ONCE = "EXECUTOR_TEST_EXIT_ONCE"  # a folder: the first worker to fit a cell exits, later ones train
MEET = "EXECUTOR_TEST_MEET"  # "folder:n": every cell waits until n cells run at once


class FlakyProbe(LinearProbe):
    name: ClassVar[str] = "flaky-probe"

    def fit(self, train: Any, dev: Any, **kwargs: Any) -> Any:
        if os.environ.get(FAIL_SEED) == str(self.seed):
            raise RuntimeError(f"injected failure for seed {self.seed}")
        return super().fit(train, dev, **kwargs)


class ExitOnceProbe(LinearProbe):
    name: ClassVar[str] = "exit-once-probe"

    def fit(self, train: Any, dev: Any, **kwargs: Any) -> Any:
        marker = Path(os.environ[EXIT_ONCE]) / f"seed{self.seed}-k{len(train) // 2}"
        if not marker.exists():
            marker.write_text("exited once\n")
            os._exit(3)  # the worker process dies, as when a node is preempted
        return super().fit(train, dev, **kwargs)


class MeetingProbe(LinearProbe):
    name: ClassVar[str] = "meeting-probe"

    def fit(self, train: Any, dev: Any, **kwargs: Any) -> Any:
        import ray

        folder, n = os.environ[MEET].rsplit(":", 1)
        gpu = ",".join(str(g) for g in ray.get_gpu_ids())
        Path(folder, f"seed{self.seed}-k{len(train) // 2}").write_text(gpu)
        deadline = time.time() + 120
        while len(list(Path(folder).iterdir())) < int(n) and time.time() < deadline:
            time.sleep(0.2)
        report = super().fit(train, dev, **kwargs)
        report.extra["met"] = len(list(Path(folder).iterdir()))
        report.extra["gpu"] = gpu
        return report


def run(cfg: RunConfig, out: Path, executor: Any = None) -> dict[str, Any]:
    console = Console(file=open(out.with_suffix(".console"), "a"), width=300)
    try:
        return run_experiment(cfg, out, console=console, report=True, executor=executor)
    finally:
        console.file.close()


def comparable(out: Path, *, learner: bool = True) -> dict[str, Any]:
    """Each cell's record without its timings, and its predictions, by cell id (without the learner's
    name when `learner` is False: a test learner against the linear probe). Probabilities are rounded to
    3 decimals: a worker with 1 of the 2 cores sums MiniLM's matrix products in another order than the
    driver with both (5th-decimal differences); labels, scores, metrics and fingerprints are exact."""
    out_records = {}
    for r in json.loads((out / "results.json").read_text())["records"]:
        lines = [json.loads(x) for x in (out / r["paths"]["predictions"]).read_text().splitlines()]
        predictions = [{**p, "proba": [round(v, 3) for v in p["proba"]]} for p in lines]
        skip = {"seconds"} if learner else {"seconds", "cell", "learner", "fingerprint", "paths", "train", "dev"}
        key = r["cell"] if learner else r["cell"].replace(f"/{r['learner']}/", "/")
        out_records[key] = ({k: v for k, v in r.items() if k not in skip}, predictions)
    return out_records
