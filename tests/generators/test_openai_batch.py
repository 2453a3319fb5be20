"""The Batch API backend against the loopback fake server's batch lifecycle (fake_openai.py): shared
cache keys with the online API, submit-only and a restart before collecting, partial and expired
batches resubmitting only what is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI, Fault

from fewforge.errors import PendingWork
from fewforge.generators import CachedGenerator
from fewforge.generators.base import SamplingParams
from fewforge.generators.openai_batch import OpenAIBatchGenerator
from fewforge.generators.openai_compat import OpenAICompatGenerator

PARAMS = SamplingParams(temperature=0.9, max_new_tokens=24, seed=5)
PROMPTS = [f"Write review number {i}." for i in range(10)]


def batch(url: str, **options) -> OpenAIBatchGenerator:
    return OpenAIBatchGenerator("fake", base_url=url, poll_interval=0.01, **options)


def submitted_keys(server: FakeOpenAI, n: int) -> list[str]:
    lines = server.files[server.batches[f"batch-{n}"]["input_file_id"]].decode().splitlines()
    return [json.loads(x)["custom_id"] for x in lines]


def test_batch_answers_are_the_online_cache_rows(tmp_path: Path):
    cache = tmp_path / "cache" / "generations.sqlite"
    with FakeOpenAI(batch_polls=2, cap=30) as srv:
        out = CachedGenerator(batch(srv.url), cache).generate(PROMPTS, PARAMS)
        assert not any(c.failed for c in out) and len(srv.batches) == 1
        assert srv.statuses("/batches") == [200, 200, 200]  # create, then two polls
        state = json.loads(next((tmp_path / "cache" / "batches").glob("*.json")).read_text())
        assert state["collected"] and len(state["keys"]) == 10 and state["keys"] == submitted_keys(srv, 1)
        online = CachedGenerator(OpenAICompatGenerator("fake", base_url=srv.url), cache).generate(PROMPTS, PARAMS)
        assert all(c.cached for c in online) and srv.completions == 0  # nothing asked again online
        assert [c.text for c in online] == [c.text for c in out]


def test_submit_only_then_a_restarted_process_collects_the_same_batch(tmp_path: Path):
    cache = tmp_path / "cache" / "generations.sqlite"
    with FakeOpenAI(batch_polls=1, cap=30) as srv:
        first = batch(srv.url)
        first.submit_only = True
        with pytest.raises(PendingWork, match="batch-1 validating"):
            CachedGenerator(first, cache).generate(PROMPTS, PARAMS)
        assert len(srv.batches) == 1 and srv.completions == 0
        out = CachedGenerator(batch(srv.url), cache).generate(PROMPTS, PARAMS)  # a new process, same run dir
        assert not any(c.failed for c in out) and len(srv.batches) == 1  # collected, not submitted again


def test_a_partial_batch_resubmits_only_the_missing_requests(tmp_path: Path):
    with FakeOpenAI(batch_polls=1, batch_drop=3, batch_final=["completed", "completed"], cap=30) as srv:
        srv.batch_drop = 3
        gen = batch(srv.url)
        cached = CachedGenerator(gen, tmp_path / "cache" / "generations.sqlite")
        out = cached.generate(PROMPTS, PARAMS)
        assert len(srv.batches) == 3  # 10, then the 3 left out, then 0 of those 3 (drop applies per batch)
        first = submitted_keys(srv, 1)
        assert submitted_keys(srv, 2) == first[:3]
        assert sum(c.failed for c in out) == 3  # three batches with them left out: max_rounds reached
        assert "no answer after 3 batches" in out[0].candidates[0].failure.message


def test_an_expired_batch_keeps_its_answers_and_resubmits_the_rest(tmp_path: Path):
    with FakeOpenAI(batch_polls=1, batch_final=["expired", "completed"], cap=30) as srv:
        out = CachedGenerator(batch(srv.url), tmp_path / "cache" / "generations.sqlite").generate(PROMPTS, PARAMS)
        assert not any(c.failed for c in out) and len(srv.batches) == 2
        assert submitted_keys(srv, 2) == submitted_keys(srv, 1)[5:]  # the expired batch answered half


def test_a_refused_line_is_a_failed_request_not_resubmitted(tmp_path: Path):
    bad = PROMPTS[2]

    def rule(n: int, body: dict) -> Fault | None:
        return Fault(400, "refused") if body["messages"][-1]["content"] == bad else None

    with FakeOpenAI(rule=rule, batch_polls=1, cap=30) as srv:
        out = CachedGenerator(batch(srv.url), tmp_path / "cache" / "generations.sqlite").generate(PROMPTS, PARAMS)
        assert [c.prompt for c in out if c.failed] == [bad] and len(srv.batches) == 1
        assert out[2].candidates[0].failure.status == 400


def test_without_the_cache_the_batch_backend_says_why(tmp_path: Path):
    from fewforge.errors import BackendError

    gen = OpenAIBatchGenerator("fake", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(BackendError, match="without --no-cache"):
        CachedGenerator(gen, tmp_path / "c.sqlite", enabled=False).generate(PROMPTS[:1], PARAMS)
