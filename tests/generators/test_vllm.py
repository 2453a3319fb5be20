"""The `vllm:` backend's contract with vLLM, against the fake `vllm` package (fake_vllm/README.md).

vLLM ships CUDA wheels only, so what is checked here is what fewforge asks of the engine: one
`LLM.generate` per call holding every cache miss, a seed per request, LoRA adapters as `LoRARequest`s
with ids from the adapter's content hash, soft prompts as `prompt_embeds`, scores from
`prompt_logprobs`, and the engine in a child process that `close()` ends.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fewforge.errors import BackendError
from fewforge.generators import CachedGenerator, get_generator
from fewforge.generators.base import AdapterRequest, SamplingParams
from fewforge.generators.vllm_offline import VLLMGenerator, lora_int_id

PARAMS = SamplingParams(temperature=0.9, max_new_tokens=6, n=2, seed=7)


def calls(log: Path, event: str = "generate") -> list[dict]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [r for r in map(json.loads, lines) if r["event"] == event]


def test_every_miss_in_one_engine_call_with_its_own_seed(fake_vllm: Path, tiny_model_dir: Path, tmp_path: Path):
    gen = get_generator(f"vllm:{tiny_model_dir}")
    assert isinstance(gen, VLLMGenerator) and gen.model_id.startswith(tiny_model_dir.name + "@")
    cached = CachedGenerator(gen, tmp_path / "c.sqlite")
    prompts = [f"write one word about the number {i}" for i in range(100)]
    try:
        out = cached.generate(prompts, PARAMS, start_index=5)
        (engine_call,) = calls(fake_vllm)  # 200 requests (> the 64/1024 chunks of other backends), one call
        assert engine_call["n"] == 200
        assert engine_call["seeds"] == [PARAMS.request_seed(5 + i, j) for i in range(100) for j in range(2)]
        assert all(kind == "text" for kind, _ in engine_call["kinds"])
        assert len({c.candidates for c in out}) == 100 and all(len(c.candidates) == 2 for c in out)
        assert out[0].candidates[0] != out[0].candidates[1]  # per-request seeds
        again = cached.generate(prompts, PARAMS, start_index=5)
        assert all(c.cached for c in again) and len(calls(fake_vllm)) == 1
        assert [c.candidates for c in again] == [c.candidates for c in out]
    finally:
        cached.close()
    assert gen._proc is None  # the engine's process is gone: its GPU memory with it


def test_lora_adapters_ride_along_with_ids_from_their_content(fake_vllm: Path, tiny_model_dir: Path, tmp_path: Path):
    folder = tmp_path / "teacher"
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"r": 8}')
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    adapter = AdapterRequest(name="teacher", path=str(folder), kind="lora")
    gen = VLLMGenerator(str(tiny_model_dir))
    try:
        plain = gen.generate(["name a color"], SamplingParams(seed=1, max_new_tokens=5))
        tuned = gen.generate(["name a color"], SamplingParams(seed=1, max_new_tokens=5), adapter=adapter)
        inits = calls(fake_vllm, "init")
        assert [i.get("enable_lora", False) for i in inits] == [False, True]  # restarted once, for LoRA
        last = calls(fake_vllm)[-1]
        assert last["loras"] == [["teacher", lora_int_id(adapter), str(folder)]]
        assert last["kinds"][0][0] == "text" and plain[0].text != tuned[0].text
        (folder / "adapter_model.safetensors").write_bytes(b"other weights")
        assert lora_int_id(AdapterRequest(name="teacher", path=str(folder), kind="lora")) != lora_int_id(adapter)
    finally:
        gen.close()


def test_soft_prompts_become_prompt_embeds_and_prefixes_are_refused(
    fake_vllm: Path, tiny_model_dir: Path, tmp_path: Path
):
    import torch
    from safetensors.torch import save_file

    soft = tmp_path / "prompts.safetensors"
    save_file({"values": torch.randn(2, 3, 8)}, str(soft), metadata={"placement": "prompt"})
    prefix = tmp_path / "prefix.safetensors"
    save_file({"values": torch.randn(2, 1, 2, 1, 3, 4)}, str(prefix), metadata={"placement": "prefix"})
    gen = VLLMGenerator(str(tiny_model_dir))
    try:
        out = gen.generate(["a good film"], SamplingParams(seed=3), adapter=AdapterRequest("q", str(soft), label=1))
        assert out[0].text
        last = calls(fake_vllm)[-1]
        assert last["kinds"] == [["embeds", [3 + 3, 8]]]  # 3 soft vectors, then the 3 words' embeddings
        with pytest.raises(BackendError, match="hf:MODEL") as err:
            gen.generate(["a good film"], SamplingParams(seed=3), adapter=AdapterRequest("p", str(prefix)))
        assert "\n" not in str(err.value)
        with pytest.raises(BackendError, match="cannot score under a soft prompt"):
            gen.score(["a"], [" film"], adapter=AdapterRequest("q", str(soft)))
    finally:
        gen.close()


def test_scores_come_from_prompt_logprobs(fake_vllm: Path, tiny_model_dir: Path, tmp_path: Path):
    gen = VLLMGenerator(str(tiny_model_dir), chat=False)
    cached = CachedGenerator(gen, tmp_path / "c.sqlite")
    try:
        scores = cached.score(["the film was", "the film was"], [" good", " bad film"])
        assert [s.n_tokens for s in scores] == [1, 2] and all(s.logprob < 0 for s in scores)
        (engine_call,) = calls(fake_vllm)
        assert engine_call["kinds"] == [["ids", 4], ["ids", 5]] and engine_call["prompt_logprobs"] == [1]
        assert cached.score(["the film was"], [" good"]) == scores[:1] and len(calls(fake_vllm)) == 1
    finally:
        cached.close()


def test_missing_vllm_is_one_line_naming_the_extra(tiny_model_dir: Path):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("a real vllm is installed here")
    gen = VLLMGenerator(str(tiny_model_dir))
    with pytest.raises(BackendError, match=r"fewforge\[vllm\]") as err:
        gen.generate(["hi"], SamplingParams())
    assert "\n" not in str(err.value)


def test_a_bad_model_path_is_the_engines_one_line_error(fake_vllm: Path, tmp_path: Path):
    gen = VLLMGenerator(str(tmp_path / "nowhere"))
    with pytest.raises(BackendError, match="not a local model directory") as err:
        gen.generate(["hi"], SamplingParams())
    assert "\n" not in str(err.value) and gen._proc is None
