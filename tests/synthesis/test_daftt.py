"""DAFTT (daftt-annotate, daftt-generate): the teacher's format and fine-tuning on the packaged SmolLM2
(through transformers), annotation and generation end to end on real SST-2 rows, and scripted backends
for the choice logic and QA annotation."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import pytest

from fewforge.data.schema import Answer, Example
from fewforge.errors import ConfigError
from fewforge.generators.base import (
    AdapterRequest,
    Candidate,
    Completion,
    Generator,
    Positions,
    ProgressCallback,
    SamplingParams,
    Score,
    TrainableLM,
    positions,
)
from fewforge.synthesis import get_method
from fewforge.synthesis.base import SynthesisContext
from fewforge.synthesis.daftt.teacher import Formatter, TeacherOptions, TeacherRow, teacher_rows
from fewforge.synthesis.daftt.training import build_teacher, export_full, fit, mean_loss
from fewforge.tasks import load_task


@pytest.fixture(scope="module")
def hf_smollm2():
    from fewforge.generators import get_generator

    generator = get_generator("hf:smollm2", batch_size=8)
    yield generator
    generator.close()


@pytest.fixture(scope="module")
def untuned_dir(tmp_path_factory) -> Path:
    """One work folder for the untuned teacher (one per model), shared by the scripted tests."""
    return tmp_path_factory.mktemp("untuned")


@pytest.fixture(scope="module")
def sst2(data_dir: Path) -> dict[str, list[Example]]:
    """A 40-row SST-2 pool; train and dev are 2 + 2 of its rows per label (the few-shot split)."""
    lines = [json.loads(line) for line in (data_dir / "sst2" / "train.jsonl").read_text().splitlines()[:40]]
    pool = [Example({"text": r["text"]}, r["label"], id=f"sst2-{i}") for i, r in enumerate(lines)]
    by = {label: [e for e in pool if e.label == label] for label in ("negative", "positive")}
    return {
        "pool": pool,
        "train": by["negative"][:2] + by["positive"][:2],
        "dev": by["negative"][2:4] + by["positive"][2:4],
    }


def _state_digest(model: Any) -> str:
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode() + tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# -- options and format ------------------------------------------------------------------------------

def test_options_have_the_papers_temperatures_and_reject_typos():
    assert get_method("daftt-annotate").config.temperature == 0.1
    generate = get_method("daftt-generate", {"lora": False, "teacher_data": "share"}).config
    assert generate.temperature == 0.8 and generate.top_p == 1.0 and not generate.lora and generate.lr() == 5e-5
    assert get_method("daftt-generate").config.lr() == 5e-4
    assert not get_method("daftt-annotate", {"epochs": 0}).config.tunes
    with pytest.raises(ConfigError, match="lora_rank"):
        get_method("daftt-annotate", {"lora_rank": 4})
    for name in ("daftt-annotate", "daftt-generate"):
        cls = type(get_method(name))
        assert cls.needs_adapters and cls.reads_fewshot and set(cls.kinds) == {"single", "pair", "extractive-qa", "text-to-text"}


def test_prompts_are_sni_text_and_rows_learn_only_the_output(hf_smollm2, sst2):
    lm = hf_smollm2.trainable()
    task, row = load_task("sst2"), sst2["train"][0]
    raw = Formatter(task, "annotate", lm, 384, chat=False)
    prompt = raw.request(row)
    assert prompt.startswith("Definition: Classify the movie review.") and "terrible (negative)" in prompt
    assert prompt.endswith(f"\n\nInput: {row.inputs['text'].strip()}\nOutput:") and "<|im_start|>" not in prompt
    (trow,) = teacher_rows(task, "annotate", [row], lm, TeacherOptions(chat_template=False), [])
    assert list(trow.ids[: trow.target_start]) == lm.encode(prompt, False)  # what the backend sends with an adapter
    assert lm.tokenizer.decode(trow.ids[trow.target_start : -1]) == " terrible"  # the verbalizer, then EOS
    assert trow.ids[-1] == lm.tokenizer.eos_token_id

    # the default: the same SNI text as the user turn of SmolLM2's chat template, the output opens the reply
    chat = Formatter(task, "annotate", lm, 384)
    assert chat.chat and chat.sep == "" and chat.request(row) == lm.render(prompt)
    assert chat.request(row).endswith("Output:<|im_end|>\n<|im_start|>assistant\n")
    (crow,) = teacher_rows(task, "annotate", [row], lm, TeacherOptions(), [])
    assert list(crow.ids[: crow.target_start]) == lm.encode(lm.render(prompt), False)
    assert lm.tokenizer.decode(crow.ids[crow.target_start :]) == "terrible<|im_end|>"
    assert Formatter(task, "generate", lm, 384, chat=False).request(None, "positive").endswith("\n\nInput: positive\nOutput:")

    rte = load_task("rte")
    pair = Example({"text_a": "A man walks a dog.", "text_b": "A person is outside."}, "entailment")
    generate = Formatter(rte, "generate", lm, 384).request(pair, "entailment")
    assert "Input: Label: entailment\nSentence 1: A man walks a dog.\nOutput:" in generate
    (grow,) = teacher_rows(rte, "generate", [pair], lm, TeacherOptions(), [])
    assert lm.tokenizer.decode(grow.ids[grow.target_start : -1]) == "A person is outside."

    qg = load_task("squad-qg")
    qa_row = Example({"context": "Paris is in France. " * 200, "answer": "France"}, "Where is Paris?")
    (qrow,) = teacher_rows(qg, "generate", [qa_row], lm, TeacherOptions(max_prompt_tokens=96), [])
    assert qrow.target_start <= 96  # the long context lost its end, the answer line stayed
    head = lm.tokenizer.decode(qrow.ids[: qrow.target_start])
    assert "\nAnswer: France\nOutput:<|im_end|>" in head
    assert lm.tokenizer.decode(qrow.ids[qrow.target_start : -1]) == "Where is Paris?"

    squad = load_task("squad")
    answered = Example({"context": "Paris is in France.", "question": "Where is Paris?"}, "France", answers=(Answer("France", 12),))
    assert Formatter(squad, "generate", lm, 384, chat=False).request(answered).endswith("Context: Paris is in France.\nAnswer: France\nOutput:")
    assert Formatter(squad, "annotate", lm, 384, chat=False).request(answered).endswith("Question: Where is Paris?\nOutput:")

    demo = TeacherOptions(demonstrations=1)
    rows = teacher_rows(task, "annotate", sst2["train"][:2], lm, demo, sst2["train"][:2])
    first = lm.tokenizer.decode(rows[0].ids[: rows[0].target_start])
    assert "Example 1 -" in first and sst2["train"][1].inputs["text"].strip() in first  # the spare, not itself
    assert "Now complete the following example -" in first


# -- teacher training --------------------------------------------------------------------------------

def test_the_lora_teacher_changes_only_adapter_weights_and_lowers_its_loss(hf_smollm2, sst2):
    lm = hf_smollm2.trainable()
    task = load_task("sst2")
    options = TeacherOptions(epochs=1, batch_size=4, learning_rate=3e-3)
    rows = teacher_rows(task, "annotate", sst2["train"] + sst2["dev"], lm, options, [])
    before = _state_digest(lm.model)
    tuned, history, facts = fit(lm, rows, options, seed=1)
    assert len(history) == facts["steps"] == 2 and all(h["loss"] > 0 and h["seconds"] >= 0 for h in history)
    assert facts["loss_after"] < facts["loss_before"] - 0.5
    assert _state_digest(lm.model) == before  # the backend's model is untouched
    base = dict(lm.model.named_parameters())
    changed = 0
    for name, p in tuned.get_base_model().named_parameters():
        if "lora_" in name:
            changed += p.requires_grad
            continue
        assert not p.requires_grad
        original = base[name.replace(".base_layer", "")]
        assert p.data_ptr() != original.data_ptr() and p.equal(original)  # a copy, bit-identical
    trained = [p for n, p in tuned.named_parameters() if p.requires_grad]
    assert changed > 0 and sum(p.numel() for p in trained) == facts["trainable_params"]
    assert mean_loss(tuned.get_base_model(), rows, lm.tokenizer.pad_token_id) == pytest.approx(facts["loss_after"], abs=1e-3)


def test_an_untuned_teacher_trains_nothing_and_is_the_base_model(hf_smollm2, sst2, untuned_dir):
    from safetensors.torch import load_file

    lm = hf_smollm2.trainable()
    task = load_task("sst2")
    options = TeacherOptions(tune=False)
    rows = teacher_rows(task, "annotate", sst2["train"], lm, options, [])
    teacher = build_teacher(hf_smollm2, lm, "annotate", rows, options, 13, untuned_dir, "test")
    assert teacher.summary["steps"] == 0 and not teacher.summary["tuned"]
    assert json.loads((untuned_dir / f"{teacher.path.name}.json").read_text())["history"] == []
    weights = load_file(str(teacher.path / "adapter_model.safetensors"))
    assert weights and all(not t.any() for name, t in weights.items() if "lora_B" in name)
    # one untuned teacher per model, whatever the mode, rows or seed
    other = build_teacher(hf_smollm2, lm, "generate", rows[:1], TeacherOptions(epochs=0), 7, untuned_dir, "test")
    assert other.path == teacher.path and other.summary["reused"]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_full_fine_tuning_is_saved_as_an_exact_lora_adapter(tmp_path, dtype):
    """lora: false trains every linear layer of the blocks (in float32, also when the backend holds bf16
    weights, as on a GPU); the exported full-rank LoRA reproduces the trained model on the base."""
    import torch
    from peft import PeftModel
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    base = LlamaForCausalLM(config).to(getattr(torch, dtype)).eval()
    lm = TrainableLM(base, SimpleNamespace(pad_token_id=0), lambda s: s, lambda s, start: [])
    rng = random.Random(0)
    rows = [TeacherRow(tuple(rng.randrange(1, 64) for _ in range(10)), 7) for _ in range(6)]
    options = TeacherOptions(lora=False, epochs=3, batch_size=2, learning_rate=1e-2)
    before = _state_digest(base)
    tuned, history, facts = fit(lm, rows, options, seed=0)
    assert facts["steps"] == 9 and facts["loss_after"] < facts["loss_before"]
    assert _state_digest(base) == before
    assert tuned.model.layers[0].self_attn.q_proj.weight.dtype == torch.float32
    assert tuned.lm_head.weight.equal(base.lm_head.weight.float())  # the tied embeddings stay frozen
    assert not tuned.model.layers[0].self_attn.q_proj.weight.equal(base.model.layers[0].self_attn.q_proj.weight)
    ids = torch.tensor([list(range(1, 12))])
    with torch.no_grad():
        want = tuned(input_ids=ids).logits
    export_full(tuned, base, tmp_path / "full")
    served = PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path / "full")).eval()
    with torch.no_grad():
        got = served(input_ids=ids).logits.float()
    if dtype == "float32":
        assert torch.allclose(got, want, atol=1e-4)
    else:  # bf16 activations on the served side: close, and far closer than the untuned base
        with torch.no_grad():
            untuned = base(input_ids=ids).logits.float()
        assert (got - want).abs().max() < 0.1 * (untuned - want).abs().max()


# -- end to end on SmolLM2 ---------------------------------------------------------------------------

class Interrupted(Exception):
    pass


def _blanked(pool: Sequence[Example], shuffle: bool) -> list[Example]:
    labels = [e.label for e in pool][::-1] if shuffle else [""] * len(pool)
    return [Example(dict(e.inputs), label, id=e.id) for e, label in zip(pool, labels)]


@pytest.mark.slow  # over a minute on 2 cores: CI's -m slow runs it
def test_annotate_labels_only_unseen_pool_rows_without_reading_labels_and_resumes(hf_smollm2, sst2, tmp_path):
    task = load_task("sst2")
    workdir = tmp_path / "work"
    method = get_method("daftt-annotate", {"epochs": 1, "batch_size": 8, "per_label": 2, "max_annotated": 8, "batch": 8})
    twin = Example(dict(sst2["train"][0].inputs), "positive", id="twin")  # a few-shot text under another id
    pool = [*sst2["pool"], twin]
    fewshot_texts = {e.inputs["text"] for e in sst2["train"] + sst2["dev"]}

    def interrupt(done: int, total: int) -> None:
        if any(workdir.glob("teacher-*.json")):  # the teacher is saved: stop during annotation
            raise Interrupted

    def ctx(rows: Sequence[Example], progress=None) -> SynthesisContext:
        return SynthesisContext(task, hf_smollm2, seed=13, train=sst2["train"], dev=sst2["dev"], pool=rows,
                                workdir=workdir, progress=progress)

    with pytest.raises(Interrupted):
        method.synthesize(ctx(pool, interrupt))
    (teacher_dir,) = [p for p in workdir.iterdir() if p.is_dir()]

    blind = method.synthesize(ctx(_blanked(pool, shuffle=False)))  # labels blanked
    assert blind.card["teacher"]["reused"] and blind.card["teacher"]["steps"] == 1
    assert blind.card["pool"]["excluded_labelled"] == 9 and blind.card["pool"]["annotated"] == 8
    assert not blind.card["reads_pool_labels"]
    assert blind.examples and len(blind.examples) <= 4
    for e in blind.examples:
        lineage = e.lineage
        probs = lineage["label_probs"]
        assert e.label in task.labels and e.inputs["text"] not in fewshot_texts
        assert 0 < lineage["confidence"] <= 1 and lineage["confidence"] == max(probs.values()) == probs[e.label]
        assert math.isclose(sum(probs.values()), 1.0, rel_tol=1e-9)
        assert lineage["mode"] == "annotate" and lineage["parent_id"].startswith("sst2-")
        assert lineage["teacher"]["kind"] == "lora" and lineage["teacher"]["hash"] == blind.card["teacher"]["adapter"]["hash"]
    assert Path(blind.card["teacher"]["path"]) == teacher_dir

    shuffled = method.synthesize(ctx(_blanked(pool, shuffle=True)))
    real = method.synthesize(ctx(pool))
    for other in (shuffled, real):
        assert other.card["teacher"]["reused"]
        assert [(e.id, e.inputs, e.label) for e in other.examples] == [(e.id, e.inputs, e.label) for e in blind.examples]
        assert [e.lineage["confidence"] for e in other.examples] == pytest.approx([e.lineage["confidence"] for e in blind.examples])
    assert len([p for p in workdir.iterdir() if p.is_dir()]) == 1  # no second teacher


@pytest.mark.slow  # 40 s or more on 2 cores: CI's -m slow runs it
def test_generate_writes_rows_with_lineage_and_a_rerun_reuses_teacher_and_rows(hf_smollm2, sst2, tmp_path):
    from fewforge.generators.cache import CachedGenerator

    task = load_task("sst2")
    method = get_method("daftt-generate", {"epochs": 1, "batch_size": 8, "per_label": 2, "max_rounds": 1,
                                           "max_new_tokens": 24, "postprocess": {"near_dup": "ngram"}})
    generator = CachedGenerator(hf_smollm2, tmp_path / "cache.sqlite")
    ctx = SynthesisContext(task, generator, seed=13, train=sst2["train"], dev=sst2["dev"], pool=sst2["pool"],
                           workdir=tmp_path / "work")
    first = method.synthesize(ctx)
    card = first.card
    assert card["mode"] == "generate" and card["teacher"]["steps"] == 1 and not card["teacher"]["reused"]
    assert card["generated"] == 6 and card["seconds_per_generated_row"] is not None
    assert first.examples
    for e in first.examples:
        lineage = e.lineage
        assert e.label in task.labels and e.id.startswith("daftt-generate-")
        assert lineage["method"] == "daftt-generate" and lineage["mode"] == "generate"
        assert lineage["temperature"] == 0.8 == lineage["sampling"]["temperature"]
        assert lineage["teacher"]["hash"] == card["teacher"]["adapter"]["hash"]
        assert f"Definition: Write a movie review whose label is the input (negative, positive).\n\nInput: {e.label}\nOutput:" in lineage["prompt"]
        assert lineage["prompt"].endswith("<|im_start|>assistant\n")
    misses = generator.misses
    again = method.synthesize(ctx)
    assert again.card["teacher"]["reused"] and generator.misses == misses
    assert [(e.inputs, e.label, e.lineage["teacher"]) for e in again.examples] == [
        (e.inputs, e.label, e.lineage["teacher"]) for e in first.examples
    ]
    generator.close()


# -- scripted backends: the choice logic and QA annotation ---------------------------------------------

class ScriptedTeacher(Generator):
    """Trains like SmolLM2 (its `trainable()`), answers from scripts, and records the adapters it got."""

    backend = "scripted"
    supports_adapters = True
    supports_scoring = True

    def __init__(self, real: Generator, answer=None, logprobs=None) -> None:
        self.real, self.answer, self.logprobs = real, answer, logprobs
        self.adapters: list[AdapterRequest | None] = []

    @property
    def model_id(self) -> str:
        return self.real.model_id

    def trainable(self) -> TrainableLM:
        return self.real.trainable()

    def generate(self, prompts: Sequence[str], params: SamplingParams, *, start_index: Positions = 0,
                 progress: ProgressCallback | None = None, adapter: AdapterRequest | None = None) -> list[Completion]:
        self.adapters.append(adapter)
        self.params = params
        return [Completion(p, (Candidate(self.answer(p, i), "stop", 3),)) for p, i in zip(prompts, positions(start_index, len(prompts)))]

    def score(self, prompts: Sequence[str], continuations: Sequence[str], *, adapter: AdapterRequest | None = None,
              progress: ProgressCallback | None = None) -> list[Score]:
        self.adapters.append(adapter)
        return [Score(self.logprobs(p, c), 1) for p, c in zip(prompts, continuations)]


def test_the_label_is_the_argmax_of_the_verbalizer_scores_with_softmax_confidence(hf_smollm2, untuned_dir):
    task = load_task("sst2")
    pool = [Example({"text": f"review number {i} of the pool ."}, "negative", id=f"p{i}") for i in range(12)]
    great = {0: -0.1, 1: -3.0, 2: -0.7}  # log p(" great") by i % 3; log p(" terrible") is -1: sure positive,
    # sure negative (0.88), unsure positive (0.57)

    def logprobs(prompt: str, word: str) -> float:
        i = int(prompt.split("review number ")[1].split()[0])
        return great[i % 3] if word.strip() == "great" else -1.0

    def annotate(options: dict) -> Any:
        backend = ScriptedTeacher(hf_smollm2, logprobs=logprobs)
        method = get_method("daftt-annotate", {"tune": False, **options})
        out = method.synthesize(SynthesisContext(task, backend, seed=13, pool=pool, workdir=untuned_dir))
        assert backend.adapters and all(a is not None and a.kind == "lora" for a in backend.adapters)
        for e in out.examples:
            g = great[int(e.lineage["parent_id"][1:]) % 3]
            p_great = math.exp(g) / (math.exp(g) + math.exp(-1.0))
            assert e.label == ("positive" if g > -1.0 else "negative")
            assert e.lineage["confidence"] == pytest.approx(max(p_great, 1 - p_great))
            assert e.lineage["label_probs"]["positive"] == pytest.approx(p_great)
        return out

    # every row scanned: the unsure ones fall below min_confidence, each label is one short
    strict = annotate({"per_label": 5, "min_confidence": 0.6, "batch": 5})
    assert strict.card["pool"]["annotated"] == 12 and strict.card["dropped"] == {"low_confidence": 4}
    assert strict.card["per_label"] == {"negative": 4, "positive": 4}
    assert strict.card["shortfall"] == {"negative": 1, "positive": 1}
    assert all(e.lineage["confidence"] > 0.7 for e in strict.examples)
    # one batch of all 12 rows: 2 kept per label, the rest is surplus
    full = annotate({"per_label": 2, "batch": 12})
    assert full.card["per_label"] == {"negative": 2, "positive": 2} and not full.card["shortfall"]
    assert full.card["surplus"] == {"negative": 2, "positive": 6}
    assert full.card["confidence"]["per_label"]["negative"]["mean"] == pytest.approx(0.8808, abs=1e-4)
    saved = full.save(untuned_dir / "set", task)  # jsonl, parquet, datasets, card: the lineage round-trips
    assert [json.loads(line)["lineage"]["confidence"] for line in saved.read_text().splitlines()] == [
        e.lineage["confidence"] for e in full.examples
    ]


def test_qa_annotation_keeps_answers_that_align_to_the_context(hf_smollm2, untuned_dir):
    task = load_task("squad")
    contexts = ["Marie Curie was born in Warsaw in 1867.", "The Nile flows north into the Mediterranean Sea."]
    pool = [
        Example({"context": contexts[i % 2], "question": f"Question {i}?"}, "hidden", id=f"q{i}",
                answers=(Answer("hidden", 0),))
        for i in range(6)
    ]

    def answer(prompt: str, position: int) -> str:
        if "Warsaw" in prompt:
            return " warsaw\nmore text"  # aligns case-insensitively, first line only
        return "the Amazon"  # not in the context

    backend = ScriptedTeacher(hf_smollm2, answer=answer)
    method = get_method("daftt-annotate", {"tune": False, "per_label": 4})  # more than there are: all rows seen
    out = method.synthesize(SynthesisContext(task, backend, seed=13, pool=pool, workdir=untuned_dir))
    assert backend.params.temperature == 0.1 and backend.params.stop == ("\n",)
    assert out.card["pool"]["annotated"] == 6 and out.card["dropped"] == {"answer_not_in_context": 3}
    assert len(out.examples) == 3 and out.card["shortfall"] == {"": 1}
    for e in out.examples:
        assert e.label == "Warsaw" and e.answers == (Answer("Warsaw", contexts[0].index("Warsaw")),)
        assert e.lineage["temperature"] == 0.1 and e.lineage["raw"] == " warsaw\nmore text"
        assert e.inputs["question"].startswith("Question ") and e.lineage["parent_id"].startswith("q")
    assert all(d["reason"] == "answer_not_in_context" for d in out.dropped)
    out.save(untuned_dir / "qa-set", task)


def test_a_backend_without_adapters_is_refused_before_any_work(data_dir):
    from fewforge.config import RunConfig
    from fewforge.grid import plan_grid

    for method in ("daftt-annotate", "daftt-generate"):
        cfg = RunConfig.model_validate(
            {"tasks": ["sst2"], "data": str(data_dir), "shots": [4], "seeds": [13], "methods": [method],
             "generator": "smollm2", "conditions": ["real", "synthetic"], "learners": ["linear-probe"]}
        )
        with pytest.raises(ConfigError, match="LoRA teacher.*cannot load adapters") as err:
            plan_grid(cfg)
        assert "hf:smollm2" in err.value.hint
