"""Saved models load with their learner's own library and predict what fewforge predicts, label names
included: SetFit folders (setfit and the linear probe) in `SetFitModel`, the encoder in transformers'
pipeline and AutoModelForSequenceClassification, soft prompts and LoRA adapters in peft's `PeftModel`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fewforge.data.fewshot import sample_fewshot
from fewforge.data.schema import Example
from fewforge.data.sources import load_task_data
from fewforge.learners.card import load_model, write_card
from fewforge.tasks import load_task


@pytest.fixture(scope="module")
def sst2(data_dir):
    task = load_task("sst2")
    pool, test = load_task_data(task, data_dir)
    return task, sample_fewshot(pool, test, task, 4, seed=13), [e.inputs["text"] for e in test[:10]]


def cli_predict(model, texts, tmp_path) -> list[str]:
    """Labels as `fewforge predict --model DIR --input FILE` prints them."""
    from fewforge.cli.app import app

    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    result = CliRunner().invoke(app, ["predict", "--model", str(model), "--input", str(tmp_path / "texts.txt")])
    assert result.exit_code == 0, result.output
    return [json.loads(line)["label"] for line in result.stdout.splitlines()]


def test_setfit_folder_predicts_label_names_in_setfit(sst2, tmp_path) -> None:
    from setfit import SetFitModel

    from fewforge.learners.setfit_learner import SetFitConfig, SetFitLearner

    task, split, texts = sst2
    learner = SetFitLearner(task, SetFitConfig(num_iterations=1, threads=2), seed=13)
    report = learner.fit(split.train, split.dev)
    learner.save(tmp_path / "m")
    write_card(tmp_path / "m", learner, report, data={"real": len(split.train)})
    predicted = cli_predict(tmp_path / "m", texts, tmp_path)
    assert list(SetFitModel.from_pretrained(str(tmp_path / "m")).predict(texts)) == predicted
    assert set(predicted) <= {"negative", "positive"}
    assert "SetFitModel.from_pretrained" in (tmp_path / "m" / "README.md").read_text()


def test_linear_probe_folder_is_also_a_setfit_model(sst2, tmp_path) -> None:
    from setfit import SetFitModel

    from fewforge.learners.linear_probe import LinearProbe

    task, split, texts = sst2
    learner = LinearProbe(task, seed=13)
    learner.fit(split.train, split.dev)
    learner.save(tmp_path / "m")
    model = SetFitModel.from_pretrained(str(tmp_path / "m"))
    assert list(model.predict(texts)) == learner.predict(texts)
    assert np.allclose(model.predict_proba(texts).numpy(), learner.predict_proba(texts), atol=1e-5)


def test_encoder_folder_loads_in_transformers_with_its_trained_head(sst2, tmp_path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from fewforge.learners.encoder import EncoderClassifier, EncoderConfig

    task, split, texts = sst2
    learner = EncoderClassifier(task, EncoderConfig(min_steps=2, max_steps=2, max_length=32, threads=2), seed=13)
    report = learner.fit(split.train, split.dev)
    learner.save(tmp_path / "m")
    write_card(tmp_path / "m", learner, report, data={"real": len(split.train)})
    predicted = cli_predict(tmp_path / "m", texts, tmp_path)

    classifier = pipeline("text-classification", model=str(tmp_path / "m"), trust_remote_code=True)
    assert [r["label"] for r in classifier(texts)] == predicted  # label names, the trained head
    model = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "m"), trust_remote_code=True)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    tokens = AutoTokenizer.from_pretrained(str(tmp_path / "m"))(texts[:1], return_tensors="pt")
    with torch.no_grad():
        proba = model(**tokens).logits.softmax(-1).numpy()
    assert np.allclose(proba, learner.predict_proba(texts[:1]), atol=1e-5)
    assert np.allclose(load_model(tmp_path / "m").predict_proba(texts), learner.predict_proba(texts), atol=1e-6)
    # never silently headless: without trust_remote_code transformers refuses the folder
    with pytest.raises(ValueError, match="trust_remote_code"):
        AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "m"))


def test_soft_prompt_loads_in_peft_and_scores_like_fewforge(tiny_t5, tmp_path) -> None:
    from peft import PeftModel
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    from fewforge.learners.prompt_tuning import PromptTuning, PromptTuningConfig

    task = load_task("sst2")
    base = tiny_t5(tmp_path / "t5")
    rows = [Example({"text": t}, label, id=str(i)) for i, (t, label) in
            enumerate([("a fun film", "positive"), ("a dull movie", "negative"), ("fun", "positive"), ("dull", "negative")])]
    learner = PromptTuning(task, PromptTuningConfig(model=str(base), prompt_tokens=4, min_steps=4, max_steps=4,
                                                    eval_every=2, batch_size=2, threads=2), seed=3)
    learner.fit(rows, rows)
    learner.save(tmp_path / "m")
    peft = PeftModel.from_pretrained(T5ForConditionalGeneration.from_pretrained(str(base)), str(tmp_path / "m" / "prompt"))
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    for row in rows:
        tokens = tokenizer(learner._fill(row), return_tensors="pt")
        start = torch.zeros((1, 1), dtype=torch.long)
        with torch.no_grad():
            logits = peft(**tokens, decoder_input_ids=start).logits[0, 0, learner.verbalizer]
        assert np.allclose(logits.softmax(-1).numpy(), learner.predict_proba([row])[0], atol=1e-5)


def test_lora_adapter_loads_in_peft(tiny_t5, tmp_path, data_dir) -> None:
    from peft import PeftModel
    from transformers import T5ForConditionalGeneration

    from fewforge.learners.text_to_text import Seq2SeqConfig, Seq2SeqLearner

    task = load_task("squad-qg")
    pool, test = load_task_data(task, data_dir)
    split = sample_fewshot(pool, test, task, 4, seed=13)
    base = str(tiny_t5(tmp_path / "t5"))
    learner = Seq2SeqLearner(task, Seq2SeqConfig(model=base, lora=True, max_source_length=32, min_steps=2,
                                                 max_steps=2, dev_metric="loss", threads=2), seed=1)
    learner.fit(split.train, split.dev)
    learner.save(tmp_path / "m")
    peft = PeftModel.from_pretrained(T5ForConditionalGeneration.from_pretrained(base), str(tmp_path / "m" / "adapter"))
    ids, start = torch.tensor([[3, 4, 5, 1]]), torch.zeros((1, 1), dtype=torch.long)
    with torch.no_grad():
        ours = learner.model(input_ids=ids, decoder_input_ids=start).logits
        theirs = peft(input_ids=ids, decoder_input_ids=start).logits
        untuned = T5ForConditionalGeneration.from_pretrained(base)(input_ids=ids, decoder_input_ids=start).logits
    assert torch.allclose(ours, theirs, atol=1e-6) and not torch.allclose(ours, untuned, atol=1e-6)  # trained LoRA
