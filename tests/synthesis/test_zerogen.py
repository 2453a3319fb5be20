"""ZeroGen: plumbing with a scripted generator, then real output from the packaged SmolLM2 GGUF."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fewforge.data.schema import Example
from fewforge.errors import ConfigError, DataError
from fewforge.fingerprint import derive_seed
from fewforge.synthesis import METHODS, get_method
from fewforge.synthesis.base import SynthesisContext
from fewforge.synthesis.zerogen import ZeroGen, ZeroGenConfig

FAST = {"near_dup": "ngram"}  # plumbing tests need no embedding model


def _label_of(prompt: str) -> str:
    for label in ("not_entailment", "positive", "negative"):
        if label in prompt:
            return label
    return "entailment"


def test_registry_and_config_errors() -> None:
    assert "zerogen" in METHODS.names()
    method = get_method("zerogen", {"per_label": 7, "postprocess": {"min_words": 2}})
    assert isinstance(method, ZeroGen) and method.config.per_label == 7
    assert method.config.postprocess.min_words == 2
    with pytest.raises(ConfigError, match="per_lable") as err:
        get_method("zerogen", {"per_lable": 3})
    assert "per_label" in err.value.hint
    with pytest.raises(ConfigError, match="postprocess.minwords") as err:
        get_method("zerogen", {"postprocess": {"minwords": 3}})
    assert "min_words" in err.value.hint
    with pytest.raises(ConfigError, match="oversample"):
        get_method("zerogen", {"oversample": 0.5})
    with pytest.raises(ConfigError, match="unknown synthesis method"):
        get_method("zerogen2")


def ctx(task, gen, seed=13, **values) -> SynthesisContext:
    return SynthesisContext(task=task, generator=gen, seed=seed, **values)


def test_exact_per_label_counts_lineage_and_card(single_task, fake_generator, sentence) -> None:
    gen = fake_generator(lambda prompt, i: sentence(i, _label_of(prompt)))
    seen: list[tuple[int, int]] = []
    method = ZeroGen(ZeroGenConfig(per_label=5, seed=3, postprocess=FAST))
    data = method.synthesize(ctx(single_task, gen, progress=lambda d, t: seen.append((d, t))))

    assert data.label_counts() == {"negative": 5, "positive": 5}
    assert len(gen.calls) == 1  # nothing filtered, so no top-up round
    prompts, params, where = gen.calls[0]
    # ceil(5 * 1.1) = 6 per label, ordered (index, label): prompt j of label k sits at position 2j + k
    assert len(prompts) == 2 * 6 and where == list(range(12))
    assert prompts[:2] == [single_task.generation_prompt("negative"), single_task.generation_prompt("positive")]
    assert (params.temperature, params.top_p, params.top_k) == (0.9, 0.9, 0)
    assert params.seed == derive_seed(13, 3)  # the split seed and the method's seed option
    assert params.max_new_tokens == 64 and params.stop == ()
    assert seen[-1] == (12, 12)

    first = data.examples[0]
    assert first.label == "negative" and first.text.startswith("Amber amber amber number 0")
    assert "Sure" not in first.text and "**" not in first.text  # chatter cleaned
    lineage = first.lineage
    assert lineage["method"] == "zerogen" and lineage["method_version"] == 3
    assert lineage["model"] == "fake:scripted"
    assert lineage["prompt"] == single_task.generation_prompt("negative")
    assert lineage["sampling"]["temperature"] == 0.9 and lineage["prompt_index"] == 0
    assert lineage["request_seed"] == params.request_seed(0)
    assert lineage["raw"].startswith("Sure! Here is") and lineage["finish_reason"] == "stop"
    assert lineage["round"] == 1 and lineage["parent_id"] is None
    assert len({e.id for e in data.examples}) == 10

    card = data.card
    assert card["per_label"] == {"negative": 5, "positive": 5} and card["shortfall"] == {}
    assert card["generated"] == 12 and card["selected"] == 10 and card["tokens_generated"] > 0
    assert card["postprocess"]["seen"] == 12 and card["model"] == {"backend": "fake", "model_id": "scripted"}
    assert card["seed"] == params.seed and card["split_seed"] == 13 and "ZeroGen" in card["citation"]
    json.dumps(card)  # the card must be serializable as is


def test_seeds_differ_per_split_and_a_bigger_set_extends_a_smaller_one(single_task, fake_generator, sentence) -> None:
    def run(per_label: int, split_seed: int = 13):
        gen = fake_generator(lambda prompt, i: sentence(i, _label_of(prompt)))
        data = ZeroGen(ZeroGenConfig(per_label=per_label, postprocess=FAST)).synthesize(ctx(single_task, gen, split_seed))
        return data, gen.calls[0]

    small, (small_prompts, small_params, small_where) = run(4)
    big, (big_prompts, big_params, big_where) = run(9)
    assert small_params == big_params
    # every (prompt, position) of the small run is in the big run: the cache serves them, and ...
    assert set(zip(small_prompts, small_where)) <= set(zip(big_prompts, big_where))
    # ... the first 4 per label of the big set are the small set
    firsts = [e for label in single_task.label_names for e in [x for x in big.examples if x.label == label][:4]]
    assert [e.to_record() for e in firsts] == [e.to_record() for e in small.examples]
    _, (_, other_params, _) = run(4, split_seed=21)
    assert other_params.seed != small_params.seed


def test_top_up_round_when_many_are_filtered(single_task, fake_generator, sentence) -> None:
    # positive prompts (odd positions) give a real sentence only at every third index; the rest is
    # chatter or a truncated answer
    def script(prompt: str, i: int) -> str | tuple[str, str]:
        label, j = _label_of(prompt), i // 2
        if label == "positive" and j % 3 == 1:
            return "I hope this helps!"
        if label == "positive" and j % 3 == 2:
            return "A truncated answer with no full stop", "length"
        return sentence(i, label)

    gen = fake_generator(script)
    data = ZeroGen(ZeroGenConfig(per_label=6, postprocess=FAST)).synthesize(ctx(single_task, gen))
    assert data.label_counts() == {"negative": 6, "positive": 6}
    assert len(gen.calls) >= 2
    second_prompts, _, second_where = gen.calls[1]
    assert set(second_prompts) == {single_task.generation_prompt("positive")}
    assert second_where[0] == 2 * 7 + 1  # round 1 asked ceil(6 * 1.1) = 7 per label
    dropped = data.card["postprocess"]["dropped"]
    assert dropped["empty"] > 0 and dropped["truncated"] > 0
    assert {r["reason"] for r in data.dropped} >= {"empty", "truncated"}
    assert [r["round"] for r in data.card["rounds"]] == list(range(1, len(gen.calls) + 1))
    assert {e.lineage["round"] for e in data.examples if e.label == "positive"} >= {1, 2}


def test_bounded_rounds_report_a_shortfall(single_task, fake_generator, sentence) -> None:
    gen = fake_generator(lambda p, i: "I hope this helps!" if "positive" in p else sentence(i, "negative"))
    data = ZeroGen(ZeroGenConfig(per_label=3, max_rounds=2, postprocess=FAST)).synthesize(ctx(single_task, gen))
    assert len(gen.calls) == 2
    assert data.label_counts() == {"negative": 3}
    assert data.card["shortfall"] == {"positive": 3}
    assert all(e.label in single_task.labels and e.text for e in data.examples)


def test_pair_prompts_condition_on_pool_sentences(pair_task, pair_pool, fake_generator, sentence) -> None:
    def script(prompt: str, i: int) -> str:
        return f"Sentence 2: {sentence(i, 'pair').splitlines()[-1]}\nThis is because of sentence 1."

    gen = fake_generator(script)
    method = ZeroGen(ZeroGenConfig(per_label=4, oversample=1.0, seed=1, postprocess=FAST))
    data = method.synthesize(ctx(pair_task, gen, pool=pair_pool))
    assert data.label_counts() == {"entailment": 4, "not_entailment": 4}
    pool_text = {e.inputs["text_a"]: e.id for e in pair_pool}
    for e in data.examples:
        assert e.inputs["text_a"] in pool_text
        assert e.lineage["parent_id"] == pool_text[e.inputs["text_a"]]
        assert e.inputs["text_a"] in e.lineage["prompt"]
        assert e.inputs["text_b"].endswith("today.") and "Sentence" not in e.inputs["text_b"]
    by_label = {lab: [e.inputs["text_a"] for e in data.examples if e.label == lab] for lab in pair_task.labels}
    assert by_label["entailment"] == by_label["not_entailment"]  # same premises across labels
    assert len(set(by_label["entailment"])) == 4  # no repeats before the pool is used up
    assert gen.calls[0][1].max_new_tokens == 48 and gen.calls[0][1].stop == ("\n\n",)

    # without a pool, the real few-shot examples provide the first sentences
    real = [Example({"text_a": "Real premise one is here.", "text_b": "b"}, "entailment", id="r1")]
    data = method.synthesize(ctx(pair_task, fake_generator(script), train=real))
    assert {e.inputs["text_a"] for e in data.examples} == {"Real premise one is here."}
    with pytest.raises(DataError):
        method.synthesize(ctx(pair_task, fake_generator(script)))


def test_prompts_are_deterministic(pair_task, pair_pool, fake_generator, sentence) -> None:
    def run(seed: int) -> list[str]:
        gen = fake_generator(lambda p, i: sentence(i, "x"))
        ZeroGen(ZeroGenConfig(per_label=5, seed=seed, postprocess=FAST)).synthesize(ctx(pair_task, gen, pool=pair_pool))
        return gen.calls[0][0]

    assert run(0) == run(0)
    assert run(0) != run(1)  # the seed draws other premises


def test_save_writes_every_format_and_reads_back(single_task, fake_generator, sentence, tmp_path: Path) -> None:
    import datasets

    from fewforge.data.io import read_examples

    gen = fake_generator(lambda p, i: "Sure!" if i == 0 else sentence(i, _label_of(p)))
    data = ZeroGen(ZeroGenConfig(per_label=2, postprocess=FAST)).synthesize(ctx(single_task, gen))
    path = data.save(tmp_path, single_task)
    assert path == tmp_path / "data.jsonl"
    assert {p.name for p in tmp_path.iterdir()} == {"data.jsonl", "data.parquet", "hf", "card.json", "README.md", "dropped.jsonl"}
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["label"] for r in rows] == ["negative", "negative", "positive", "positive"]
    assert rows[0]["lineage"]["raw"].startswith("Sure!")
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["per_label"] == {"negative": 2, "positive": 2} and card["method"] == "zerogen"
    dropped = [json.loads(line) for line in (tmp_path / "dropped.jsonl").read_text().splitlines()]
    assert dropped and dropped[0]["reason"] == "empty" and dropped[0]["raw"] == "Sure!"
    for source in (path, tmp_path / "data.parquet", tmp_path / "hf"):
        back = read_examples(source, single_task)
        assert [e.to_record() for e in back] == [e.to_record() for e in data.examples]
    saved = datasets.load_from_disk(str(tmp_path / "hf"))
    assert saved.num_rows == 4 and {"text", "label", "id", "method", "prompt", "lineage"} <= set(saved.column_names)
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("---\n") and "task_categories" in readme and "zerogen" in readme and "empty" in readme


# ---------------------------------------------------------------------------------- the real SmolLM2


def _check_real(data, task, per_label: int) -> None:
    assert data.label_counts() == {label: per_label for label in task.labels}
    field = task.input_fields[-1]
    texts = [e.inputs[field] for e in data.examples]
    assert all(t.strip() and len(t.split()) >= 4 for t in texts)
    assert len({" ".join(t.lower().split()) for t in texts}) == len(texts)  # de-duplicated
    for e in data.examples:
        assert e.lineage["raw"] and e.lineage["model"].startswith("llamacpp:")
        assert e.lineage["finish_reason"] in ("stop", "length")
    assert data.card["tokens_generated"] > 0


def test_real_smollm2_single_task_is_clean_and_reproducible(smollm2) -> None:
    from fewforge.tasks import load_task

    task = load_task("sst2")
    config = ZeroGenConfig(per_label=6, seed=11, max_new_tokens=40)
    first = ZeroGen(config).synthesize(ctx(task, smollm2))
    _check_real(first, task, 6)
    for e in first.examples:  # the chatter the instruct model wraps reviews in is gone
        assert not e.text.lower().startswith(("sure", "here is", "here's", "review:", '"'))
        assert "**" not in e.text and "\n" not in e.text
    again = ZeroGen(config).synthesize(ctx(task, smollm2))
    assert [e.to_record() for e in again.examples] == [e.to_record() for e in first.examples]


@pytest.mark.slow  # over a minute on 2 cores: CI's -m slow runs it
def test_real_smollm2_pair_task(smollm2, data_dir: Path) -> None:
    from fewforge.tasks import load_task

    task = load_task("rte")
    rows = [json.loads(line) for line in (data_dir / "rte" / "train.jsonl").read_text().splitlines()[:40]]
    pool = [
        Example({"text_a": r["text_a"], "text_b": r["text_b"]}, r["label"], id=f"rte-{i}") for i, r in enumerate(rows)
    ]
    data = ZeroGen(ZeroGenConfig(per_label=3, seed=5, max_new_tokens=40)).synthesize(ctx(task, smollm2, pool=pool))
    _check_real(data, task, 3)
    premises = {p.inputs["text_a"] for p in pool}
    for e in data.examples:
        assert e.inputs["text_a"] in premises and e.lineage["parent_id"].startswith("rte-")
        assert " ".join(e.inputs["text_b"].lower().split()) != " ".join(e.inputs["text_a"].lower().split())
        assert "sentence 2" not in e.inputs["text_b"].lower()


def test_top_up_size_fills_with_95_percent_chance() -> None:
    from scipy.stats import binom

    from fewforge.synthesis.zerogen import top_up_size

    # one row missing at RTE's keep rate: the expected-rate rule asked ceil(1.1 / 0.5) = 3 prompts,
    # which all fail one time in eight; the binomial rule asks 5 (all fail 3% of the time)
    assert top_up_size(1, 0.5, 1.1) == 5
    for need, rate in [(1, 0.5), (3, 0.55), (20, 0.9), (2, 0.05)]:
        n = top_up_size(need, rate, 1.1)
        p = max(rate, 0.2)
        assert binom.sf(need - 1, n, p) >= 0.95 > binom.sf(need - 1, n - 1, p) or n == math.ceil(need * 1.1 / p)
        assert n >= need * 1.1 / p
