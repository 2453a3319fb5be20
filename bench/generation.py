"""Generation throughput: the default backend vs a naive transformers loop, same model, same prompts.

(a) LlamaCppGenerator on the packaged SmolLM2 GGUF, parallel slots (continuous batching), no cache.
(b) The same GGUF loaded by transformers (dequantized, fp32, CPU), `generate` one prompt at a time.
Both sample at temperature 0.8 with up to 64 new tokens; generated tokens are counted on both sides
(the end-of-sequence token included, as llama.cpp counts it). Model loading is timed separately.
The naive side runs fewer prompts (tokens/s is a rate). Last line: `ratio=<(a) tok/s / (b) tok/s>`.
Both sides use OMP_WAIT_POLICY=PASSIVE unless the variable is set (e.g. OMP_WAIT_POLICY=ACTIVE on an
idle machine); the policy in effect is recorded in the JSON.

    .venv/bin/python bench/generation.py [--prompts 64] [--naive-prompts 8] [--max-new-tokens 64]
"""

from __future__ import annotations

import os

# Both sides run under the same OpenMP policy: sleeping waiters. On a machine whose cores are
# shared, spinning waiters made each side 5-10x slower and the comparison meaningless.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

from smoke import results_file, smoke_sizes  # noqa: E402

from fewforge.generators.base import SamplingParams  # noqa: E402
from fewforge.generators.llamacpp import LlamaCppGenerator  # noqa: E402
from fewforge.packaged import smollm2_gguf  # noqa: E402

RESULTS = results_file("generation.json")
TOPICS = ["a space opera", "a courtroom drama", "a cooking documentary", "a horror film",
          "a romantic comedy", "a war epic", "an animated musical", "a heist thriller"]  # fmt: skip
LABELS = ["positive", "negative", "mixed", "enthusiastic"]


def make_prompts(n: int) -> list[str]:
    kinds = [f"Write a {label} movie review of {topic}." for topic in TOPICS for label in LABELS]
    return [kinds[i % len(kinds)] + ("" if i < len(kinds) else " Keep it short.") for i in range(n)]


def bench_default(prompts: list[str], params: SamplingParams) -> dict:
    gen = LlamaCppGenerator(smollm2_gguf())  # the defaults: 16 slots, 512 tokens of context each
    started = time.perf_counter()
    gen.load()
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    out = gen.generate(prompts, params)
    seconds = time.perf_counter() - started
    gen.close()
    tokens = sum(c.n_tokens for c in out)
    return {"backend": f"llamacpp (xllamacpp, n_parallel={gen.n_parallel}, n_threads={gen.n_threads})",
            "prompts": len(prompts), "tokens": tokens, "seconds": seconds, "load_seconds": load_s,
            "tokens_per_prompt": tokens / len(prompts), "tok_s": tokens / seconds}  # fmt: skip


def bench_naive(prompts: list[str], params: SamplingParams) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_gguf()
    started = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    model.eval()
    load_s = time.perf_counter() - started
    torch.manual_seed(params.seed)
    tokens, started = 0, time.perf_counter()
    for prompt in prompts:
        text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                       tokenize=False)  # fmt: skip
        ids = tok(text, add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**ids, do_sample=True, temperature=params.temperature, top_k=0, top_p=1.0,
                                 max_new_tokens=params.max_new_tokens, pad_token_id=tok.pad_token_id)  # fmt: skip
        new = out[0, ids["input_ids"].shape[1] :].tolist()
        # Up to and including the first end-of-sequence token (pad == eos for SmolLM2).
        tokens += next((k + 1 for k, t in enumerate(new) if t == tok.eos_token_id), len(new))
    seconds = time.perf_counter() - started
    return {"backend": f"transformers generate, batch 1, fp32, CPU, {torch.get_num_threads()} threads",
            "prompts": len(prompts), "tokens": tokens, "seconds": seconds, "load_seconds": load_s,
            "tokens_per_prompt": tokens / len(prompts), "tok_s": tokens / seconds}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--naive-prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = smoke_sizes(parser, prompts=2, naive_prompts=1, max_new_tokens=4).parse_args()
    prompts = make_prompts(args.prompts)
    # top_k 0 / top_p 1: plain temperature sampling, the same distribution on both sides.
    params = SamplingParams(temperature=0.8, top_k=0, top_p=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    load_before = os.getloadavg()
    default = bench_default(prompts, params)
    naive = bench_naive(prompts[: args.naive_prompts], params)
    ratio = default["tok_s"] / naive["tok_s"]

    print(f"{'side':<8} {'backend':<62} {'prompts':>7} {'tokens':>7} {'tok/prompt':>10} {'s':>7} {'tok/s':>7}")
    for side, r in (("default", default), ("naive", naive)):
        print(f"{side:<8} {r['backend']:<62} {r['prompts']:>7} {r['tokens']:>7} "
              f"{r['tokens_per_prompt']:>10.1f} {r['seconds']:>7.1f} {r['tok_s']:>7.1f}")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "default": default, "naive": naive, "ratio": round(ratio, 2),
        "params": params.to_dict(), "model": smollm2_gguf().name,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")},
    }  # fmt: skip
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"results: {RESULTS}")
    print(f"ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
