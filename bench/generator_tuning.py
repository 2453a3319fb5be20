"""Generator tuning on the packaged SmolLM2 (through transformers): seconds per tuning step of `lm` vs
`dawgen`, and generation speed under a tuned prefix vs the plain natural prompt.

Step times: the same SST-2 rows (16 per label, the method's own row encoding), batch 2 (the paper's),
prefix placement; losses interleaved (lm, dawgen, lm, dawgen, ...), the median step of each, the first
step of each run dropped as a warm-up. `dawgen` is timed with the paper's meta step every step and with
`--meta-every K` (the option a 2-core run can use); the first ratio line is the paper's setting.

Generation: the same 32 requests per label, nucleus sampling (0.9), batch 16, max 48 new
tokens, tokens/s of ZeroGen's requests (the natural prompt) vs FewGen's (the context after a tuned
prefix), interleaved. Usage: python bench/generator_tuning.py [--steps 6] [--rounds 2]
Last line: ratio=<tuned tokens/s ÷ untuned tokens/s> (goal >= 0.8); the line before it:
ratio=<dawgen step ÷ lm step> (goal <= 2).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from smoke import results_file, smoke_sizes  # noqa: E402

RESULTS = results_file("generator_tuning.json")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def step_times(lm, heads, rows, loss: str, steps: int, meta_every: int = 1) -> list[float]:
    from fewforge.generators.soft_prompts import LabelPrompts
    from fewforge.hf import second_order_attention
    from fewforge.synthesis.fewgen.tune import Tuner, TuningConfig

    stamps: list[float] = []
    with second_order_attention(lm.model, loss != "lm"):
        prompts = LabelPrompts.from_natural_prompts(lm.model, heads, "prefix")
        config = TuningConfig(loss=loss, epochs=1, meta_every=meta_every)
        tuner = Tuner(prompts, config, seed=0, pad_id=lm.tokenizer.pad_token_id or 0)
        stamps.append(time.perf_counter())
        tuner.fit(rows[: 2 * steps], progress=lambda done, total: stamps.append(time.perf_counter()))
    return [b - a for a, b in zip(stamps, stamps[1:])][1:]  # drop the first step (and dawgen's bank fill)


def tokens_per_s(generator, prompts, params, adapter=None) -> float:
    started = time.perf_counter()
    out = generator.generate(prompts, params, adapter=adapter)
    return sum(c.candidates[0].n_tokens for c in out) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--meta-every", type=int, default=4)
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--requests", type=int, default=32, help="generation requests per label")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--data", default=os.environ.get("FEWFORGE_DATA", str(DATA)))
    args = smoke_sizes(parser, steps=2, rounds=1, meta_every=2, shots=2, requests=2, max_new_tokens=8).parse_args()

    from fewforge.data.fewshot import sample_fewshot
    from fewforge.data.sources import load_task_data
    from fewforge.generators import AdapterRequest, SamplingParams, get_generator
    from fewforge.generators.soft_prompts import LabelPrompts
    from fewforge.synthesis import get_method
    from fewforge.tasks import load_task

    task = load_task("sst2")
    pool, test = load_task_data(task, args.data)
    split = sample_fewshot(pool, test, task, args.shots, seed=13)
    generator = get_generator("hf:smollm2", batch_size=16)
    lm = generator.trainable()
    method = get_method("dawgen")
    heads = {label: method._head(task, label, lm) for label in task.label_names}
    head_ids = [lm.encode(heads[label], True) for label in task.label_names]
    rows = [method._row(task, e, lm, heads) for e in split.train]
    rows = [r for pair in zip(rows[: len(rows) // 2], rows[len(rows) // 2 :]) for r in pair]  # labels alternate

    times: dict[str, list[float]] = {"lm": [], "dawgen": [], f"dawgen meta_every={args.meta_every}": []}
    for _ in range(args.rounds):
        times["lm"] += step_times(lm, head_ids, rows, "lm", args.steps)
        times["dawgen"] += step_times(lm, head_ids, rows, "dawgen", args.steps)
        times[f"dawgen meta_every={args.meta_every}"] += step_times(
            lm, head_ids, rows, "dawgen", args.steps, args.meta_every
        )
    medians = {name: statistics.median(values) for name, values in times.items()}

    # generation: a prefix trained for a few steps vs the natural prompt, the same sampling and batch
    with tempfile.TemporaryDirectory() as tmp:
        prompts = LabelPrompts.from_natural_prompts(lm.model, head_ids, "prefix")
        with torch_no_grad():
            prompts.values.add_(0.01 * prompts.values.std())  # "tuned": not the natural prompt's exact cache
        path = prompts.save(Path(tmp) / "prompts.safetensors")
        params = SamplingParams(temperature=0.9, top_p=0.9, max_new_tokens=args.max_new_tokens, seed=3)
        speed: dict[str, list[float]] = {"untuned": [], "tuned": []}
        for _ in range(args.rounds):
            for k, label in enumerate(task.label_names):
                natural = [task.generation_prompt(label)] * args.requests
                context = [method._context(task, label, None, lm, heads)] * args.requests
                speed["untuned"].append(tokens_per_s(generator, natural, params))
                adapter = AdapterRequest("bench", str(path), label=k)
                speed["tuned"].append(tokens_per_s(generator, context, params, adapter))
    generation = {name: statistics.median(values) for name, values in speed.items()}
    generator.close()

    step_ratio = medians["dawgen"] / medians["lm"]
    cpu_ratio = medians[f"dawgen meta_every={args.meta_every}"] / medians["lm"]
    gen_ratio = generation["tuned"] / generation["untuned"]
    print(f"{'loss':<22} {'steps':>6} {'median s/step':>14}")
    for name, values in times.items():
        print(f"{name:<22} {len(values):>6} {medians[name]:>14.3f}")
    print(f"generation tokens/s: untuned {generation['untuned']:.1f}, tuned {generation['tuned']:.1f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "seconds_per_step": {k: round(v, 4) for k, v in medians.items()},
                "steps_timed": {k: len(v) for k, v in times.items()},
                "generation_tokens_per_s": {k: round(v, 2) for k, v in generation.items()},
                "setup": "SmolLM2-135M (hf:smollm2), SST-2 16 shots seed 13, prefix, batch 2; generation: 32 "
                "requests per label, batch 16, 48 new tokens, nucleus 0.9",
                "ratio_dawgen_step": round(step_ratio, 3),
                f"ratio_dawgen_meta_every_{args.meta_every}_step": round(cpu_ratio, 3),
                "ratio_generation": round(gen_ratio, 3),
                "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
                "goal": "dawgen step / lm step <= 2; tuned / untuned tokens/s >= 0.8",
            },
            indent=2,
        )
        + "\n"
    )
    print(f"ratio={cpu_ratio:.2f} (dawgen step with meta_every={args.meta_every} ÷ lm step)")
    print(f"ratio={step_ratio:.2f} (dawgen step ÷ lm step)")
    print(f"ratio={gen_ratio:.2f}")


def torch_no_grad():
    import torch

    return torch.no_grad()


if __name__ == "__main__":
    main()
