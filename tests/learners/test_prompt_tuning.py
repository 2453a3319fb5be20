"""Prompt tuning on the packaged SmolLM2 (real weights, tiny data), and the seq2seq path on a tiny random T5."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fewforge.data.fewshot import sample_fewshot
from fewforge.data.schema import Example
from fewforge.data.sources import load_task_data
from fewforge.errors import DataError, TaskError
from fewforge.learners.prompt_tuning import PromptTuning, PromptTuningConfig, answer_prefix
from fewforge.packaged import lm_source
from fewforge.tasks import load_task

TINY = dict(prompt_tokens=4, min_steps=4, max_steps=4, eval_every=2, batch_size=2, threads=2)


@pytest.fixture(scope="module")
def sst2(data_dir):
    task = load_task("sst2")
    pool, test = load_task_data(task, data_dir)
    split = sample_fewshot(pool, test, task, 4, seed=13)
    return task, split, test[:12]


def test_answer_prefix_keeps_the_text_before_the_mask():
    assert answer_prefix("{text} It was {mask}.", "single") == ("{text} It was", " ")
    assert answer_prefix("Are {text_a} and {text_b} equivalent? {mask}", "pair") == (
        "Are {text_a} and {text_b} equivalent?",
        " ",
    )
    # an MLM-style template with a field after the mask gives way to the question-style causal one
    assert answer_prefix("{text_a} ? {mask} , {text_b}", "pair") == ("{text_a}\nQuestion: {text_b}\nAnswer:", " ")


def test_prompt_tuning_trains_only_the_prompt_and_reloads_identically(sst2, tmp_path):
    task, split, test = sst2
    synthetic = [Example(inputs={"text": t}, label=l) for t, l in [("A delight.", "positive"), ("Dull.", "negative")]]
    learner = PromptTuning(task, PromptTuningConfig(strategy="paired+gs", **TINY), seed=13)
    learner._load(lm_source(None))
    frozen = {k: v.clone() for k, v in learner.lm.state_dict().items()}
    learner = PromptTuning(task, PromptTuningConfig(strategy="paired+gs", **TINY), seed=13)
    report = learner.fit(split.train, split.dev, synthetic=synthetic)
    after = learner.lm.state_dict()
    assert frozen.keys() == after.keys()
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)  # the LM's weights are bit-equal
    assert report.extra["trainable_parameters"] == 4 * learner.lm.config.hidden_size
    assert len(report.surgery) == 4 and 0.0 <= report.extra["conflict_rate"] <= 1.0
    assert [h["step"] for h in report.history] == [2, 4]

    proba = learner.predict_proba(test)
    assert proba.shape == (len(test), 2) and np.allclose(proba.sum(1), 1.0, atol=1e-5)
    learner.save(tmp_path / "model")
    assert (tmp_path / "model" / "prompt" / "adapter_model.safetensors").stat().st_size < 100_000
    reloaded = PromptTuning.load(task, tmp_path / "model")
    assert np.array_equal(reloaded.predict_proba(test), proba)
    texts = [e.inputs["text"] for e in test[:3]]
    assert reloaded.predict(texts) == learner.predict(test[:3])  # plain strings work too


def test_zero_shot_mode_trains_nothing(sst2):
    task, split, _ = sst2
    learner = PromptTuning(task, PromptTuningConfig(train="none", threads=2), seed=1)
    report = learner.fit(split.train, split.dev)
    assert report.steps == 0 and report.extra["trainable_parameters"] == 0
    assert 0.0 <= report.best_dev_accuracy <= 1.0


def test_bad_training_input_is_one_line(sst2):
    task, split, _ = sst2
    learner = PromptTuning(task, PromptTuningConfig(strategy="syn", **TINY))
    with pytest.raises(DataError, match="needs synthetic rows"):
        learner.fit(split.train, split.dev, synthetic=[])
    odd = [Example(inputs={"text": "fine"}, label="neutral")]
    with pytest.raises(DataError, match="unknown to task 'sst2'"):
        PromptTuning(task, PromptTuningConfig(**TINY)).fit(split.train, split.dev, synthetic=odd)


def test_seq2seq_prompt_sits_on_the_encoder_only(tiny_t5, tmp_path):
    task = load_task("sst2")
    model = tiny_t5(tmp_path / "t5")
    rows = [("a fun film", "positive"), ("a dull movie", "negative"), ("fun", "positive"), ("dull", "negative")]
    train = [Example(inputs={"text": t}, label=l, id=str(i)) for i, (t, l) in enumerate(rows)]
    config = PromptTuningConfig(model=str(model), **TINY)
    learner = PromptTuning(task, config, seed=3)
    report = learner.fit(train, train)
    assert learner.seq2seq
    # one copy of the prompt (the encoder's), not PEFT's seq2seq default of two
    assert report.extra["trainable_parameters"] == 4 * 16
    assert learner.verbalizer == [4, 3]  # terrible, great: the first decoder token
    proba = learner.predict_proba(train)
    learner.save(tmp_path / "saved")
    assert np.array_equal(PromptTuning.load(task, tmp_path / "saved").predict_proba(train), proba)


def test_verbalizer_words_must_start_differently(tiny_t5, tmp_path):
    from fewforge.tasks.base import Task

    task = Task(name="clash", kind="single", labels={"a": "great", "b": "great"}, description="review")
    learner = PromptTuning(task, PromptTuningConfig(model=str(tiny_t5(tmp_path / "t5")), **TINY))
    with pytest.raises(TaskError, match="share a first token"):
        learner._load(str(tmp_path / "t5"))


@pytest.mark.slow  # over a minute on 2 cores: CI's -m slow runs it
def test_baselines_share_the_target_model(sst2, tmp_path):
    """ICL puts seeded demonstrations before the input; PFT trains the LM's own weights; lm-ft adds a head."""
    from fewforge.learners import get_learner

    task, split, test = sst2
    icl = get_learner("icl")(task, get_learner("icl").Config(demonstrations=1, threads=2), seed=5)
    report = icl.fit(split.train, split.dev)
    assert report.extra["trainable_parameters"] == 0
    assert icl.context.count("\n\n") == 2 and (" great\n\n" in icl.context and " terrible\n\n" in icl.context)
    icl.save(tmp_path / "icl")
    assert np.array_equal(get_learner("icl").load(task, tmp_path / "icl").predict_proba(test[:4]),
                          icl.predict_proba(test[:4]))

    tiny = {k: v for k, v in TINY.items() if k != "prompt_tokens"}
    pft = get_learner("pft")(task, get_learner("pft").Config(**tiny, strategy="real"), seed=5)
    pft._load(lm_source(None))
    before = pft.lm.model.layers[0].mlp.up_proj.weight.clone()
    report = pft.fit(split.train, split.dev)
    assert report.extra["trainable_parameters"] == sum(p.numel() for p in pft.lm.parameters())
    assert not torch.equal(before, pft.lm.model.layers[0].mlp.up_proj.weight)

    ft = get_learner("lm-ft")(task, get_learner("lm-ft").Config(**tiny, strategy="real", max_length=32), seed=5)
    report = ft.fit(split.train, split.dev)
    assert report.steps == 4 and ft.predict_proba(test[:3]).shape == (3, 2)


def test_lm_ft_reads_a_seq2seq_model_through_its_encoder(tiny_t5, tmp_path):
    from fewforge.learners import get_learner

    task = load_task("sst2")
    model = tiny_t5(tmp_path / "t5")
    rows = [("a fun film", "positive"), ("a dull movie", "negative"), ("fun", "positive"), ("dull", "negative")]
    train = [Example(inputs={"text": t}, label=l, id=str(i)) for i, (t, l) in enumerate(rows)]
    cls = get_learner("lm-ft")
    learner = cls(task, cls.Config(model=str(model), pooling="mean", min_steps=2, max_steps=2, batch_size=2), seed=1)
    assert learner.fit(train, train).steps == 2
    learner.save(tmp_path / "ft")
    assert np.allclose(cls.load(task, tmp_path / "ft").predict_proba(train), learner.predict_proba(train), atol=1e-6)


def test_a_saved_prompt_starts_a_new_prompt_tuning_run(sst2, tmp_path):
    """init: FOLDER (DawGen's prompt-transfer baselines): the new prompt starts as the saved one, then trains."""
    from fewforge.errors import ConfigError

    task, split, _ = sst2
    source = PromptTuning(task, PromptTuningConfig(strategy="real", **TINY), seed=13)
    source.fit(split.train, split.dev)
    source.save(tmp_path / "source")
    saved = source.model.get_prompt_embedding_to_save("default").detach().clone()

    start = PromptTuning(task, PromptTuningConfig(strategy="real", init=str(tmp_path / "source"), **TINY), seed=21)
    start._load(lm_source(None))
    torch.testing.assert_close(start.model.get_prompt_embedding_to_save("default"), saved)
    moved = PromptTuning(task, PromptTuningConfig(strategy="real", init=str(tmp_path / "source" / "prompt"), **TINY), seed=21)
    moved.fit(split.train, split.dev)
    assert not torch.equal(moved.model.get_prompt_embedding_to_save("default"), saved)  # it trained on from there

    with pytest.raises(ConfigError, match="set prompt_tokens: 4"):
        PromptTuning(task, PromptTuningConfig(**{**TINY, "prompt_tokens": 8}, init=str(tmp_path / "source")), seed=0)._load(lm_source(None))
    with pytest.raises(ConfigError, match="neither 'vocab', 'random' nor a folder"):
        PromptTuning(task, PromptTuningConfig(init=str(tmp_path / "nothing"), **TINY), seed=0)._load(lm_source(None))
