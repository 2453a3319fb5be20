"""Learners for the executor tests, in a module of their own so that worker processes (a spawned pool,
Ray workers, submitit's processes) import them by name: a linear probe that fails on demand, one that
kills its worker once, and one that waits for its neighbours and says which GPU it was given."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, ClassVar

from fewforge.learners.linear_probe import LinearProbe

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
        marker = Path(os.environ[EXIT_ONCE]) / f"seed{self.seed}"
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
        Path(folder, f"seed{self.seed}").write_text(gpu)
        deadline = time.time() + 120
        while len(list(Path(folder).iterdir())) < int(n) and time.time() < deadline:
            time.sleep(0.2)
        report = super().fit(train, dev, **kwargs)
        report.extra["met"] = len(list(Path(folder).iterdir()))
        report.extra["gpu"] = gpu
        return report
