"""Grid cells on one machine: the same 24-cell grid run by the `local` executor (one cell after another in
the driver) and by `processes:2` (two spawned workers, a core each), in one invocation on one machine.

The grid has no generation (real rows only), so cells are all there is: SST-2 from the shared data,
shots 4/8/16 × seeds 13/21/42/87 × {linear probe, fine-tuned MiniLM (max_length 32, 8 steps)}, scored on
200 test rows. Each executor gets a fresh run directory; wall time is the whole `run_experiment`
(planning, splits, cells, results, report). The records must agree (labels and metrics exactly). Goal:
ratio = local / processes:2 >= 1.5 on 2 cores (the limit is 2). The last line is the ratio.

    .venv/bin/python bench/executor.py [--workers 2] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from smoke import results_file, smoke_sizes

from fewforge.config import RunConfig
from fewforge.pipeline import run_experiment

RESULTS = results_file("executor.json")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ENCODER = {"max_length": 32, "min_steps": 8, "max_steps": 8, "batch_size": 8}


def grid(args: argparse.Namespace, executor: str) -> RunConfig:
    return RunConfig(
        tasks=["sst2"], data=str(args.data), shots=args.shots, seeds=args.seeds, conditions=["real"],
        learners=[{"name": "linear-probe"}, {"name": "encoder", "options": ENCODER}], max_test=args.max_test,
        executor=executor,
    )


def measure(args: argparse.Namespace, executor: str) -> tuple[float, dict[str, dict]]:
    with tempfile.TemporaryDirectory() as tmp:
        console = Console(file=open(os.devnull, "w"))
        started = time.perf_counter()
        results = run_experiment(grid(args, executor), Path(tmp) / "run", console=console)
        seconds = time.perf_counter() - started
    metrics = {r["cell"]: r["metrics"] for r in results["records"]}
    return seconds, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("FEWFORGE_DATA", DATA)))
    parser.add_argument("--shots", type=lambda t: [int(v) for v in t.split(",")], default=[4, 8, 16])
    parser.add_argument("--seeds", type=lambda t: [int(v) for v in t.split(",")], default=[13, 21, 42, 87])
    parser.add_argument("--max-test", type=int, default=200)
    args = smoke_sizes(parser, shots=[4], seeds=[13], max_test=20).parse_args()
    parallel = f"processes:{args.workers}"
    local_s, local_metrics = measure(args, "local")
    print(f"local: {len(local_metrics)} cells in {local_s:.1f} s", flush=True)
    parallel_s, parallel_metrics = measure(args, parallel)
    print(f"{parallel}: {len(parallel_metrics)} cells in {parallel_s:.1f} s", flush=True)
    same = {c for c in local_metrics if local_metrics[c] == parallel_metrics.get(c)}
    print(f"identical metrics: {len(same)} of {len(local_metrics)} cells")
    ratio = round(local_s / parallel_s, 3)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "cells": len(local_metrics), "cores": os.cpu_count(), "local_seconds": round(local_s, 1),
        "parallel": parallel, "parallel_seconds": round(parallel_s, 1), "identical_metrics": len(same),
        "ratio": ratio, "load_average_after": os.getloadavg()[0],
    }, indent=2) + "\n")
    print(f"ratio={ratio}")


if __name__ == "__main__":
    main()
