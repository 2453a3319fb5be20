"""The Generator contract, checked on every registered backend with a real model (offline).

A new backend registered in `fewforge.generators` must add a factory here, or this file fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fewforge.generators import GENERATORS, CachedGenerator, Generator, SamplingParams
from fewforge.generators.base import Candidate, Completion

PROMPTS = ["Name a color.", "Name an animal.", "Name a color."]  # a repeat: position sets the seed


@pytest.fixture
def make(request: pytest.FixtureRequest):
    def factory(name: str) -> Generator:
        if name == "llamacpp":
            return request.getfixturevalue("llamacpp_gen")
        if name == "hf":
            return request.getfixturevalue("hf_gen")
        if name == "openai":
            from fewforge.generators.openai_compat import OpenAICompatGenerator

            return OpenAICompatGenerator("smollm2", base_url=request.getfixturevalue("llama_server"))
        if name == "openai-batch":  # the Batch API of the loopback fake server (llama.cpp has none)
            from fake_openai import FakeOpenAI

            from fewforge.generators.openai_batch import OpenAIBatchGenerator

            server = FakeOpenAI(batch_polls=2).__enter__()
            request.addfinalizer(server.close)
            gen = OpenAIBatchGenerator("fake", base_url=server.url, poll_interval=0.01)
            gen.bind_state_dir(request.getfixturevalue("tmp_path") / "batches")
            return gen
        if name == "vllm":  # vLLM's contract through the fake package (test_vllm.py)
            from fewforge.generators.vllm_offline import VLLMGenerator

            request.getfixturevalue("fake_vllm")
            gen = VLLMGenerator(str(request.getfixturevalue("tiny_model_dir")))
            request.addfinalizer(gen.close)
            return gen
        raise AssertionError(f"no offline factory for the registered backend {name!r}")

    return factory


@pytest.mark.parametrize("name", GENERATORS.names())
def test_backend_contract(name: str, make, tmp_path: Path):
    gen = make(name)
    assert gen.backend == name and isinstance(gen, GENERATORS.get(name))
    assert isinstance(gen.model_id, str) and gen.model_id
    params = SamplingParams(temperature=1.0, max_new_tokens=5, n=2, seed=21)
    ticks: list[int] = []
    out = gen.generate(PROMPTS, params, start_index=3, progress=ticks.append)
    assert [c.prompt for c in out] == PROMPTS and sum(ticks) == len(PROMPTS)
    for completion in out:
        assert isinstance(completion, Completion) and not completion.cached
        assert len(completion.candidates) == 2
        for cand in completion.candidates:
            assert isinstance(cand, Candidate) and isinstance(cand.text, str)
            assert cand.finish_reason in ("stop", "length") and 1 <= cand.n_tokens <= 5
    assert out[0].candidates != out[2].candidates  # same prompt, other position, other seeds
    assert gen.generate([], params) == []

    cached = CachedGenerator(gen, tmp_path / "c.sqlite")
    first = cached.generate(PROMPTS[:1], params, start_index=3)
    assert first[0].candidates == out[0].candidates  # reproducible: same seeds, same texts
    assert cached.generate(PROMPTS[:1], params, start_index=3)[0].cached
