"""Generation throughput against a rate-limited API: rows per second achieved vs the server's limit.

A loopback OpenAI-compatible server (tests/generators/fake_openai.py) answers each request after 100 ms
and enforces 1,200 requests per minute (20 a second, 429 with retry-after-ms beyond it). The client is
`openai:MODEL@URL` with `rpm: 1200` through the generation cache (each answer committed as it arrives),
as a grid would run it. Two runs in one process: a clean server, then one that answers 20 % of requests
with an injected 429 (those are retried; each retry costs a request of the limit, so 0.8 is the
ceiling there). Goals: ratio >= 0.9 clean, >= 0.75 with 429s. The last line is the 429 run's ratio.

    .venv/bin/python bench/api_throughput.py [--rows 800] [--rpm 1200] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "generators"))

from fake_openai import FakeOpenAI  # noqa: E402
from smoke import results_file, smoke_sizes  # noqa: E402

from fewforge.generators.base import SamplingParams  # noqa: E402
from fewforge.generators.cache import CachedGenerator  # noqa: E402
from fewforge.generators.openai_compat import OpenAICompatGenerator  # noqa: E402

RESULTS = results_file("api_throughput.json")


def measure(rows: int, rpm: float, latency: float, inject_429: float) -> dict:
    prompts = [f"Write product review number {i}." for i in range(rows)]
    params = SamplingParams(temperature=0.9, max_new_tokens=32, seed=1)
    with FakeOpenAI(latency=latency, rpm=rpm, inject_429=inject_429, retry_after_ms=100, cap=rows * 4, seed=7) as srv:
        gen = OpenAICompatGenerator("fake", base_url=srv.url, rpm=rpm, concurrency=16, backoff=0.25)
        with tempfile.TemporaryDirectory() as tmp:
            cached = CachedGenerator(gen, Path(tmp) / "generations.sqlite")
            started = time.perf_counter()
            out = cached.generate(prompts, params)
            seconds = time.perf_counter() - started
            cached.close()
        statuses = srv.statuses()
    done = sum(not c.failed for c in out)
    limit = rpm / 60
    return {
        "rows": rows,
        "answered": done,
        "seconds": round(seconds, 2),
        "rows_per_s": round(done / seconds, 2),
        "limit_per_s": limit,
        "ratio": round(done / seconds / limit, 3),
        "requests": len(statuses),
        "status_429": statuses.count(429),
        "injected_429": inject_429,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--rpm", type=float, default=1200)
    parser.add_argument("--latency", type=float, default=0.1)
    args = smoke_sizes(parser, rows=40, rpm=12000, latency=0.01).parse_args()
    clean = measure(args.rows, args.rpm, args.latency, 0.0)
    print(f"clean server: {clean['answered']} rows in {clean['seconds']} s = {clean['rows_per_s']} rows/s "
          f"of {clean['limit_per_s']:g} allowed; {clean['status_429']} of {clean['requests']} requests got 429; "
          f"ratio={clean['ratio']}")
    faulty = measure(args.rows, args.rpm, args.latency, 0.2)
    print(f"20% injected 429s: {faulty['answered']} rows in {faulty['seconds']} s = {faulty['rows_per_s']} rows/s; "
          f"{faulty['status_429']} of {faulty['requests']} requests got 429; ratio={faulty['ratio']}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"clean": clean, "injected_429": faulty}, indent=2) + "\n")
    print(f"ratio={faulty['ratio']}")  # the last line of every bench script


if __name__ == "__main__":
    main()
