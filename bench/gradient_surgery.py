"""Seconds per optimizer step of `paired` vs `paired+gs` on the prompt-tuning learner (packaged SmolLM2).

Both strategies see the same batches (a real batch and a synthetic batch per step); `paired+gs` also keeps
the real gradient, computes the synthetic one separately and projects it (gradient_surgery.py). Only the
soft prompt trains, so the surgery works on prompt_tokens x hidden floats and should cost next to nothing
beside the two forward/backward passes through the frozen LM that both strategies make.

One process, runs interleaved (paired, gs, paired, gs, ...), the median step time of each; dev evaluation
is outside the timed steps. Usage: python bench/gradient_surgery.py [--steps 8] [--rounds 2]
Last line: ratio=<gs step / paired step> (goal <= 1.3).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from smoke import results_file, smoke_sizes  # noqa: E402

RESULTS = results_file("gradient_surgery.json")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def step_times(strategy: str, split, synthetic, steps: int, task, prompt_tokens: int, batch_size: int) -> list[float]:
    from fewforge.learners.prompt_tuning import PromptTuning, PromptTuningConfig

    config = PromptTuningConfig(
        strategy=strategy, prompt_tokens=prompt_tokens, min_steps=steps, max_steps=steps, eval_every=steps,
        batch_size=batch_size,
    )
    stamps: list[float] = []
    learner = PromptTuning(task, config, seed=13)
    learner.fit(split.train, split.dev, synthetic=synthetic, progress=lambda step, total: stamps.append(time.perf_counter()))
    # a stamp follows each step (the one dev evaluation comes after the last stamp), so consecutive
    # stamps time steps 2..n; step 2 is dropped too, as a warm-up
    return [b - a for a, b in zip(stamps, stamps[1:])][1:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--prompt-tokens", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--data", default=os.environ.get("FEWFORGE_DATA", str(DATA)))
    args = smoke_sizes(parser, steps=3, rounds=1, shots=2, prompt_tokens=4, batch_size=1).parse_args()

    from fewforge.data.fewshot import sample_fewshot
    from fewforge.data.sources import load_task_data
    from fewforge.packaged import lm_source
    from fewforge.tasks import load_task

    task = load_task("sst2")
    pool, test = load_task_data(task, args.data)
    split = sample_fewshot(pool, test, task, args.shots, seed=13)
    used = {e.id for e in split.train + split.dev}
    synthetic = [e for e in pool if e.id not in used][:400]  # real texts stand in for synthetic rows
    lm_source(None)  # the one-time GGUF conversion happens before any timing
    times: dict[str, list[float]] = {"paired": [], "paired+gs": []}
    for _ in range(args.rounds):
        for strategy in times:
            times[strategy] += step_times(
                strategy, split, synthetic, args.steps, task, args.prompt_tokens, args.batch_size
            )
    paired, gs = statistics.median(times["paired"]), statistics.median(times["paired+gs"])
    ratio = gs / paired
    print(f"{'strategy':<10} {'steps':>6} {'median s/step':>14}")
    for name, values in times.items():
        print(f"{name:<10} {len(values):>6} {statistics.median(values):>14.3f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "seconds_per_step": {"paired": round(paired, 4), "paired+gs": round(gs, 4)},
                "steps_timed": {k: len(v) for k, v in times.items()},
                "setup": "prompt tuning, SmolLM2-135M, 100 prompt tokens, batch 4 real + 4 synthetic, SST-2",
                "ratio": round(ratio, 3),
                "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
                "goal": "ratio <= 1.3",
            },
            indent=2,
        )
        + "\n"
    )
    print(f"ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
