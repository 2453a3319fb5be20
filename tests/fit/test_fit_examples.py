"""A user's own rows: the task inferred from the columns, and every bad input a real file brings as one
DataError naming the row and the fix, raised before the fit writes anything (fewforge/fit/examples.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fewforge.errors import DataError, ResumeError
from fewforge.fit import fit
from fewforge.fit.examples import load_user_rows, verbalizer


def write_csv(path: Path, rows: list[tuple[str, ...]], header: tuple[str, ...] = ("text", "label")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def reviews(n: int = 4) -> list[tuple[str, str]]:
    return [(f"great phone number {i}, loved it", "positive") for i in range(n)] + [
        (f"awful phone number {i}, it broke", "negative") for i in range(n)
    ]


def test_layouts_give_the_task_kind_labels_and_verbalizers(tmp_path: Path) -> None:
    single = load_user_rows(write_csv(tmp_path / "my_reviews.csv", reviews()))
    assert single.task.kind == "single" and single.task.name == "my_reviews"
    assert single.task.labels == {"negative": "negative", "positive": "positive"} and single.notes == []
    assert single.where[single.examples[0].id] == f"{tmp_path / 'my_reviews.csv'}:2"

    nli = [("A man sleeps.", "Someone rests.", "entailment"), ("A man sleeps.", "He runs.", "not_entailment")] * 2
    nli = [(a + f" {i}", b, label) for i, (a, b, label) in enumerate(nli)]
    pair = load_user_rows(write_csv(tmp_path / "nli.csv", nli, ("premise", "hypothesis", "label")))
    assert pair.task.kind == "pair" and pair.examples[0].inputs == {"text_a": "A man sleeps. 0", "text_b": "Someone rests."}
    assert pair.task.labels["not_entailment"] == "not entailment" and "--task" in pair.notes[0]  # not one word
    assert verbalizer("sci/tech") == "sci tech" and verbalizer("sports") == "sports"

    t2t = tmp_path / "headlines.jsonl"
    t2t.write_text("".join(json.dumps({"source": f"article {i}", "target": f"headline {i}"}) + "\n" for i in range(3)))
    text_to_text = load_user_rows(t2t)
    assert text_to_text.task.kind == "text-to-text" and text_to_text.examples[1].inputs == {"source": "article 1"}
    assert text_to_text.examples[1].label == "headline 1"

    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({"context": f"Paris is in France {i}.", "question": "Where is Paris?",
                                      "answers": {"text": ["France"], "answer_start": [12]}}) + "\n" for i in range(3)))
    assert load_user_rows(qa).task.kind == "extractive-qa"


def test_a_saved_datasets_folder_and_parquet_read_like_a_csv(tmp_path: Path) -> None:
    import datasets

    rows = reviews()
    data = datasets.Dataset.from_dict({"text": [t for t, _ in rows], "label": [label for _, label in rows]})
    data.save_to_disk(str(tmp_path / "saved"))
    data.to_parquet(str(tmp_path / "rows.parquet"))
    for source in (tmp_path / "saved", tmp_path / "rows.parquet"):
        got = load_user_rows(source)
        assert got.task.kind == "single" and [e.inputs["text"] for e in got.examples] == [t for t, _ in rows]


def test_duplicates_are_dropped_with_their_rows_named(tmp_path: Path) -> None:
    rows = reviews() + [("great phone number 1,  loved it", "positive")]  # whitespace aside, row 3 again
    got = load_user_rows(write_csv(tmp_path / "dups.csv", rows))
    assert len(got.examples) == 8
    assert got.duplicates == [(f"{tmp_path / 'dups.csv'}:10", f"{tmp_path / 'dups.csv'}:3")]


BAD_INPUTS = [
    # (rows, header, fragments of the one-line message)
    ([("good", "positive"), ("fine", "positive")], ("text", "label"), ["every row has the label 'positive'"]),
    (reviews() + [("so-so", "neutral")], ("text", "label"), [":10", "'neutral' has only this row", "2 or more"]),
    (reviews() + [("meh", "Positive")], ("text", "label"), [":10", "'Positive'", "typo of 'positive'"]),
    (reviews() + [("", "positive")], ("text", "label"), [":10", "empty 'text'"]),
    (reviews() + [("great phone number 0, loved it", "negative")], ("text", "label"),
     [":10", "repeats the text of", ":2", "another label"]),
    (reviews(), ("review", "stars"), ["unknown layout", "columns found: review, stars", "text,label (single)"]),
    ([("good", "1"), ("bad", "0")], ("text", "label"), [":2", "is a number"]),
]


@pytest.mark.parametrize("rows, header, fragments", BAD_INPUTS)
def test_bad_input_is_one_line_naming_the_row_and_nothing_is_written(tmp_path, rows, header, fragments) -> None:
    path = write_csv(tmp_path / "rows.csv", rows, header)
    with pytest.raises(DataError) as err:
        fit({"examples": str(path), "learner": "linear-probe", "method": "none"}, tmp_path / "model")
    message, hint = err.value.message, err.value.hint
    assert "\n" not in message and hint and "\n" not in hint  # the CLI prints "error: <message>" and "hint: <hint>"
    for fragment in fragments:
        assert fragment in f"{message} hint: {hint}", message
    assert not (tmp_path / "model").exists()


def test_mixed_up_encodings_name_the_line(tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ngood caf\u00e9,positive\n".encode() + "bad caf\u00e9,negative\n".encode("cp1252"))
    with pytest.raises(DataError) as err:
        load_user_rows(latin)
    assert f"{latin}:3: not UTF-8" in err.value.message and "café" in err.value.hint

    twice = write_csv(tmp_path / "twice.csv", reviews() + [("the caf\u00c3\u00a9 was bad", "negative")])
    with pytest.raises(DataError) as err:
        load_user_rows(twice)
    assert f"{twice}:10" in err.value.message and "Windows-1252" in err.value.message and "café" in err.value.hint


def test_a_folder_that_holds_something_else_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "notes.txt").write_text("mine")
    with pytest.raises(ResumeError):
        fit({"examples": str(write_csv(tmp_path / "r.csv", reviews())), "learner": "linear-probe", "method": "none"},
            tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["notes.txt"]


def test_the_command_prints_one_error_line_and_exits_2(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    path = write_csv(tmp_path / "rows.csv", reviews() + [("meh", "Positive")])
    result = subprocess.run(
        [sys.executable, "-m", "fewforge.cli.app", "fit", str(path), "--output", str(tmp_path / "model")],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300, check=False,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "typo of 'positive'" in errors[0] and "hint:" in result.stderr
    assert not (tmp_path / "model").exists()


def test_options_resolve_before_any_work(tmp_path: Path) -> None:
    from fewforge.errors import ConfigError
    from fewforge.fit.run import resolve

    rows = write_csv(tmp_path / "rows.csv", reviews())
    plan = resolve({"examples": str(rows), "method": "zerogen"})
    assert plan.cfg.learner == "setfit" and plan.cfg.learner_options == {"num_iterations": 2}  # the fit's default
    assert plan.method.config.per_label == 16 and plan.generator.model_id  # lazy: nothing loaded yet
    auto = resolve({"examples": str(rows), "method": "auto", "method_options": {"search_per_label": 2}})
    assert [c.name for c in auto.method.config.candidates] == ["zerogen"]
    assert auto.method.config.search_per_label == 2
    with pytest.raises(ConfigError, match="num_iteration"):
        resolve({"examples": str(rows), "learner_options": {"num_iteration": 5}})
    with pytest.raises(ConfigError, match="cannot learn single"):
        resolve({"examples": str(rows), "learner": "qa-encoder", "method": "none"})

    task = tmp_path / "reviews.yaml"
    task.write_text("name: reviews\ntype: single\ndescription: phone review\nlabels: {negative: bad, positive: good}\n")
    given = resolve({"examples": str(rows), "task": str(task), "method": "none"})
    assert given.task.labels == {"negative": "bad", "positive": "good"} and given.rows.layout == "task file"
    odd = write_csv(tmp_path / "odd.csv", reviews() + [("so-so", "neutral")])
    with pytest.raises(DataError, match=r"odd.csv:10: label 'neutral' is not a label of task 'reviews'"):
        resolve({"examples": str(odd), "task": str(task), "method": "none"})


def test_unlabeled_inputs_from_text_or_a_table(tmp_path: Path) -> None:
    from fewforge.fit.run import read_unlabeled
    from fewforge.tasks.base import Task

    task = Task(name="t", kind="single", labels={"a": "a", "b": "b"}, description="text")
    (tmp_path / "pool.txt").write_text("first text\n\nsecond text\n")
    assert [e.inputs for e in read_unlabeled(tmp_path / "pool.txt", task)] == [{"text": "first text"}, {"text": "second text"}]
    table = write_csv(tmp_path / "pool.csv", [("third", "b")])
    assert [e.inputs["text"] for e in read_unlabeled(table, task)] == ["third"]  # its label is not read
    empty = write_csv(tmp_path / "bad.csv", [("", "a")])
    with pytest.raises(DataError, match="bad.csv:2: no text"):
        read_unlabeled(empty, task)
