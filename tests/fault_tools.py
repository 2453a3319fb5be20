"""Helpers of the fault-injection tests (test_faults.py): tiny copies of real task data, a scripted
generator, snapshots of a run directory, and a `fewforge` entry point with faults switched on by
environment variables, for the tests that need a second process:

    python tests/fault_tools.py run GRID --output DIR      # `fewforge run` with the scripted generator
    FAULT_BLOCK=PATH   the generator waits (after touching PATH.waiting) until PATH exists
    FAULT_KILL_CELL=N  the process SIGKILLs itself inside the N-th cell, after its predictions are written
    FAULT_MODE=unique|empty|few:N   what the generator answers (default unique)

The scripted generator answers ZeroGen's sst2 requests with real SST-2 reviews of the asked label that
are outside the tiny pool: it proves plumbing, never output quality.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
POOL_PER_LABEL = 12
TEXTS_FROM = 3000  # generator texts come from this line of sst2/train.jsonl on, never from the tiny pool


def tiny_data(data_dir: Path, target: Path, tasks: tuple[str, ...] = ("sst2",), test: int = 16) -> Path:
    """<target>/<task>/train.jsonl (POOL_PER_LABEL rows per label) and dev.jsonl (`test` rows) for each
    task, copied from the real data: a pool small enough to hash in no time."""
    for task in tasks:
        rows = [json.loads(line) for line in (data_dir / task / "train.jsonl").read_text().splitlines()[:400]]
        pool: list[dict[str, Any]] = []
        for label in sorted({r["label"] for r in rows}):
            pool += [r for r in rows if r["label"] == label][:POOL_PER_LABEL]
        dev = (data_dir / task / "dev.jsonl").read_text().splitlines()[:test]
        (target / task).mkdir(parents=True, exist_ok=True)
        (target / task / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pool))
        (target / task / "dev.jsonl").write_text("\n".join(dev) + "\n")
    return target


def generator_texts(data_dir: Path) -> dict[str, list[str]]:
    lines = (data_dir / "sst2" / "train.jsonl").read_text().splitlines()[TEXTS_FROM : TEXTS_FROM + 600]
    out: dict[str, list[str]] = {}
    for row in map(json.loads, lines):
        if 6 <= len(row["text"].split()) <= 40:
            out.setdefault(row["label"], []).append(row["text"])
    return out


def scripted_generator(texts: dict[str, list[str]], mode: str = "unique", block: str | None = None) -> Any:
    """A generator backend answering ZeroGen's requests: `unique` distinct reviews of the asked label,
    `empty` nothing usable (every row is filtered out), `few:N` only N distinct reviews per label."""
    from fewforge.generators.base import Candidate, Completion, Generator, positions

    class Scripted(Generator):
        backend = "scripted"

        @property
        def model_id(self) -> str:
            return f"scripted-{mode}"

        def generate(self, prompts, params, *, start_index=0, progress=None):  # type: ignore[no-untyped-def]
            if block:
                Path(block + ".waiting").touch()
                while not Path(block).exists():
                    time.sleep(0.05)
            out = []
            for prompt, where in zip(prompts, positions(start_index, len(prompts))):
                label = "positive" if "positive" in prompt else "negative"
                if mode == "empty":
                    text = ""
                else:
                    pool = texts[label][: int(mode.split(":")[1])] if mode.startswith("few:") else texts[label]
                    text = pool[where % len(pool)]
                out.append(Completion(prompt=prompt, candidates=(Candidate(text, "stop", len(text.split())),)))
                if progress is not None:
                    progress(1)
            return out

    return Scripted()


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root` with its size and modification time (what a second run must not touch)."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(Path(root).rglob("*"))
        if p.is_file()
    }


def install_faults() -> None:
    """Switch on the faults the environment asks for (see the module docstring)."""
    import fewforge.cells
    import fewforge.grid

    data = Path(os.environ["FAULT_DATA"])
    texts = generator_texts(data)
    mode, block = os.environ.get("FAULT_MODE", "unique"), os.environ.get("FAULT_BLOCK")
    fewforge.grid._generator = lambda cfg: scripted_generator(texts, mode, block)
    kill_at = int(os.environ.get("FAULT_KILL_CELL", "0"))
    if kill_at:
        real = fewforge.cells.train_and_score
        calls = [0]

        def train_then_die(*args: Any, **kwargs: Any) -> Any:
            record = real(*args, **kwargs)
            calls[0] += 1
            if calls[0] == kill_at:  # predictions.jsonl is written, record.json and done.json are not
                os.kill(os.getpid(), signal.SIGKILL)
            return record

        fewforge.cells.train_and_score = train_then_die


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    install_faults()
    from fewforge.cli.app import main

    sys.argv = ["fewforge", *sys.argv[1:]]
    main()
