"""FewGen / DawGen as synthesis methods on the packaged SmolLM2 (through transformers) and real SST-2 / RTE rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fewforge.data.schema import Example
from fewforge.errors import ConfigError
from fewforge.generators.base import AdapterRequest, SamplingParams
from fewforge.synthesis import get_method
from fewforge.synthesis.base import SynthesisContext
from fewforge.tasks import load_task as get_task


@pytest.fixture(scope="module")
def hf_smollm2():
    from fewforge.generators import get_generator

    generator = get_generator("hf:smollm2", batch_size=8)
    yield generator
    generator.close()


def _rows(data_dir: Path, task: str, per_label: int) -> list[Example]:
    lines = [json.loads(line) for line in (data_dir / task / "train.jsonl").read_text().splitlines()]
    out: list[Example] = []
    for name in get_task(task).label_names:
        for i, r in enumerate([r for r in lines if r["label"] == name][:per_label]):
            inputs = {k: v for k, v in r.items() if k.startswith("text")}
            out.append(Example(inputs, name, id=f"{task}-{name}-{i}"))
    return out


def test_options_keep_the_methods_own_loss_and_reject_typos():
    assert get_method("fewgen", {"tuning": {"epochs": 2}}).config.tuning.loss == "weighted"
    assert get_method("dawgen", {"tuning": {"epochs": 2}}).config.tuning.loss == "dawgen"
    assert get_method("dawgen").config.tuning.epochs == 20  # the paper's
    for name in ("fewgen", "dawgen"):  # the audit guard scored by the worst label, unless the options name a guard
        assert (get_method(name).config.tuning.guard, get_method(name).config.tuning.guard_audit) == ("audit", "worst_label")
        assert get_method(name, {"tuning": {"guard": "audit"}}).config.tuning.guard_audit == "worst_label"
        assert get_method(name, {"tuning": {"guard": "accuracy"}}).config.tuning.guard == "accuracy"
        # a grid that pinned the overall score keeps the fingerprint it had when overall was the default
        pinned = get_method(name, {"tuning": {"guard": "audit", "guard_audit": "overall"}}).config.tuning
        assert "guard_audit" not in pinned.model_dump(mode="json")
    with pytest.raises(ConfigError, match="tuning.epoch"):
        get_method("dawgen", {"tuning": {"epoch": 2}})


def test_the_soft_prompt_replaces_the_instruction_and_a_request_sends_the_rest(hf_smollm2, data_dir):
    method, task = get_method("fewgen"), get_task("rte")
    lm = hf_smollm2.trainable()
    heads = {label: method._head(task, label, lm) for label in task.label_names}
    premise = _rows(data_dir, "rte", 1)[0]
    for label, head in heads.items():
        full = lm.render(task.generation_prompt(label, premise))
        context = method._context(task, label, premise, lm, heads)
        assert head + context == full and context.startswith(" " + premise.inputs["text_a"][:20])
        assert "<|im_start|>user" in head  # the instruction, chat template included
    row = method._row(task, premise, lm, heads)
    context_ids = lm.encode(method._context(task, premise.label, premise, lm, heads), False)
    assert row.ids[: row.target_start] == tuple(context_ids)
    assert row.ids[-1] == lm.model.generation_config.eos_token_id or row.ids[-1] in lm.model.generation_config.eos_token_id
    written = lm.tokenizer.decode(row.ids[row.target_start : -1])
    assert written.strip() == premise.inputs["text_b"].strip()  # the generator learns to write sentence 2


def test_an_untuned_prompt_writes_what_the_natural_prompt_writes(hf_smollm2, tmp_path):
    """Greedy decoding from the natural-prompt prefix equals greedy ZeroGen decoding of the full prompt."""
    from fewforge.generators.soft_prompts import LabelPrompts

    method, task = get_method("fewgen"), get_task("sst2")
    lm = hf_smollm2.trainable()
    heads = {label: method._head(task, label, lm) for label in task.label_names}
    path = LabelPrompts.from_natural_prompts(lm.model, [lm.encode(heads[label], True) for label in task.label_names]).save(
        tmp_path / "untuned.safetensors"
    )
    greedy = SamplingParams(temperature=0.0, max_new_tokens=12)
    for k, label in enumerate(task.label_names):
        natural = hf_smollm2.generate([task.generation_prompt(label)], greedy)[0].candidates[0].text
        context = method._context(task, label, None, lm, heads)
        tuned = hf_smollm2.generate([context], greedy, adapter=AdapterRequest("untuned", str(path), label=k))
        assert tuned[0].candidates[0].text == natural


@pytest.mark.slow  # 40 s or more on 2 cores: CI's -m slow runs it
def test_dawgen_tunes_then_generates_with_lineage_and_a_rerun_reuses_both(hf_smollm2, data_dir, tmp_path):
    from fewforge.generators.cache import CachedGenerator

    task = get_task("sst2")
    method = get_method(
        "dawgen", {"per_label": 3, "max_new_tokens": 24, "tuning": {"epochs": 1, "batch_size": 4, "guard": "accuracy"}, "seed": 1}
    )
    generator = CachedGenerator(hf_smollm2, tmp_path / "cache.sqlite")
    rows = _rows(data_dir, "sst2", 8)
    train, dev = rows[:4] + rows[8:12], rows[4:8] + rows[12:]  # 4 per label each
    ctx = SynthesisContext(task, generator, seed=13, train=train, dev=dev, workdir=tmp_path / "work")
    first = method.synthesize(ctx)
    assert first.label_counts() == {"negative": 3, "positive": 3}
    tuning = first.card["tuning"]
    assert tuning["loss"] == "dawgen" and tuning["steps"] == 2 and not tuning["reused"]
    assert (tmp_path / "work" / tuning["file"]).is_file()
    guard = tuning["guard"]  # the untuned start and the one epoch, measured on the 8 dev rows
    assert [e["epoch"] for e in guard["epochs"]] == [0, 1] and guard["kept_epoch"] in (0, 1)
    assert all(0 <= e["dev_accuracy"] <= 1 and e["dev_loss"] > 0 for e in guard["epochs"])
    assert guard["epochs"][guard["kept_epoch"]]["dev_accuracy"] >= guard["epochs"][0]["dev_accuracy"]
    assert "8 dev rows" in guard["why"] and tuning["diagnostics"][0]["hinge"] > 0
    for e in first.examples:
        lineage = e.lineage
        assert lineage["method"] == "dawgen" and e.id.startswith("dawgen-")
        assert lineage["adapter"]["label"] == task.label_names.index(e.label)
        assert lineage["adapter"]["hash"].split(":")[1] == first.card["adapter"]["sha256"]
        assert lineage["prompt"] == "\n<|im_start|>assistant\n"  # the context after the soft prompt
    misses = generator.misses

    again = method.synthesize(ctx)
    assert again.card["tuning"]["reused"] and generator.misses == misses  # tuned prompts and completions reused
    assert [e.inputs for e in again.examples] == [e.inputs for e in first.examples]
    generator.close()


def test_a_backend_without_adapters_is_refused_before_any_work(data_dir, tmp_path):
    from fewforge.config import RunConfig
    from fewforge.grid import plan_grid

    cfg = RunConfig.model_validate(
        {"tasks": ["sst2"], "data": str(data_dir), "shots": [4], "seeds": [13], "methods": ["dawgen"],
         "generator": "smollm2", "conditions": ["real", "synthetic"], "learners": ["linear-probe"]}
    )
    with pytest.raises(ConfigError, match="cannot load adapters") as err:
        plan_grid(cfg)
    assert "hf:smollm2" in err.value.hint and "\n" not in str(err.value)


def test_fewgen_decoding_uses_fewgens_repetition_penalties_and_start_words(hf_smollm2, data_dir, tmp_path):
    from fewforge.synthesis.fewgen import decoding

    rte, sst2 = get_task("rte"), get_task("sst2")
    method = get_method("fewgen", {"decoding": "fewgen", "label_repetition_penalty": {"positive": 1.3}})
    base = method.sampling_params(sst2)
    assert method._repetition_penalty(sst2, "negative", base) == 1.1  # FewGen's SST-2 value
    assert method._repetition_penalty(sst2, "positive", base) == 1.3  # an explicit setting wins
    assert [decoding.repetition_penalty(rte, label) for label in rte.label_names] == [1.0, 1.5]
    assert method._start_words(rte) == () and method._start_words(sst2) == decoding.START_WORDS
    assert get_method("fewgen", {"decoding": "fewgen", "start_words": []})._start_words(sst2) == ()
    assert get_method("fewgen")._start_words(sst2) == ()  # nucleus sampling: no start words

    options = {"decoding": "fewgen", "per_label": 2, "max_new_tokens": 16, "tuning": {"loss": "lm", "epochs": 1, "guard": "accuracy"}}
    rows = _rows(data_dir, "sst2", 2)
    data = get_method("fewgen", options).synthesize(SynthesisContext(sst2, hf_smollm2, seed=13, train=rows, workdir=tmp_path))
    assert data.examples
    for e in data.examples:
        word = e.lineage["start_word"]
        assert word in decoding.START_WORDS and e.inputs["text"].startswith(word)
        assert e.lineage["sampling"]["repetition_penalty"] == 1.1 and e.lineage["sampling"]["top_k"] == 10



def test_guard_audit_samples_each_epochs_prompts_and_the_card_records_their_audited_fidelity(hf_smollm2, data_dir, tmp_path):
    """guard: audit samples guard_rows rows per label from the untuned prompts (epoch 0) and each epoch's,
    through the method's own loop under a seed of its own, audits them with the fewshot auditor (trained
    on train + dev), keeps the epoch whose weakest label's rows carry their label most often (the default
    score, guard_audit: worst_label; ties: the earliest), and the card records every epoch's audited fidelity."""
    from fewforge.synthesis.fewgen.audit import probe_method

    task = get_task("sst2")
    options = {"per_label": 1, "max_new_tokens": 16, "seed": 1,
               "tuning": {"loss": "lm", "epochs": 1, "batch_size": 8, "guard": "audit", "guard_rows": 2}}
    method = get_method("fewgen", options)
    rows = _rows(data_dir, "sst2", 8)
    train, dev = rows[:4] + rows[8:12], rows[4:8] + rows[12:]
    ctx = SynthesisContext(task, hf_smollm2, seed=13, train=train, dev=dev, workdir=tmp_path / "work")
    dataset = method.synthesize(ctx)
    guard = dataset.card["tuning"]["guard"]
    epochs = guard["epochs"]
    assert guard["criterion"] == "audit" and [e["epoch"] for e in epochs] == [0, 1]
    for e in epochs:  # ceil(2 * 1.1) = 3 requests per label, one round, what the filters left
        assert 0 <= e["audit_fidelity"] <= 1 and 0 < e["audit_rows"] <= 6 and "dev_accuracy" in e
        assert set(e["audit_per_label"]) <= set(task.label_names)
        assert e["audit_worst_label"] == min(e["audit_per_label"].get(label, 0.0) for label in task.label_names)
    worst = [e["audit_worst_label"] for e in epochs]
    assert guard["kept_epoch"] == worst.index(max(worst))  # the best, ties to the earliest
    assert guard["untuned_audit_fidelity"] == epochs[0]["audit_fidelity"] and "worst label" in guard["why"]
    folder = tmp_path / "work" / "tuned-prompts" / "guard"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-0.safetensors", "epoch-1.safetensors"]
    # the set is sampled from the kept epoch's prompts, with the final seed, not the guard's
    kept = folder / f"epoch-{guard['kept_epoch']}.safetensors"
    assert kept.read_bytes() == Path(dataset.card["adapter"]["path"]).read_bytes()
    assert probe_method(method).sampling_params(task, 13).seed != dataset.card["seed"]
    assert probe_method(method).config.per_label == 2 and dataset.label_counts() == {"negative": 1, "positive": 1}
