"""S3 and GoldGen: round bookkeeping, lineage, the leakage guard and resuming with a scripted generator and
the real linear-probe student; then real rows from the packaged SmolLM2 (slow)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fewforge.data.schema import Example
from fewforge.errors import ConfigError, DataError
from fewforge.learners import student_factory
from fewforge.synthesis import METHODS, get_method
from fewforge.synthesis.base import SynthesisContext
from fewforge.synthesis.s3.prompts import join_reasons, parse_reasons, prompts_for
from fewforge.tasks import load_task

FAST = {"near_dup": "ngram"}
WORDS = "amber brisk cobalt dune ember fjord glade harbor iris jolt kelp lumen mossy nectar onyx prism quill".split()
GOOD = "wonderful superb delightful moving brilliant charming".split()
BAD = "dreadful boring clumsy tedious awful bland".split()


def _row(i: int, label: str, prefix: str) -> Example:
    words = GOOD if label == "positive" else BAD
    if prefix == "dev" and i >= 3:  # negated opposites: rows a probe trained on plain ones gets wrong
        words = ["not " + w for w in (BAD if label == "positive" else GOOD)]
    text = f"{prefix} {WORDS[i % 17]} {WORDS[(i * 7) % 17]} film was {words[i % 6]} and {words[(i + 1) % 6]} overall."
    return Example({"text": text}, label, id=f"{prefix}-{label}-{i}")


@pytest.fixture
def split(single_task):
    train = [_row(i, label, "train") for label in ("negative", "positive") for i in range(4)]
    dev = [_row(i, label, "dev") for label in ("negative", "positive") for i in range(6)]
    return train, dev


def _label(prompt: str) -> str:
    return "positive" if "positive" in prompt else "negative"


def script(copy_gold: bool = False, near_gold: bool = False):
    """Rationale prompts get a list; seed prompts a review; EES prompts a review like the shown one (or a
    copy / near-copy of it, for the leakage guard). Seed reviews are deliberately neutral, so the student
    keeps making errors for EES to extrapolate."""

    def run(prompt: str, i: int) -> str:
        if "reasons" in prompt:
            return "1. great acting\n2. a tight plot\n3. lovely music" if "positive" in prompt else "1. dull plot\n2. bad acting"
        if "similar to" in prompt:
            shown = prompt.split("similar to: \n ", 1)[1].split("\n", 1)[0]
            if copy_gold:
                return shown
            if near_gold:
                return shown.replace("overall", "in the end")
            words = GOOD if _label(prompt) == "positive" else BAD
            return f"Another {WORDS[i % 17]} {WORDS[(i // 17) % 17]} movie {i} felt {words[i % 6]} to me."
        return f"The {WORDS[i % 17]} {WORDS[(i // 17) % 17]} {WORDS[(i // 289) % 17]} picture number {i} ran two hours."

    return run


class Recorder:
    """The real student factory (linear probe), recording what every round trained on."""

    def __init__(self, task, fail_on: int | None = None) -> None:
        self.inner = student_factory(task, 13)
        self.calls: list[dict] = []
        self.fail_on = fail_on

    def __call__(self, train, dev, synthetic, name, options=None):
        self.calls.append({"train": list(train), "synthetic": list(synthetic), "name": name})
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            raise KeyboardInterrupt("interrupted")
        return self.inner(train, dev, synthetic, name, options)


def _ctx(task, gen, split, tmp_path: Path | None = None, factory=None) -> SynthesisContext:
    train, dev = split
    return SynthesisContext(
        task=task, generator=gen, seed=13, train=train, dev=dev, pool=[*train, *dev],
        workdir=tmp_path, train_learner=factory,
    )


def test_registry_config_and_prompts(single_task) -> None:
    assert {"s3", "goldgen"} <= set(METHODS.names())
    with pytest.raises(ConfigError, match="rounds"):
        get_method("s3", {"rounds": -1})
    with pytest.raises(ConfigError, match="gold"):
        get_method("goldgen", {"gold": "test"})
    # SST-2 / IMDb take Table 1's IMDb prompts verbatim; RTE its own; other tasks the description's
    from fewforge.tasks import load_task

    imdb = prompts_for(load_task("sst2"))
    assert imdb.rationale.startswith("Imagine you are watching a movie; consider {n} reasons")
    assert imdb.ees == "Write a {word} movie similar to: \n {text}"
    assert prompts_for(load_task("sst2"), "body").rationale == "What is the reason that may lead to a {word} movie review."
    assert "is definitely {word}" in prompts_for(load_task("rte")).seed
    assert "news article" in prompts_for(load_task("bbc")).ees


def test_parse_reasons_and_join() -> None:
    text = "Here are 3 reasons:\n1. **Wooden acting**: nobody cares.\n2. Plot - thin\n- \"Bad music\" (very)\nSure!"
    assert parse_reasons(text) == ["Wooden acting", "Plot", "Bad music"]
    assert parse_reasons("Great acting. A tight plot.") == ["Great acting", "A tight plot"]
    assert join_reasons(["Great acting", "intriguing plot", "beautiful cinematography"]) == (
        "great acting, intriguing plot, and beautiful cinematography"
    )


def test_rounds_train_on_seed_and_adds_never_on_gold_and_lineage_links_errors(
    single_task, fake_generator, split, tmp_path: Path
) -> None:
    gen = fake_generator(script())
    factory = Recorder(single_task)
    method = get_method("s3", {"per_label": 12, "rounds": 2, "stop_when_flat": False, "postprocess": FAST})
    data = method.synthesize(_ctx(single_task, gen, split, tmp_path, factory))

    assert data.label_counts() == {"negative": 12, "positive": 12}
    rounds = data.card["rounds"]
    assert [r["round"] for r in rounds] == [1, 2] and len(factory.calls) == 2
    gold_ids = {e.id for e in split[1]}
    seed = [e for e in data.examples if e.lineage["stage"] == "seed" and not e.lineage.get("fill")]
    fill = [e for e in data.examples if e.lineage.get("fill")]  # budget the errors did not use: more seed rows
    assert len(seed) == 16 and len(fill) == data.card["fill_rows"] == 8 - sum(len(r["added"]) and
        sum(r["added"].values()) for r in data.card["rounds"])
    adds = {k: [e for e in data.examples if e.lineage.get("ees_round") == k] for k in (1, 2)}
    # round k trains on seed ∪ adds(1..k-1) plus the real few-shot train rows, and never on a gold row
    seen1 = {e.id for e in factory.calls[0]["synthetic"]}
    seen2 = {e.id for e in factory.calls[1]["synthetic"]}
    assert seen1 == {e.id for e in seed}
    assert seen2 == seen1 | {e.id for e in adds[1]}
    for call in factory.calls:
        assert call["name"] == "linear-probe"
        assert not gold_ids & {e.id for e in call["train"] + call["synthetic"]}
        assert {e.id for e in call["train"]} == {e.id for e in split[0]}
    # every added row extrapolates an error of its round, keeps that error's gold label, and says so
    for k in (1, 2):
        errors = set(rounds[k - 1]["error_ids"])
        assert adds[k] and rounds[k - 1]["n_errors"] == len(errors)
        for e in adds[k]:
            parent = e.lineage["extrapolates"]
            assert parent["id"] in errors and parent["id"] in gold_ids
            assert e.label == parent["label"] and parent["predicted"] != parent["label"]
            assert parent["inputs"]["text"] in e.lineage["prompt"]
    # the seed prompts carry sampled rationales (Alg. 1)
    assert all(("great acting" in e.lineage["prompt"] or "tight plot" in e.lineage["prompt"]
                or "lovely music" in e.lineage["prompt"]) for e in seed if e.label == "positive")
    assert data.card["rationales"]["per_label"] == {"negative": 2, "positive": 3}
    assert data.card["gold"].startswith("few-shot dev set")


def test_interrupted_round_resumes_without_retraining_or_duplicating(
    single_task, fake_generator, split, tmp_path: Path
) -> None:
    options = {"per_label": 12, "rounds": 2, "stop_when_flat": False, "postprocess": FAST}
    reference = get_method("s3", options).synthesize(
        _ctx(single_task, fake_generator(script()), split, tmp_path / "a", Recorder(single_task))
    )
    crashing = Recorder(single_task, fail_on=2)
    with pytest.raises(KeyboardInterrupt):
        get_method("s3", options).synthesize(_ctx(single_task, fake_generator(script()), split, tmp_path / "b", crashing))
    again = Recorder(single_task)
    resumed = get_method("s3", options).synthesize(_ctx(single_task, fake_generator(script()), split, tmp_path / "b", again))
    assert len(again.calls) == 1  # round 1 came back from the work folder
    ids = [e.id for e in resumed.examples]
    assert len(ids) == len(set(ids))
    assert [e.to_record() for e in resumed.examples] == [e.to_record() for e in reference.examples]


def test_ablations_and_the_missing_factory(single_task, fake_generator, split) -> None:
    no_ees = get_method("s3", {"per_label": 6, "ees": False, "postprocess": FAST}).synthesize(
        _ctx(single_task, fake_generator(script()), split)
    )
    assert no_ees.label_counts() == {"negative": 6, "positive": 6} and no_ees.card["rounds"] == []
    assert {e.lineage["stage"] for e in no_ees.examples} == {"seed"}
    plain = get_method("s3", {"per_label": 6, "ees": False, "rationales": False, "postprocess": FAST}).synthesize(
        _ctx(single_task, fake_generator(script()), split)
    )
    assert plain.card["rationales"] == {"used": False, "why": "off"}
    assert all("reasons" not in e.lineage["prompt"] and " that has " not in e.lineage["prompt"] for e in plain.examples)
    with pytest.raises(ConfigError, match="learner factory"):
        get_method("s3", {"per_label": 6}).synthesize(_ctx(single_task, fake_generator(script()), split))
    with pytest.raises(DataError, match="dev set"):
        get_method("goldgen", {"per_label": 6}).synthesize(
            SynthesisContext(task=single_task, generator=fake_generator(script()), seed=1)
        )


def test_goldgen_extrapolates_every_gold_row_before_any_twice(single_task, fake_generator, split) -> None:
    data = get_method("goldgen", {"per_label": 9, "postprocess": FAST}).synthesize(
        _ctx(single_task, fake_generator(script()), split)
    )
    assert data.label_counts() == {"negative": 9, "positive": 9}
    for label in ("negative", "positive"):
        parents = [e.lineage["extrapolates"]["id"] for e in data.examples if e.label == label]
        gold = {e.id for e in split[1] if e.label == label}
        assert set(parents[:6]) == gold  # 6 gold rows per label: each once, then cycled
        assert all("predicted" not in e.lineage["extrapolates"] for e in data.examples)


def test_leakage_guard_drops_copies_and_flags_near_copies_of_gold(single_task, fake_generator, split) -> None:
    copies = get_method("goldgen", {"per_label": 4, "max_rounds": 1, "postprocess": FAST}).synthesize(
        _ctx(single_task, fake_generator(script(copy_gold=True)), split)
    )
    # a word-for-word copy never survives: the echo filter (the text is in its prompt) or copy_of_gold
    dropped_as = copies.card["extrapolation"]["dropped"]
    assert copies.examples == [] and set(dropped_as) <= {"prompt_echo", "copy_of_gold"} and sum(dropped_as.values()) == 12
    near = get_method("goldgen", {"per_label": 4, "postprocess": FAST}).synthesize(
        _ctx(single_task, fake_generator(script(near_gold=True)), split)
    )
    assert near.card["leakage"]["flagged"] == len(near.examples) == 8
    gold = {e.id for e in split[1]}
    for e in near.examples:
        mark = e.lineage["near_gold"]
        assert mark["id"] in gold and (mark["cosine"] >= 0.95 or mark["edit_similarity"] >= 0.9)
    dropped = get_method("goldgen", {"per_label": 4, "drop_near_gold": True, "postprocess": FAST}).synthesize(
        _ctx(single_task, fake_generator(script(near_gold=True)), split)
    )
    assert dropped.examples == [] and dropped.card["leakage"]["dropped"] == 8


@pytest.mark.slow
def test_real_smollm2_s3_on_sst2(smollm2, data_dir: Path, tmp_path: Path) -> None:
    from fewforge.data.fewshot import sample_fewshot
    from fewforge.data.sources import load_task_data
    from fewforge.tasks import load_task

    task = load_task("sst2")
    pool, _ = load_task_data(task, data_dir)
    split = sample_fewshot(pool[:400], [], task, 8, 13)
    ctx = SynthesisContext(
        task=task, generator=smollm2, seed=13, train=split.train, dev=split.dev, pool=pool[:400],
        workdir=tmp_path, train_learner=student_factory(task, 13),
    )
    data = get_method("s3", {"per_label": 6, "rounds": 1, "max_new_tokens": 48}).synthesize(ctx)
    assert data.label_counts() == {"negative": 6, "positive": 6}
    assert data.card["rationales"]["used"] and data.card["rounds"][0]["n_errors"] >= 0
    for e in data.examples:
        assert e.text.strip() and not re.match(r"(?i)^(sure|here is|here's)", e.text)
        assert e.lineage["model"].startswith("llamacpp:")


def test_rounds_stop_when_the_gold_score_does_not_improve(single_task, fake_generator, split) -> None:
    """Adds that fix nothing (neutral reviews) leave the student's gold score flat: round 2 stops before it
    extrapolates, and the budget it did not spend goes to more seed rows."""

    def neutral(prompt: str, i: int) -> str:
        if "reasons" in prompt:
            return "1. a plot\n2. some actors"
        return f"The {WORDS[i % 17]} {WORDS[(i // 17) % 17]} {WORDS[(i // 289) % 17]} picture number {i} ran two hours."

    factory = Recorder(single_task)
    data = get_method("s3", {"per_label": 12, "rounds": 3, "postprocess": FAST}).synthesize(
        _ctx(single_task, fake_generator(neutral), split, None, factory)
    )
    rounds = data.card["rounds"]
    assert rounds[-1]["stopped"].startswith("gold accuracy") and "requested" not in rounds[-1]
    assert len(rounds) < 3 and len(factory.calls) == len(rounds)
    assert rounds[-1]["gold_score"] <= max(r["gold_score"] for r in rounds[:-1])
    assert data.label_counts() == {"negative": 12, "positive": 12}
    assert data.card["fill_rows"] == 24 - 16 - sum(sum(r.get("added", {}).values()) for r in rounds)


def test_every_sampling_option_of_the_config_reaches_the_generator_and_a_new_one_keeps_old_fingerprints():
    """S3 and GoldGen build their SamplingParams where every method does (synthesis/base.sampling_params),
    so repetition_penalty is no longer dropped; left at its default it stays out of the set fingerprint."""
    task = load_task("sst2")
    for name in ("s3", "goldgen"):
        method = get_method(name, {"repetition_penalty": 1.3, "top_k": 5})
        params = method.sampling_params(task, 13)
        assert (params.repetition_penalty, params.top_k, params.temperature) == (1.3, 5, 0.9)
        assert method.config.identity()["repetition_penalty"] == 1.3
        assert "repetition_penalty" not in get_method(name).config.identity()
