"""OpenAICompatGenerator against a real llama.cpp HTTP server on loopback (serving SmolLM2)."""

from __future__ import annotations

import asyncio

import pytest

from fewforge.generators.base import SamplingParams
from fewforge.generators.openai_compat import OpenAICompatGenerator

PROMPTS = ["Write a positive movie review.", "Name a fruit.", "Write a negative movie review."]


def test_chat_mode_order_seeds_and_progress(llama_server: str):
    gen = OpenAICompatGenerator("smollm2", base_url=llama_server, concurrency=4)
    params = SamplingParams(temperature=1.0, max_new_tokens=8, n=2, seed=11)
    ticks: list[int] = []
    out = gen.generate(PROMPTS, params, progress=ticks.append)
    assert [c.prompt for c in out] == PROMPTS and sum(ticks) == 3
    assert all(len(c.candidates) == 2 for c in out)
    for cand in (c for comp in out for c in comp.candidates):
        assert cand.text.strip() and cand.finish_reason in ("stop", "length") and 1 <= cand.n_tokens <= 8
    assert len({c.text for c in out[0].candidates}) == 2  # one request per candidate, distinct seeds
    again = gen.generate(PROMPTS[:1], params)
    assert again[0].candidates == out[0].candidates  # llama.cpp honours the seed


def test_completions_mode_stop_length_and_extra_body(llama_server: str):
    gen = OpenAICompatGenerator("smollm2", base_url=llama_server, chat=False)
    out = gen.generate(["The capital of France is"], SamplingParams(temperature=0.0, max_new_tokens=6))
    assert "Paris" in out[0].text
    short = gen.generate(["Once upon a time"], SamplingParams(temperature=0.0, max_new_tokens=2))
    assert short[0].candidates[0].finish_reason == "length" and short[0].candidates[0].n_tokens == 2
    params = SamplingParams(temperature=0.0, max_new_tokens=24, stop=("5",), top_k=20, repetition_penalty=1.1)
    stopped = gen.generate(["1, 2, 3, 4,"], params)[0].candidates[0]
    assert stopped.finish_reason == "stop" and "5" not in stopped.text


def test_request_args_keep_defaults_out():
    gen = OpenAICompatGenerator("gpt-x")
    args = gen._request_args("hi", SamplingParams(), seed=3)
    assert "extra_body" not in args and "stop" not in args  # OpenAI rejects unknown fields
    assert args["n"] == 1 and args["seed"] == 3 and args["messages"][0]["content"] == "hi"
    args = gen._request_args("hi", SamplingParams(top_k=5, repetition_penalty=1.2), seed=3)
    assert args["extra_body"] == {"top_k": 5, "repetition_penalty": 1.2, "repeat_penalty": 1.2}


def test_model_id_ignores_urls_and_key(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MY_KEY", "sk-secret-value")
    a = OpenAICompatGenerator("Qwen/Qwen2.5-7B", base_url="http://a:8000/v1", api_key_env="MY_KEY")
    b = OpenAICompatGenerator("Qwen/Qwen2.5-7B", base_url="http://b:9000/v1,http://c:9000/v1")
    assert a.model_id == b.model_id == "openai:Qwen/Qwen2.5-7B" and len(b.endpoints) == 2
    assert "sk-secret-value" not in repr(vars(a))  # the key is read per call, never stored


def test_unreachable_server_is_a_failed_request_with_one_line(closed_url: str):
    url = closed_url
    gen = OpenAICompatGenerator("smollm2", base_url=url, max_attempts=1, timeout=2.0)
    (out,) = gen.generate(["hello"], SamplingParams(max_new_tokens=4))
    failure = out.candidates[0].failure
    assert out.failed and out.text == "" and out.candidates[0].finish_reason == "error"
    assert failure.message == f"cannot reach the generator server at {url}" and failure.status is None


def test_works_inside_a_running_event_loop(llama_server: str):
    gen = OpenAICompatGenerator("smollm2", base_url=llama_server)

    async def caller() -> str:
        return gen.generate(["Say hi."], SamplingParams(temperature=0.0, max_new_tokens=4))[0].text

    assert asyncio.run(caller()).strip()


def test_unknown_endpoint_fails_the_request_with_the_servers_status(llama_server: str):
    url = llama_server.removesuffix("/v1") + "/nope/v1"
    gen = OpenAICompatGenerator("smollm2", base_url=url)
    (out,) = gen.generate(["hello"], SamplingParams(max_new_tokens=2))
    assert out.failed and out.candidates[0].failure.status == 404 and out.candidates[0].failure.attempts == 1
