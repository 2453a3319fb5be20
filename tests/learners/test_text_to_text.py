"""Text-to-text learners: seq2seq on a tiny random T5 (no seq2seq weights exist offline) and causal-lm on the
packaged SmolLM2 (real weights, LoRA), both on tiny squad-qg slices."""

from __future__ import annotations

import pytest
import torch

from fewforge.data.fewshot import sample_fewshot
from fewforge.data.schema import Example
from fewforge.data.sources import load_task_data
from fewforge.errors import ConfigError
from fewforge.learners import get_learner
from fewforge.learners.text_to_text import CausalLMConfig, CausalLMLearner, Seq2SeqConfig, Seq2SeqLearner
from fewforge.packaged import lm_source
from fewforge.tasks import load_task

FIXED = "what is it"


@pytest.fixture(scope="module")
def squad_qg(data_dir):
    task = load_task("squad-qg")
    pool, test = load_task_data(task, data_dir)
    return task, sample_fewshot(pool, test, task, 8, seed=13), test[:4]


def _tiny_t5(directory, texts):
    """A random 1-layer T5 and a word-level tokenizer over `texts` (plus <pad>, </s>, <unk>)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    words = ["<pad>", "</s>", "<unk>"] + sorted({w for t in texts for w in t.split()})
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    config = T5Config(vocab_size=len(words), d_model=32, d_ff=64, d_kv=16, num_heads=2, num_layers=1,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def test_options_and_kinds_are_checked_in_one_line(squad_qg):
    task, split, _ = squad_qg
    with pytest.raises(ConfigError, match="needs a `model`") as err:
        get_learner("seq2seq")(task)  # no default seq2seq weights exist offline
    assert "\n" not in str(err.value) and "facebook/bart-base" in err.value.hint
    with pytest.raises(ConfigError, match="needs a `model`"):
        Seq2SeqConfig(model="")
    with pytest.raises(ConfigError, match="learns text-to-text tasks"):
        CausalLMLearner(load_task("sst2"))
    assert get_learner("causal-lm") is CausalLMLearner and CausalLMLearner.kinds == ("text-to-text",)
    assert CausalLMConfig().lr() == 5e-4 and CausalLMConfig(lora=False).lr() == 5e-5
    assert CausalLMConfig().total_steps(32) == 40  # batch 4, 5 epochs


def test_seq2seq_overfits_a_fixed_target_and_reloads(squad_qg, tmp_path):
    task, split, test = squad_qg
    train = [Example(inputs=e.inputs, label=FIXED, id=e.id) for e in split.train]
    dev = [Example(inputs=e.inputs, label=FIXED, id=e.id) for e in split.dev]
    model = _tiny_t5(tmp_path / "t5", [task.source(e) for e in split.train] + [FIXED])
    config = Seq2SeqConfig(model=model, max_source_length=48, learning_rate=1e-2, min_steps=60, max_steps=60,
                           eval_every=20, dev_rows=4, threads=2)
    learner = Seq2SeqLearner(task, config, seed=3)
    report = learner.fit(train, dev)
    losses = [h["loss"] for h in report.history]
    assert report.steps == 60 and losses[-1] < losses[0] / 3
    assert report.best_dev_accuracy == 1.0  # ROUGE-L of the fixed target on dev
    assert all(len(r["source"]) <= 48 for r in learner._encode(split.train))
    predicted = learner.predict(test)
    assert predicted == [FIXED] * len(test)
    with pytest.raises(ConfigError, match="predicts texts"):
        learner.predict_proba(test)
    learner.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "model" / "config.json").is_file()
    reloaded = Seq2SeqLearner.load(task, tmp_path / "saved")
    assert reloaded.predict(test) == predicted
    assert reloaded.predict([(e.inputs["context"], e.inputs["answer"]) for e in test[:2]]) == predicted[:2]


def test_seq2seq_lora_trains_adapters_only(squad_qg, tmp_path):
    task, split, test = squad_qg
    model = _tiny_t5(tmp_path / "t5", [task.source(e) for e in split.train])
    config = Seq2SeqConfig(model=model, lora=True, max_source_length=32, min_steps=2, max_steps=2,
                           dev_metric="loss", threads=2)
    learner = Seq2SeqLearner(task, config, seed=1)
    report = learner.fit(split.train, split.dev)
    total = sum(p.numel() for p in learner.lm.parameters())
    assert 0 < report.extra["trainable_parameters"] < total / 5 and report.best_dev_accuracy == 0.0
    learner.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "adapter" / "adapter_config.json").is_file()
    assert Seq2SeqLearner.load(task, tmp_path / "saved").predict(test) == learner.predict(test)


@pytest.mark.slow  # over a minute on 2 cores: CI's -m slow runs it
def test_causal_lm_lora_learns_squad_qg_and_reloads(squad_qg, tmp_path):
    """8 rows of squad-qg, 12 LoRA steps on SmolLM2 (~35 s on 2 cores): ROUGE-L and loss on the training
    rows improve, the base weights stay bit-equal, predictions are questions."""
    task, split, test = squad_qg
    config = CausalLMConfig(max_source_length=96, batch_size=2, learning_rate=1e-3, min_steps=12, max_steps=12,
                            eval_every=6, dev_rows=4, max_new_tokens=24, threads=2)
    before = CausalLMLearner(task, config, seed=13)
    before._load(before._source())
    rouge_before, loss_before = before.evaluate(split.train)
    frozen = {k: v.clone() for k, v in _base_weights(before).items()}
    del before

    learner = CausalLMLearner(task, config, seed=13)
    report = learner.fit(split.train, split.dev)
    assert report.steps == 12 and [h["step"] for h in report.history] == [6, 12]
    rouge_after, loss_after = learner.evaluate(split.train)
    assert loss_after < loss_before and rouge_after > rouge_before
    base = _base_weights(learner)
    assert base.keys() == frozen.keys() and all(torch.equal(frozen[k], base[k]) for k in frozen)
    assert report.extra["trainable_parameters"] < 0.01 * sum(v.numel() for v in frozen.values())

    predicted = learner.predict(test)
    assert len(predicted) == len(test) and all(p and "\n" not in p for p in predicted)
    assert sum("?" in p for p in predicted) >= len(test) // 2, predicted  # 12 steps: questions, some degenerate
    learner.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "adapter" / "adapter_model.safetensors").stat().st_size < 10_000_000
    assert CausalLMLearner.load(task, tmp_path / "saved").predict(test[:2]) == predicted[:2]


def _base_weights(learner):
    """The LM's own weights, without LoRA's (PEFT keeps each adapted layer's weight as base_layer)."""
    return {k.replace(".base_layer", ""): v for k, v in learner.lm.state_dict().items() if "lora_" not in k}


@pytest.mark.parametrize("strategy", ["paired", "paired+gs"])
def test_causal_lm_mixes_synthetic_rows(squad_qg, strategy):
    task, split, _ = squad_qg
    synthetic = [Example(inputs=dict(e.inputs), label=f"What is {e.inputs['answer']}?", id=f"syn-{i}")
                 for i, e in enumerate(split.dev[:3])]
    config = CausalLMConfig(strategy=strategy, max_source_length=64, batch_size=2, min_steps=2, max_steps=2,
                            dev_metric="loss", dev_rows=2, threads=2)
    report = CausalLMLearner(task, config, seed=5).fit(split.train[:4], split.dev, synthetic=synthetic)
    assert report.steps == 2 and report.extra["strategy"] == strategy
    if strategy == "paired+gs":
        assert len(report.surgery) == 2 and 0.0 <= report.extra["conflict_rate"] <= 1.0


def test_causal_lm_full_fine_tuning_on_a_tiny_llama(squad_qg, tmp_path):
    """lora: false trains every weight and saves the whole model (a tiny random Llama with SmolLM2's
    tokenizer stands in for the 540 MB model)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    task, split, test = squad_qg
    tokenizer = AutoTokenizer.from_pretrained(lm_source(None))
    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                         max_position_embeddings=256, tie_word_embeddings=True))
    llama.save_pretrained(tmp_path / "llama")
    tokenizer.save_pretrained(tmp_path / "llama")
    config = CausalLMConfig(model=str(tmp_path / "llama"), lora=False, max_source_length=64, min_steps=3,
                            max_steps=3, dev_rows=2, max_new_tokens=4, threads=2)
    learner = CausalLMLearner(task, config, seed=2)
    report = learner.fit(split.train, split.dev)
    assert report.extra["trainable_parameters"] == sum(p.numel() for p in learner.model.parameters())
    assert all(len(r["source"]) <= 64 for r in learner._encode(split.train))
    predicted = learner.predict(test)
    learner.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "model" / "config.json").is_file()
    assert CausalLMLearner.load(task, tmp_path / "saved").predict(test) == predicted
