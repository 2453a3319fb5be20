"""HFGenerator on the real SmolLM2 (GGUF through transformers, and its converted plain directory)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from fewforge.errors import BackendError
from fewforge.generators._gguf import file_id
from fewforge.generators.base import SamplingParams
from fewforge.generators.hf import HFGenerator, convert_gguf_to_hf

PROMPTS = ["Write a positive movie review.", "Name a fruit."]


def test_convert_gguf_to_hf_is_cached(hf_dir: Path, smollm2_path: Path, tmp_path: Path):
    names = {p.name for p in hf_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "fewforge_source.json"} <= names
    assert json.loads((hf_dir / "fewforge_source.json").read_text())["source_id"] == file_id(smollm2_path)
    weights = hf_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert convert_gguf_to_hf(smollm2_path, hf_dir) == hf_dir  # same source: no reconversion
    assert weights.stat().st_mtime_ns == before
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(BackendError, match="not a fewforge conversion"):
        convert_gguf_to_hf(smollm2_path, foreign)
    assert (foreign / "notes.txt").exists()


def test_generate_order_seeds_and_batching(hf_gen: HFGenerator, hf_dir: Path):
    params = SamplingParams(temperature=1.0, max_new_tokens=6, n=2, seed=5)
    ticks: list[int] = []
    out = hf_gen.generate(PROMPTS, params, progress=ticks.append)
    assert [c.prompt for c in out] == PROMPTS and sum(ticks) == 2
    assert all(len(c.candidates) == 2 for c in out)
    assert all(c.finish_reason in ("stop", "length") and 1 <= c.n_tokens <= 6 for o in out for c in o.candidates)
    assert len({c.text for o in out for c in o.candidates}) == 4  # distinct request seeds
    # Per-row generators: the same seeds give the same texts with another batch size.
    single = HFGenerator(hf_dir, batch_size=1)
    assert [c.candidates for c in single.generate(PROMPTS, params)] == [c.candidates for c in out]
    shifted = hf_gen.generate(PROMPTS[:1], params, start_index=1)[0]
    assert shifted.candidates != out[0].candidates


def test_length_stop_and_chat(hf_gen: HFGenerator):
    assert hf_gen.chat is True  # the converted tokenizer keeps SmolLM2's chat template
    short = hf_gen.generate(PROMPTS[:1], SamplingParams(temperature=0.0, max_new_tokens=3))[0].candidates[0]
    assert short.finish_reason == "length" and short.n_tokens == 3
    params = SamplingParams(temperature=0.0, max_new_tokens=24)
    free = hf_gen.generate(["Count from 1 to 20."], params)[0].text
    assert "5" in free
    stopped = hf_gen.generate(["Count from 1 to 20."], SamplingParams(temperature=0.0, max_new_tokens=24, stop=("5",)))
    cand = stopped[0].candidates[0]
    assert cand.finish_reason == "stop" and cand.text == free[: free.index("5")]


def test_gguf_through_transformers_matches_conversion(
    smollm2_path: Path, hf_gguf_gen: HFGenerator, hf_gen: HFGenerator
):
    assert hf_gguf_gen.model_id == file_id(smollm2_path) != hf_gen.model_id
    assert hf_gguf_gen.chat is True
    params = SamplingParams(temperature=0.7, max_new_tokens=8, n=2, seed=1)
    assert hf_gguf_gen.generate(PROMPTS, params) == hf_gen.generate(PROMPTS, params)  # lossless


def test_seq2seq_model(hf_dir: Path, tmp_path: Path):
    """A tiny random T5 exercises the encoder-decoder path (no T5 weights exist offline)."""
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    tok = AutoTokenizer.from_pretrained(hf_dir)
    config = T5Config(
        vocab_size=len(tok), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, decoder_start_token_id=0,
    )  # fmt: skip
    T5ForConditionalGeneration(config).save_pretrained(tmp_path / "t5")
    tok.save_pretrained(tmp_path / "t5")
    gen = HFGenerator(tmp_path / "t5", chat=False, batch_size=2)
    out = gen.generate(["translate: hello", "a b c"], SamplingParams(temperature=0.9, max_new_tokens=5, n=2))
    assert gen.model.config.is_encoder_decoder
    assert [len(c.candidates) for c in out] == [2, 2]
    assert all(1 <= c.n_tokens <= 5 for o in out for c in o.candidates)
    assert gen.model_id != HFGenerator(hf_dir).model_id


def test_missing_model_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(BackendError, match="not found"):
        HFGenerator(tmp_path / "missing" / "model.gguf").load()
    with pytest.raises(BackendError, match="model directory not found"):
        HFGenerator(str(tmp_path / "nothing-here")).load()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # an empty hub cache
    with pytest.raises(BackendError, match="cannot load the Hugging Face model") as err:
        HFGenerator("some-org/some-model-not-cached").load()
    assert "HF_HUB_OFFLINE" in err.value.hint and "\n" not in str(err.value)
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    with pytest.raises(BackendError):
        HFGenerator(empty).load()
    shutil.rmtree(empty)


def _label_prompts(hf_gen: HFGenerator, tmp_path: Path, name: str = "prompts.safetensors") -> Path:
    """Soft prompts started from two natural prompts, saved as an adapter file."""
    from fewforge.generators.soft_prompts import LabelPrompts

    natural = [hf_gen.tokenizer(t)["input_ids"] for t in ("A glowing movie review:", "A scathing movie review:")]
    return LabelPrompts.from_natural_prompts(hf_gen.model, natural, "prefix").save(tmp_path / name)


def test_a_soft_prompt_adapter_conditions_generation_and_keys_the_cache(hf_gen: HFGenerator, tmp_path: Path):
    import torch

    from fewforge.generators.base import AdapterRequest
    from fewforge.generators.cache import CachedGenerator
    from fewforge.generators.soft_prompts import LabelPrompts

    path = _label_prompts(hf_gen, tmp_path)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=8)
    contexts = [" The", " I watched it and"]
    out = hf_gen.generate(contexts, greedy, adapter=AdapterRequest("reviews", str(path), label=1))
    # an untrained prefix is its natural prompt: the same greedy text as the prompt written out
    natural = hf_gen.tokenizer("A scathing movie review:")["input_ids"]
    for context, completion in zip(contexts, out):
        ids = torch.tensor([natural + hf_gen._tokens(context, start=False)])  # raw context after the prompt
        with torch.no_grad():
            expected = hf_gen.model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
        text = hf_gen.tokenizer.decode(expected[0, ids.shape[1] :], skip_special_tokens=True)
        assert completion.text == text[: len(completion.text)] and completion.text
    other = hf_gen.generate(contexts, greedy, adapter=AdapterRequest("reviews", str(path), label=0))
    assert [c.text for c in other] != [c.text for c in out]  # the label's prompt conditions the text

    sampled = SamplingParams(temperature=0.9, top_p=0.9, max_new_tokens=8, seed=11)
    runs = [hf_gen.generate(contexts, sampled, adapter=AdapterRequest("reviews", str(path), label=1)) for _ in range(2)]
    assert [c.text for c in runs[0]] == [c.text for c in runs[1]]  # sampling under a label's prompt is seeded
    reseeded = hf_gen.generate(contexts, replace(sampled, seed=12), adapter=AdapterRequest("reviews", str(path), label=1))
    assert [c.text for c in reseeded] != [c.text for c in runs[0]]

    cached = CachedGenerator(hf_gen, tmp_path / "cache.sqlite")
    adapter = AdapterRequest("reviews", str(path), label=1)
    first = cached.generate(contexts, greedy, adapter=adapter)
    assert [c.text for c in first] == [c.text for c in out] and cached.misses == 2
    cached.generate(contexts, greedy, adapter=AdapterRequest("reviews", str(path), label=1))
    assert cached.hits == 2  # the same adapter content: hits
    cached.generate(contexts, greedy)
    assert cached.misses == 4  # no adapter is another key
    prompts = LabelPrompts.load(hf_gen.model, path)
    with torch.no_grad():
        prompts.values.add_(0.5)  # retrained
    prompts.save(path)
    retrained = cached.generate(contexts, greedy, adapter=AdapterRequest("reviews", str(path), label=1))
    assert cached.misses == 6 and not any(c.cached for c in retrained)  # never the old prompt's rows
    cached.close()


def test_adapters_fail_clearly_where_they_cannot_load(hf_gen: HFGenerator, tmp_path: Path):
    from fewforge.generators.base import AdapterRequest
    from fewforge.generators.llamacpp import LlamaCppGenerator

    path = _label_prompts(hf_gen, tmp_path)
    with pytest.raises(BackendError, match="llamacpp backend cannot load adapters"):
        LlamaCppGenerator("unused.gguf").generate(["x"], SamplingParams(), adapter=AdapterRequest("a", str(path)))
    with pytest.raises(BackendError, match="has 2 label prompts, not label 5"):
        hf_gen.generate(["x"], SamplingParams(), adapter=AdapterRequest("a", str(path), label=5))
    with pytest.raises(BackendError, match="no file at"):
        hf_gen.generate(["x"], SamplingParams(), adapter=AdapterRequest("a", str(tmp_path / "gone.safetensors")))
