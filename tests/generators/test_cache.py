"""CachedGenerator over the real llama.cpp backend: hits, cache_only, resume after interruption."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Sequence

import pytest

from fewforge.errors import BackendError
from fewforge.generators.base import (
    AdapterRequest,
    Completion,
    Generator,
    Positions,
    ProgressCallback,
    SamplingParams,
    positions,
)
from fewforge.generators.cache import CachedGenerator, cache_info, cache_key

PROMPTS = [f"Write one word about the number {i}." for i in range(5)]
PARAMS = SamplingParams(temperature=0.9, max_new_tokens=6, n=2, seed=4)


class Recording(Generator):
    """The real backend, recording the calls it gets and optionally failing on call `fail_on`."""

    def __init__(self, inner: Generator, fail_on: int | None = None) -> None:
        self.inner, self.fail_on = inner, fail_on
        self.calls: list[list[int]] = []  # the seed positions of each call's prompts
        self.backend = inner.backend  # type: ignore[misc]
        self.supports_adapters = inner.supports_adapters  # type: ignore[misc]

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def output_options(self) -> dict:
        return self.inner.output_options()

    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        start_index: Positions = 0,
        progress: ProgressCallback | None = None,
        adapter: AdapterRequest | None = None,
    ) -> list[Completion]:
        if len(self.calls) == self.fail_on:
            raise KeyboardInterrupt  # an interruption in the middle of the run
        self.calls.append(positions(start_index, len(prompts)))
        extra = {"adapter": adapter} if adapter is not None else {}
        return self.inner.generate(prompts, params, start_index=start_index, progress=progress, **extra)


def rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        count = conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    conn.close()
    return count


def test_second_call_is_all_hits_and_identical(llamacpp_gen, tmp_path: Path):
    path = tmp_path / "gen.sqlite"
    inner = Recording(llamacpp_gen)
    cached = CachedGenerator(inner, path, chunk_size=2)
    ticks: list[int] = []
    first = cached.generate(PROMPTS, PARAMS, progress=ticks.append)
    assert inner.calls == [[0, 1], [2, 3], [4]] and sum(ticks) == 5
    assert (cached.hits, cached.misses) == (0, 10) and not any(c.cached for c in first)
    assert rows(path) == 10
    cached.close()

    reopened = CachedGenerator(Recording(llamacpp_gen), path)
    ticks.clear()
    second = reopened.generate(PROMPTS, PARAMS, progress=ticks.append)
    assert reopened.inner.calls == [] and sum(ticks) == 5  # type: ignore[attr-defined]
    assert [c.candidates for c in second] == [c.candidates for c in first]
    assert all(c.cached for c in second)
    usage = {"requests": 0, "failed": 0, "prompt_tokens": 0, "completion_tokens": 0}  # hits cost nothing
    assert reopened.stats() == {"hits": 10, "misses": 0, "hit_rate": 1.0, "usage": usage, "path": str(path)}
    info = reopened.info()
    assert info["rows"] == 10 and info["size_bytes"] > 0 and info == cache_info(path)

    # Other sampling params or another seed are other keys; n=3 reuses candidates 0 and 1.
    snapshot = reopened.stats()
    more = reopened.generate(PROMPTS[:1], SamplingParams(**{**PARAMS.to_dict(), "n": 3}))
    assert more[0].candidates[:2] == first[0].candidates[:2] and not more[0].cached
    assert reopened.stats(since=snapshot)["hits"] == 2 and reopened.stats(since=snapshot)["misses"] == 1
    assert reopened.inner.calls == [[0]]  # type: ignore[attr-defined]
    reopened.close()


def test_cache_only_and_disabled(llamacpp_gen, tmp_path: Path):
    path = tmp_path / "gen.sqlite"
    CachedGenerator(llamacpp_gen, path).generate(PROMPTS[:2], PARAMS)
    reader = CachedGenerator(llamacpp_gen, path, cache_only=True)
    assert len(reader.generate(PROMPTS[:2], PARAMS)) == 2
    with pytest.raises(BackendError, match="1 of 3 prompts are not in the cache"):
        reader.generate(PROMPTS[:3], PARAMS)
    with pytest.raises(BackendError):  # a new seed is a miss too
        reader.generate(PROMPTS[:1], SamplingParams(**{**PARAMS.to_dict(), "seed": 5}))

    off_path = tmp_path / "off.sqlite"
    inner = Recording(llamacpp_gen)
    off = CachedGenerator(inner, off_path, enabled=False)
    off.generate(PROMPTS[:1], PARAMS)
    off.generate(PROMPTS[:1], PARAMS)
    assert len(inner.calls) == 2 and not off_path.exists() and off.hits == 0
    assert (off.backend, off.model_id) == (llamacpp_gen.backend, llamacpp_gen.model_id)


def test_resume_after_interruption(llamacpp_gen, tmp_path: Path):
    path = tmp_path / "gen.sqlite"
    broken = CachedGenerator(Recording(llamacpp_gen, fail_on=1), path, chunk_size=2)
    with pytest.raises(KeyboardInterrupt):
        broken.generate(PROMPTS, PARAMS)
    assert rows(path) == 4  # the first chunk (2 prompts x 2 candidates) was committed
    broken.close()

    inner = Recording(llamacpp_gen)
    resumed = CachedGenerator(inner, path, chunk_size=2)
    out = resumed.generate(PROMPTS, PARAMS)
    assert inner.calls == [[2, 3], [4]]  # only the missing prompts, at their own positions
    assert (resumed.hits, resumed.misses) == (4, 6)
    assert [c.cached for c in out] == [True, True, False, False, False]
    assert rows(path) == 10  # no duplicates, nothing missing
    # The resumed run equals an uninterrupted one (seeds follow positions, not chunks).
    fresh = CachedGenerator(llamacpp_gen, tmp_path / "fresh.sqlite", chunk_size=64).generate(PROMPTS, PARAMS)
    assert [c.candidates for c in out] == [c.candidates for c in fresh]


def test_kill_9_keeps_committed_chunks(llamacpp_gen, smollm2_path: Path, tmp_path: Path):
    """A process killed with SIGKILL in the middle of a run keeps every committed chunk."""
    path = tmp_path / "gen.sqlite"
    script = textwrap.dedent(
        f"""
        import os, signal
        from fewforge.generators.base import SamplingParams
        from fewforge.generators.cache import CachedGenerator
        from fewforge.generators.llamacpp import LlamaCppGenerator

        inner = LlamaCppGenerator({str(smollm2_path)!r}, n_parallel=2, n_ctx_per_slot=256)
        original = inner.generate
        calls = []

        def generate(prompts, params, **kw):
            if calls:
                os.kill(os.getpid(), signal.SIGKILL)
            calls.append(1)
            return original(prompts, params, **kw)

        inner.generate = generate
        CachedGenerator(inner, {str(path)!r}, chunk_size=2).generate({PROMPTS!r}, SamplingParams(**{PARAMS.to_dict()!r}))
        """
    )
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert rows(path) == 4
    inner = Recording(llamacpp_gen)  # same GGUF, so the same model_id and keys
    out = CachedGenerator(inner, path, chunk_size=2).generate(PROMPTS, PARAMS)
    assert inner.calls == [[2, 3], [4]] and rows(path) == 10
    assert [c.cached for c in out] == [True, True, False, False, False]


def test_key_covers_backend_model_prompt_params_and_seed():
    base = cache_key("llamacpp", "m@1", "hi", PARAMS, 1)
    assert base == cache_key("llamacpp", "m@1", "hi", SamplingParams(**{**PARAMS.to_dict(), "n": 7}), 1)
    others = {
        cache_key("hf", "m@1", "hi", PARAMS, 1),
        cache_key("llamacpp", "m@2", "hi", PARAMS, 1),
        cache_key("llamacpp", "m@1", "hi!", PARAMS, 1),
        cache_key("llamacpp", "m@1", "hi", SamplingParams(**{**PARAMS.to_dict(), "temperature": 0.5}), 1),
        cache_key("llamacpp", "m@1", "hi", PARAMS, 2),
        cache_key("llamacpp", "m@1", "hi", PARAMS, 1, {"chat": False}),  # the chat template off: other text
    }
    assert base not in others and len(others) == 6
    assert cache_key("llamacpp", "m@1", "hi", PARAMS, 1, {}) == base  # no options: keys stay as they were


def test_explicit_positions_tie_seeds_to_positions(llamacpp_gen, tmp_path: Path):
    """A caller may give every prompt its position (a method growing a set label by label): the
    completion depends on the position, not on where the prompt sits in this call."""
    cached = CachedGenerator(llamacpp_gen, tmp_path / "gen.sqlite")
    out = cached.generate([PROMPTS[1], PROMPTS[0]], PARAMS, start_index=[1, 0])
    in_order = cached.generate(PROMPTS[:2], PARAMS)
    assert [c.cached for c in in_order] == [True, True]
    assert [out[1].candidates, out[0].candidates] == [c.candidates for c in in_order]
