"""Built-in tasks against the real data in ../shared/data: labels, fields, templates, lookup by name."""

from __future__ import annotations

import string
import subprocess
import sys
from pathlib import Path

import pytest

from fewforge.data.io import read_examples
from fewforge.errors import TaskError
from fewforge.tasks import BUILTIN_TASKS, Task, list_tasks, load_task

EXPECTED = {
    "sst2": ("single", ["negative", "positive"]),
    "imdb": ("single", ["negative", "positive"]),
    "rt-snippets": ("single", ["negative", "positive"]),
    "agnews": ("single", ["world", "sports", "business", "sci_tech"]),
    "trec": ("single", ["abbreviation", "description", "entity", "human", "location", "numeric"]),
    "bbc": ("single", ["business", "entertainment", "politics", "sports", "tech"]),
    "rte": ("pair", ["entailment", "not_entailment"]),
    "qnli": ("pair", ["entailment", "not_entailment"]),
    "mrpc": ("pair", ["equivalent", "not_equivalent"]),
    "qqp": ("pair", ["duplicate", "not_duplicate"]),
    "snli": ("pair", ["contradiction", "entailment", "neutral"]),
    "mnli": ("pair", ["contradiction", "entailment", "neutral"]),
}


OTHER_KINDS = {"squad": "extractive-qa", "adversarialqa": "extractive-qa", "squad-qg": "text-to-text"}


def test_the_fifteen_tasks_are_listed() -> None:
    assert sorted(list_tasks()) == sorted([*EXPECTED, *OTHER_KINDS])
    assert {name: load_task(name).kind for name in OTHER_KINDS} == OTHER_KINDS
    assert all(isinstance(load_task(name), Task) for name in list_tasks())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_task_matches_its_real_data(name: str, data_dir: Path) -> None:
    task = load_task(name)
    kind, labels = EXPECTED[name]
    assert (task.name, task.kind, sorted(task.labels)) == (name, kind, sorted(labels))
    for split in ("train", "dev"):
        examples = read_examples(data_dir / name / f"{split}.jsonl", task)
        # every label of the task occurs, and nothing else does (the reader rejects unknown labels)
        assert {e.label for e in examples} == set(task.labels)
        assert all(tuple(e.inputs) == task.input_fields for e in examples)
    for example in examples[:50]:
        prompt = task.cloze(example, mask="<mask>")
        assert prompt.count("<mask>") == 1
        assert all(example.inputs[f] in prompt for f in task.input_fields)
    parent = examples[0] if kind == "pair" else None
    for label in task.labels:
        prompt = task.generation_prompt(label, parent)
        assert "{" not in prompt and "}" not in prompt
        if parent is not None:
            assert parent.inputs["text_a"] in prompt and parent.inputs["text_b"] not in prompt


@pytest.mark.parametrize(
    ("name", "label", "word"),
    [
        ("sst2", "positive", "great"),
        ("sst2", "negative", "terrible"),
        ("rte", "entailment", "Yes"),
        ("qnli", "not_entailment", "No"),
        ("mnli", "neutral", "Maybe"),
        ("snli", "contradiction", "No"),
        ("mrpc", "equivalent", "yes"),
        ("qqp", "duplicate", "Yes"),
        ("trec", "abbreviation", "Expression"),
        ("trec", "numeric", "Number"),
        ("agnews", "sci_tech", "Tech"),
        ("bbc", "entertainment", "Entertainment"),
    ],
)
def test_verbalizers_follow_the_papers(name: str, label: str, word: str) -> None:
    assert load_task(name).labels[label] == word


def test_templates_keep_the_papers_wording() -> None:
    from fewforge.data.schema import Example

    pair = Example({"text_a": "A man sleeps.", "text_b": "Someone rests."}, "entailment")
    assert load_task("sst2").cloze(Example({"text": "Fine film."}, "positive"), "[MASK]") == "Fine film. It was [MASK]."
    assert load_task("rte").cloze(pair, "[MASK]") == "A man sleeps. ? [MASK] , Someone rests."
    assert load_task("mrpc").cloze(pair, "[MASK]") == "Are A man sleeps. and Someone rests. equivalent? [MASK]"
    assert load_task("trec").cloze(Example({"text": "Who won ?"}, "human"), "[MASK]") == "[MASK]: Who won ?"
    assert load_task("rte").generation_prompt("entailment", pair).startswith(
        "Sentence 1 implies Sentence 2. Sentence 1: A man sleeps.\n"
    )
    assert load_task("rte").generation_prompt("entailment", pair).endswith("\nSentence 2:")
    assert load_task("qnli").generation_prompt("not_entailment", pair).startswith(
        "Paragraph is irrelevant to Question. Question: A man sleeps."
    )
    assert load_task("sst2").generation_prompt("positive").startswith("Write a positive movie review in one sentence.")


def test_generation_templates_use_only_filled_placeholders() -> None:
    for task in BUILTIN_TASKS.values():
        for template in task.generation_templates.values():
            used = {f for _, f, _, _ in string.Formatter().parse(template) if f}
            allowed = set(task.given_fields)
            assert used <= allowed, (task.name, template)


def test_lookup_is_case_insensitive() -> None:
    assert load_task(" SST2 ") is BUILTIN_TASKS["sst2"]


def test_unknown_name_lists_builtins_and_mentions_files() -> None:
    with pytest.raises(TaskError) as info:
        load_task("sst-2")
    text = str(info.value)
    assert "unknown task 'sst-2'" in text and "did you mean 'sst2'" in text
    assert "rt-snippets" in text and ".yaml" in text and "\n" not in text


def test_import_is_light() -> None:
    code = (
        "import sys, fewforge.tasks; heavy = {'pydantic', 'yaml', 'numpy', 'pyarrow', 'datasets', 'torch'};"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
