"""LoRA adapters (peft folders) on the transformers backend with the real packaged SmolLM2: made the way
DAFTT's teacher makes them (peft on a deep copy of `trainable().model`), sent per request, never
touching what adapter-less requests, `trainable()` and soft prompts run on."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Iterator

import pytest
import torch

from fewforge.errors import BackendError
from fewforge.generators import AdapterRequest, CachedGenerator, SamplingParams, get_generator
from fewforge.generators.hf import HFGenerator

# peft's get_peft_model (how the test adapters are made) trips a transformers deprecation warning
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

PROMPTS = ["The capital of France is", "I watched the film and"]
CONTINUATIONS = [" Paris", " loved every minute of it"]
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=6)


@pytest.fixture(scope="module")
def smol() -> Iterator[HFGenerator]:
    gen = get_generator("hf:smollm2", batch_size=4)
    gen.load()
    yield gen
    gen.close()


def make_lora(gen: HFGenerator, path: Path, seed: int | None) -> Path:
    """A LoRA on q/v projections saved with save_pretrained; `seed=None` keeps peft's init (B = 0, a no-op),
    otherwise lora_B gets random values so the adapter changes the model."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    torch.manual_seed(seed or 0)  # lora_A's random init too: one seed, one adapter
    model = get_peft_model(copy.deepcopy(gen.trainable().model), config)
    if seed is not None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(std=0.05)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def loras(smol: HFGenerator, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("loras")
    return {name: make_lora(smol, root / name, seed) for name, seed in (("a", 1), ("b", 2), ("zero", None))}


def lora(path: Path, name: str = "teacher") -> AdapterRequest:
    return AdapterRequest(name=name, path=str(path), kind="lora")


def texts(completions) -> list[str]:
    return [c.text for c in completions]


def test_a_lora_changes_scores_and_generations_and_leaves_the_base_model_alone(smol, loras):
    base_model = smol.trainable().model
    weights = {n: p.detach().clone() for n, p in base_model.named_parameters()}
    flags = {n: p.requires_grad for n, p in base_model.named_parameters()}
    base_scores = smol.score(PROMPTS, CONTINUATIONS)
    base_texts = texts(smol.generate(PROMPTS, GREEDY))

    tuned_scores = smol.score(PROMPTS, CONTINUATIONS, adapter=lora(loras["a"]))
    tuned_texts = texts(smol.generate(PROMPTS, GREEDY, adapter=lora(loras["a"])))
    assert [s.logprob for s in tuned_scores] != [s.logprob for s in base_scores]
    assert tuned_texts != base_texts

    assert smol.score(PROMPTS, CONTINUATIONS) == base_scores  # exactly the base model again
    assert texts(smol.generate(PROMPTS, GREEDY)) == base_texts
    # the backend's own model was never wrapped: no LoRA layers, same weights, same flags
    assert smol.trainable().model is base_model
    assert not any("lora" in name for name, _ in base_model.named_modules())
    assert all(torch.equal(p, weights[n]) for n, p in base_model.named_parameters())
    assert {n: p.requires_grad for n, p in base_model.named_parameters()} == flags
    # what DAFTT's teacher does with trainable() still works after LoRA requests
    from peft import LoraConfig, get_peft_model

    student = get_peft_model(copy.deepcopy(base_model), LoraConfig(r=2, target_modules=["q_proj"]))
    assert sum(p.numel() for p in student.parameters() if p.requires_grad) > 0


def test_a_zero_lora_scores_and_generates_like_the_base_model_on_raw_prompts(smol, loras):
    """With an adapter, a prompt is raw text (no chat template, no BOS), so an adapter that changes nothing
    matches the base model on the same raw prompt."""
    raw = get_generator("hf:smollm2", batch_size=4, chat=False)
    try:
        zero = smol.score(PROMPTS, CONTINUATIONS, adapter=lora(loras["zero"]))
        expected = raw.score(PROMPTS, CONTINUATIONS)
        for z, e in zip(zero, expected):
            assert z.n_tokens == e.n_tokens and z.logprob == pytest.approx(e.logprob, abs=1e-4)
        assert zero[0].logprob > -1.0  # " Paris" after the raw prompt, not after the chat template
        assert texts(smol.generate(PROMPTS, GREEDY, adapter=lora(loras["zero"]))) == texts(
            raw.generate(PROMPTS, GREEDY)
        )
    finally:
        raw.close()


def test_different_loras_in_one_process_and_a_retrained_folder(smol, loras, tmp_path: Path):
    a = smol.score(PROMPTS, CONTINUATIONS, adapter=lora(loras["a"]))
    b = smol.score(PROMPTS, CONTINUATIONS, adapter=lora(loras["b"]))
    assert [s.logprob for s in a] != [s.logprob for s in b]
    assert smol.score(PROMPTS, CONTINUATIONS, adapter=lora(loras["a"], name="other name")) == a  # keyed by content
    batched = smol.score(PROMPTS * 3, CONTINUATIONS * 3, adapter=lora(loras["b"]))
    for got, want in zip(batched, b * 3):
        assert got.logprob == pytest.approx(want.logprob, abs=1e-3)  # padding and batching change nothing

    folder = make_lora(smol, tmp_path / "retrained", seed=1)  # the same weights as "a": the same scores
    assert smol.score(PROMPTS, CONTINUATIONS, adapter=lora(folder)) == a
    make_lora(smol, folder, seed=3)  # retrained in place: new content, new results
    assert lora(folder).content_hash != lora(loras["a"]).content_hash
    assert smol.score(PROMPTS, CONTINUATIONS, adapter=lora(folder)) != a


def test_lora_requests_through_the_cache(smol, loras, tmp_path: Path):
    cached = CachedGenerator(smol, tmp_path / "cache.sqlite")
    tuned = cached.generate(PROMPTS, GREEDY, adapter=lora(loras["a"]))
    assert cached.misses == 2 and texts(tuned) == texts(smol.generate(PROMPTS, GREEDY, adapter=lora(loras["a"])))
    assert all(c.cached for c in cached.generate(PROMPTS, GREEDY, adapter=lora(loras["a"], name="renamed")))
    cached.generate(PROMPTS, GREEDY, adapter=lora(loras["b"]))
    cached.generate(PROMPTS, GREEDY)
    assert cached.misses == 6  # another adapter, and none, are other keys
    scores = cached.score(PROMPTS, CONTINUATIONS, adapter=lora(loras["a"]))
    assert cached.score(PROMPTS, CONTINUATIONS, adapter=lora(loras["a"])) == scores
    assert cached.score(PROMPTS, CONTINUATIONS) != scores
    assert (cached.score_hits, cached.score_misses) == (2, 4)
    cached.close()


def test_bad_lora_folders_are_one_line_errors(smol, loras, tmp_path: Path, tiny_causal_lm):
    from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BackendError, match="no peft adapter"):
        smol.score(PROMPTS, CONTINUATIONS, adapter=lora(empty))
    prompt_tuning = tmp_path / "prompt-tuning"
    get_peft_model(
        copy.deepcopy(smol.trainable().model), PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=2)
    ).save_pretrained(prompt_tuning)
    with pytest.raises(BackendError, match="PROMPT_TUNING peft adapter, not LoRA"):
        smol.generate(PROMPTS, GREEDY, adapter=lora(prompt_tuning))
    other_model = tmp_path / "other-model"  # a LoRA tuned on another (tiny) Llama: the shapes do not fit
    get_peft_model(tiny_causal_lm(), LoraConfig(r=2, target_modules=["q_proj", "v_proj"])).save_pretrained(other_model)
    with pytest.raises(BackendError, match="peft cannot load") as err:
        smol.score(PROMPTS, CONTINUATIONS, adapter=lora(other_model))
    assert "\n" not in str(err.value) and err.value.__cause__ is None
    config = json.loads((other_model / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    # a failed load leaves nothing behind: good adapters and the base model still work
    assert smol.score(PROMPTS, CONTINUATIONS, adapter=lora(loras["zero"]))[0].logprob > -1.0
    assert not any("lora" in name for name, _ in smol.model.named_modules())
