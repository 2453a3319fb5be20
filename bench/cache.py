"""Response cache: a cold synthesis-like run vs the same run served from the SQLite cache.

48 label-conditional prompts, 64 new tokens, through CachedGenerator over LlamaCppGenerator (the
packaged SmolLM2) into a fresh temporary cache file. The rerun uses a new CachedGenerator on the same
file (a real reopen) and must return identical outputs. Model loading is outside both timings.
Last line: `ratio=<cold seconds / cached seconds>`.

    .venv/bin/python bench/cache.py [--prompts 48] [--max-new-tokens 64]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as in the library (see llamacpp.py)

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from smoke import results_file, smoke_sizes  # noqa: E402

from fewforge.generators._gguf import _file_id  # noqa: E402
from fewforge.generators.base import SamplingParams  # noqa: E402
from fewforge.generators.cache import CachedGenerator  # noqa: E402
from fewforge.generators.llamacpp import LlamaCppGenerator  # noqa: E402
from fewforge.packaged import smollm2_gguf  # noqa: E402

RESULTS = results_file("cache.json")
LABELS = ["positive", "negative", "neutral", "sarcastic"]
SUBJECTS = ["a phone", "a restaurant", "a hotel", "a novel", "a laptop", "a concert",
            "a pair of shoes", "a museum", "a video game", "a coffee maker", "a bike", "a podcast"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = smoke_sizes(parser, prompts=4, max_new_tokens=8).parse_args()
    kinds = [f"Write a {label} review of {subject}." for subject in SUBJECTS for label in LABELS]
    prompts = [kinds[i % len(kinds)] for i in range(args.prompts)]
    params = SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=args.max_new_tokens, seed=13)

    inner = LlamaCppGenerator(smollm2_gguf())
    inner.load()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "generations.sqlite"
        cold_gen = CachedGenerator(inner, path)
        started = time.perf_counter()
        cold = cold_gen.generate(prompts, params)
        cold_s = time.perf_counter() - started

        _file_id.cache_clear()  # the rerun hashes the GGUF again, as a new process would
        started = time.perf_counter()
        warm_gen = CachedGenerator(inner, path)  # a new connection to the file, as a rerun opens it
        warm = warm_gen.generate(prompts, params)
        warm_s = time.perf_counter() - started
        info = warm_gen.info()
        warm_gen.close()  # also frees the model

    identical = [c.candidates for c in cold] == [c.candidates for c in warm]
    if not identical or not all(c.cached for c in warm):
        raise SystemExit("cached rerun differs from the cold run")
    tokens = sum(c.n_tokens for c in cold)
    ratio = cold_s / warm_s
    print(f"{'run':<8} {'prompts':>7} {'tokens':>7} {'seconds':>9} {'hits':>5} {'misses':>6}")
    print(f"{'cold':<8} {len(prompts):>7} {tokens:>7} {cold_s:>9.3f} {cold_gen.hits:>5} {cold_gen.misses:>6}")
    print(f"{'cached':<8} {len(prompts):>7} {tokens:>7} {warm_s:>9.4f} {warm_gen.hits:>5} {warm_gen.misses:>6}")
    record = {
        "prompts": len(prompts), "tokens": tokens, "params": params.to_dict(),
        "cold_seconds": cold_s, "cached_seconds": warm_s, "ratio": round(ratio, 2),
        "identical_outputs": identical, "cache_rows": info["rows"], "cache_bytes": info["size_bytes"],
        "cold_stats": cold_gen.stats(), "cached_stats": warm_gen.stats(),
        "loadavg": os.getloadavg(),
    }  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"results: {RESULTS}")
    print(f"ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
