"""A damaged generations.sqlite is moved aside and the run goes on with an empty cache: completions are
regenerated, never read from damaged pages. (The backend is scripted: this is the cache's plumbing.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fewforge.generators.base import Candidate, Completion, Generator, SamplingParams, positions
from fewforge.generators.cache import CachedGenerator, cache_info


class Counting(Generator):
    backend = "counting"
    model_id = "counting"

    def __init__(self) -> None:
        self.generated = 0

    def generate(self, prompts, params, *, start_index=0, progress=None):  # type: ignore[no-untyped-def]
        self.generated += len(prompts)
        return [Completion(prompt=p, candidates=(Candidate(f"{p} #{i}", "stop", 2),))
                for p, i in zip(prompts, positions(start_index, len(prompts)))]


@pytest.mark.parametrize("damage", ["random", "truncated"])
def test_a_damaged_cache_is_set_aside_and_regenerated(tmp_path: Path, damage: str):
    path, params = tmp_path / "cache" / "generations.sqlite", SamplingParams(seed=1)
    prompts = [f"prompt {i} " + "x" * 400 for i in range(200)]  # several pages, so truncation cuts rows
    first = CachedGenerator(Counting(), path)
    texts = [c.text for c in first.generate(prompts, params)]
    first.close()
    data = path.read_bytes()
    path.write_bytes(os.urandom(len(data)) if damage == "random" else data[: len(data) // 2])
    assert "damaged" in cache_info(path) and path.exists()  # `cache info` reports it and moves nothing

    backend = Counting()
    again = CachedGenerator(backend, path)
    assert [c.text for c in again.generate(prompts, params)] == texts
    assert backend.generated == len(prompts) and again.hits == 0  # regenerated, nothing read from the damage
    again.close()
    (moved,) = [p for p in path.parent.glob("generations.sqlite.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    assert cache_info(path)["rows"] == len(prompts) and "damaged" not in cache_info(path)
