"""Custom tasks from YAML/TOML files: the happy path end to end, and one-line errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fewforge.data.fewshot import sample_fewshot
from fewforge.data.sources import load_task_data
from fewforge.errors import TaskError
from fewforge.tasks import load_task

YAML_TASK = """\
name: reviews
type: single
description: product review
labels:
  negative: terrible
  positive: great
templates:
  cloze: "{text} All in all, it was {mask}."
  generation:
    negative: "Write a negative {description}. Reply with the review only."
    positive: "Write a positive {description}. Reply with the review only."
metrics: [accuracy]
"""

TOML_TASK = """\
name = "paraphrase"
type = "pair"
description = "sentence pair"
metrics = ["accuracy", "macro_f1"]

[labels]
same = "yes"
different = "no"

[templates]
generation = "Sentence 1: {text_a}\\nWrite a sentence that is {label} in meaning.\\nSentence 2:"
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_task(tmp_path: Path) -> None:
    task = load_task(str(write(tmp_path, "reviews.yaml", YAML_TASK)))
    assert task.name == "reviews" and task.kind == "single" and task.description == "product review"
    assert dict(task.labels) == {"negative": "terrible", "positive": "great"}
    assert task.metrics == ("accuracy",)
    assert task.generation_prompt("positive") == "Write a positive product review. Reply with the review only."
    from fewforge.data.schema import Example

    assert task.cloze(Example({"text": "Works."}, "positive"), "_") == "Works. All in all, it was _."


def test_a_task_file_can_name_a_published_prompt_table(tmp_path: Path) -> None:
    """`published_prompts: s3-imdb` gives a movie-review task of the user's S3 Table 1's IMDb prompts
    verbatim; without it, its prompts are built from its description. It survives a save (task_to_spec)."""
    from fewforge.synthesis.s3.prompts import prompts_for
    from fewforge.tasks.from_file import load_task_file, task_to_spec, write_task_file

    plain = load_task(str(write(tmp_path, "reviews.yaml", YAML_TASK)))
    task = load_task(str(write(tmp_path, "films.yaml", YAML_TASK + "published_prompts: s3-imdb\n")))
    assert task.published_prompts == "s3-imdb" and plain.published_prompts == ""
    assert "movie" in prompts_for(task).rationale and "movie" not in prompts_for(plain).rationale
    assert task_to_spec(task)["published_prompts"] == "s3-imdb"
    assert load_task_file(write_task_file(task, tmp_path / "saved.yaml")) == task


def test_toml_task_with_one_generation_template_for_every_label(tmp_path: Path) -> None:
    from fewforge.data.schema import Example

    task = load_task(write(tmp_path, "paraphrase.toml", TOML_TASK))
    assert task.kind == "pair" and list(task.labels) == ["same", "different"]
    assert task.cloze_template == "{text_a} ? {mask} , {text_b}"  # the default for pairs
    parent = Example({"text_a": "It rains.", "text_b": "-"}, "same")
    assert task.generation_prompt("different", parent) == (
        "Sentence 1: It rains.\nWrite a sentence that is different in meaning.\nSentence 2:"
    )


def test_custom_task_runs_on_its_own_data(tmp_path: Path) -> None:
    task = load_task(str(write(tmp_path, "reviews.yml", YAML_TASK)))
    folder = tmp_path / "data" / "reviews"
    folder.mkdir(parents=True)
    for split, n in (("train", 12), ("dev", 4)):
        rows = [{"text": f"{split} review {i}", "label": ("negative", "positive")[i % 2]} for i in range(n)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pool, test = load_task_data(task, tmp_path / "data")
    assert (len(pool), len(test)) == (12, 4)
    split = sample_fewshot(pool, test, task, shots=3, seed=13)
    assert len(split.train) == len(split.dev) == 6


BAD_FILES = [
    # (file name, content, words the one-line message must contain)
    ("typo.yaml", YAML_TASK.replace("templates:", "templtes:"), ["unknown key 'templtes'", "valid keys: name, type"]),
    (
        "nested.yaml",
        YAML_TASK.replace("  cloze:", "  clozee:"),
        ["unknown key 'templates.clozee'", "valid keys under templates: cloze, generation"],
    ),
    ("nolabels.yaml", "name: x\ntype: single\ndescription: d\n", ["needs at least two labels"]),
    ("kind.yaml", YAML_TASK.replace("type: single", "type: triple"), ["type:", "'triple'", "single, pair, extractive-qa or text-to-text"]),
    ("list.yaml", "name: x\ntype: single\ndescription: d\nlabels: [a, b]\n", ["labels", "mapping of label name"]),
    (
        "bool.yaml",
        "name: x\ntype: pair\ndescription: d\nlabels:\n  same: yes\n  other: no\n",
        ["labels.same: Input should be a valid string (got True)", "quote them"],
    ),
    ("one.yaml", "name: x\ntype: single\ndescription: d\nlabels:\n  only: word\n", ["needs at least two labels"]),
    ("syntax.yaml", "name: x\nlabels: {a: b\ntype: single\n", ["invalid YAML at line"]),
    ("syntax.toml", 'name = "x"\nlabels = {\n', ["invalid TOML", "line 2"]),
    ("scalar.yaml", "just a string\n", ["must hold a mapping of keys, got str"]),
    ("empty.yaml", "", ["the task file is empty"]),
    (
        "placeholder.yaml",
        YAML_TASK.replace("{description}. Reply", "{sentiment}. Reply"),
        ["generation (negative) template", "unknown placeholders ['sentiment']"],
    ),
    ("published.yaml", YAML_TASK + "published_prompts: s3-yelp\n", ["published_prompts", "'s3-imdb' or 's3-rte'"]),
    ("nomask.yaml", YAML_TASK.replace("it was {mask}.", "it was good."), ["cloze template", "lacks ['mask']"]),
    ("textgen.yaml", YAML_TASK.replace("{description}. Reply", "{text}. Reply"), ["unknown placeholders ['text']"]),
    ("brace.yaml", YAML_TASK.replace("it was {mask}.", "it was {mask."), ["not a valid format string"]),
    (
        "unknownlabel.yaml",
        YAML_TASK.replace("    positive: \"Write", "    upbeat: \"Write"),
        ["generation templates for unknown labels ['upbeat']"],
    ),
]


@pytest.mark.parametrize(("name", "content", "needles"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_task_file_is_one_line_naming_the_file(tmp_path: Path, name: str, content: str, needles: list[str]) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(TaskError) as info:
        load_task(str(path))
    text = str(info.value)
    assert str(path) in text and "\n" not in text
    for needle in needles:
        assert needle in text


def test_missing_file_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match=r"task file not found"):
        load_task(str(tmp_path / "nope.yaml"))
    json_file = write(tmp_path, "task.json", "{}")
    with pytest.raises(TaskError, match=r"not a task file.*\.yaml or \.yml or \.toml"):
        load_task(json_file)
