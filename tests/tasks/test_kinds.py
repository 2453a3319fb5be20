"""Task kinds beyond classification: QA rows and span alignment, the k-example sampler, SQuAD EM/F1,
ROUGE-L/BLEU, custom text-to-text task files, and bad input as one-line errors naming file and line."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from fewforge.data.fewshot import sample_fewshot
from fewforge.data.io import read_examples, read_jsonl, write_jsonl
from fewforge.data.schema import Answer, Example
from fewforge.errors import DataError, TaskError
from fewforge.evaluation.metrics import bleu, exact_match_scores, f1_scores, normalize_answer, rouge_l_scores, score
from fewforge.tasks import load_task
from fewforge.tasks.kinds import KINDS
from fewforge.tasks.kinds.extractive_qa import align_answer, answer_spans


def test_every_kind_is_registered_with_its_fields_and_metrics() -> None:
    assert set(KINDS) == {"single", "pair", "extractive-qa", "text-to-text"}
    qa, qg = load_task("adversarialqa"), load_task("squad-qg")
    assert (qa.input_fields, qa.given_fields, qa.generated_fields, qa.metrics) == (
        ("context", "question"),
        ("context",),
        ("question",),
        ("exact_match", "f1"),
    )
    assert (qg.input_fields, qg.generated_fields, qg.metrics, qg.data) == (
        ("context", "answer"),
        ("label",),
        ("rouge_l", "bleu"),
        "squad",
    )
    assert load_task("rte").generated_fields == ("text_b",) and load_task("sst2").generated_fields == ("text",)


# -- span alignment --------------------------------------------------------------------------------------

CONTEXT = "Paris is the capital of France. The Eiffel Tower, in Paris, opened in 1889 — “La Dame de fer”."


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Paris", ("Paris", 0)),  # several occurrences: the first
        ("the Eiffel Tower", ("The Eiffel Tower", 32)),  # case-insensitive
        ('"1889."', ("1889", 70)),  # quotes and final punctuation stripped
        ('"La Dame de fer"', ("La Dame de fer", 78)),  # curly quotes in the context
        ("Eiffel   Tower,  in", ("Eiffel Tower, in", 36)),  # whitespace runs
        ("Berlin", None),
        ("", None),
    ],
)
def test_align_answer(answer: str, expected: tuple[str, int] | None) -> None:
    found = align_answer(CONTEXT, answer)
    assert found == expected
    if found is not None:
        assert CONTEXT[found[1] : found[1] + len(found[0])] == found[0]


def test_align_answer_unicode() -> None:
    context = "Der Zürcher Fluss heißt Limmat; ﬁnally the café opened."
    assert align_answer(context, "zürcher fluss") == ("Zürcher Fluss", 4)
    text, start = align_answer(context, "finally")  # the ligature folds (NFKC) and maps back to one character
    assert context[start : start + len(text)] == text == "ﬁnally"


def test_answer_spans_are_spans_of_the_context() -> None:
    context = "In 1066 William of Normandy crossed to England with 7,000 men; Harold Godwinson fell at Hastings."
    spans = answer_spans(context, random.Random(0), 3)
    assert len(spans) == 3 and len({t for t, _ in spans}) == 3
    assert all(context[s : s + len(t)] == t for t, s in spans)
    assert answer_spans(context, random.Random(0), 3) == spans  # reproducible
    assert answer_spans("nothing to pick here.", random.Random(0), 2) == []


# -- metrics ---------------------------------------------------------------------------------------------


def test_squad_exact_match_and_f1_by_hand() -> None:
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    gold = [["Eiffel Tower", "the tower"], ["1889"], ["a red car"]]
    predicted = ["the eiffel tower.", "in 1889", "red bicycle"]
    assert exact_match_scores(gold, predicted) == [1.0, 0.0, 0.0]
    # "in 1889" vs "1889": p 1/2, r 1 -> 2/3; "red bicycle" vs "red car": p 1/2, r 1/2 -> 1/2
    assert f1_scores(gold, predicted) == pytest.approx([1.0, 2 / 3, 0.5])
    # the best over references: "tower" scores 2/3 against "Eiffel Tower" and 1 against "the tower"
    assert f1_scores([["Eiffel Tower", "the tower"]], ["tower"]) == [1.0]
    task = load_task("squad")
    assert score(task, gold, predicted) == pytest.approx({"exact_match": 1 / 3, "f1": (1 + 2 / 3 + 0.5) / 3})


def test_rouge_l_and_bleu() -> None:
    assert rouge_l_scores(["what year did the tower open"], ["what year did the tower open"]) == [1.0]
    # LCS "what did open" (3) of 6 and 5 words: p 3/5, r 1/2 -> 6/11
    assert rouge_l_scores(["what year did the tower open"], ["what did it open today"])[0] == pytest.approx(6 / 11)
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(1.0)
    assert bleu(["the cat sat on the mat"], ["dogs run"]) == pytest.approx(0.0)


# -- reading QA and text-to-text rows ---------------------------------------------------------------------


def _qa_row(context: str, question: str, texts: list[str], starts: list[int]) -> dict:
    return {"context": context, "question": question, "answers": {"text": texts, "answer_start": starts}}


def test_qa_rows_round_trip_with_several_references(tmp_path: Path) -> None:
    task = load_task("squad")
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps(_qa_row(CONTEXT, "What opened in 1889?", ["The Eiffel Tower", "Eiffel Tower"], [32, 36])) + "\n")
    (row,) = read_jsonl(path, task)
    assert row.label == "The Eiffel Tower" and row.answers == (Answer("The Eiffel Tower", 32), Answer("Eiffel Tower", 36))
    assert task.spec.gold(row) == ["The Eiffel Tower", "Eiffel Tower"]
    write_jsonl(tmp_path / "back.jsonl", [row])
    assert read_jsonl(tmp_path / "back.jsonl", task) == [row]


@pytest.mark.parametrize(
    ("task_name", "row", "needles"),
    [
        ("squad", _qa_row(CONTEXT, "Q?", ["Berlin"], [0]), ["not in the context at 0"]),
        ("squad", {"context": CONTEXT, "answers": {"text": ["Paris"], "answer_start": [0]}}, ["missing field 'question'"]),
        ("squad", _qa_row(CONTEXT, "Q?", [], []), ["no answer"]),
        ("squad", {"context": CONTEXT, "question": "Q?", "answers": "Paris"}, ["'answers' must be"]),
        ("squad-qg", {**_qa_row(CONTEXT, "", ["Paris"], [0])}, ["empty 'question'"]),
    ],
)
def test_bad_qa_and_text_to_text_rows_are_one_line_naming_file_and_line(
    tmp_path: Path, task_name: str, row: dict, needles: list[str]
) -> None:
    path = tmp_path / "train.jsonl"
    good = _qa_row(CONTEXT, "Where is the tower?", ["Paris"], [0])
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError) as info:
        read_examples(path, load_task(task_name))
    text = str(info.value)
    assert f"{path}:2" in text and "\n" not in text
    for needle in needles:
        assert needle in text


def test_squad_qg_reads_the_squad_files(data_dir: Path) -> None:
    task = load_task("squad-qg")
    rows = read_examples(data_dir / "squad" / "dev.jsonl", task)[:20]
    raw = [json.loads(line) for line in (data_dir / "squad" / "dev.jsonl").read_text().splitlines()[:20]]
    assert [r.label for r in rows] == [r["question"] for r in raw]
    assert [r.inputs["answer"] for r in rows] == [r["answers"]["text"][0] for r in raw]
    assert "Answer: " in task.source(rows[0]) and rows[0].inputs["context"] in task.source(rows[0])


# -- the k-example sampler --------------------------------------------------------------------------------


def test_k_example_sampler(data_dir: Path) -> None:
    task = load_task("adversarialqa")
    pool = read_examples(data_dir / "adversarialqa" / "train.jsonl", task)
    split = sample_fewshot(pool, [], task, 32, 13)
    assert len(split.train) == len(split.dev) == 32
    assert not {e.id for e in split.train} & {e.id for e in split.dev}
    assert [e.id for e in sample_fewshot(pool, [], task, 32, 13).train] == [e.id for e in split.train]
    assert [e.id for e in sample_fewshot(pool, [], task, 32, 21).train] != [e.id for e in split.train]
    with pytest.raises(DataError, match="too few pool examples for 600 shots"):
        sample_fewshot(pool, [], task, 600, 13)


# -- custom task files ------------------------------------------------------------------------------------


def test_custom_text_to_text_task_file(tmp_path: Path) -> None:
    path = tmp_path / "headline.yaml"
    path.write_text(
        "name: headline\ntype: text-to-text\ndescription: news headline\ninputs: [article]\ntarget: headline\n"
        "columns: {label: title}\ntemplates:\n  source: 'Article: {article}'\n"
        "  generation: 'Write a short news article and its headline.'\n"
    )
    task = load_task(str(path))
    assert (task.kind, task.input_fields, task.generated_fields, task.target) == (
        "text-to-text",
        ("article",),
        ("article", "label"),
        "headline",
    )
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"article": "Rain fell.", "title": "Wet day"}) + "\n")
    (row,) = read_examples(data, task)
    assert (row.inputs, row.label, task.source(row)) == ({"article": "Rain fell."}, "Wet day", "Article: Rain fell.")
    assert task.generation_prompt() == "Write a short news article and its headline."


def test_qa_task_file_needs_no_labels_and_refuses_them(tmp_path: Path) -> None:
    path = tmp_path / "qa.yaml"
    path.write_text("name: myqa\ntype: extractive-qa\ndescription: manual page\n")
    assert load_task(str(path)).metrics == ("exact_match", "f1")
    path.write_text("name: myqa\ntype: extractive-qa\ndescription: manual page\nlabels: {a: b, c: d}\n")
    with pytest.raises(TaskError, match="has no labels"):
        load_task(str(path))


def test_qa_generation_prompt_gives_context_and_answer() -> None:
    task = load_task("adversarialqa")
    parent = Example({"context": CONTEXT, "question": ""}, "Paris", answers=(Answer("Paris", 0),))
    prompt = task.generation_prompt("", parent)
    assert CONTEXT in prompt and '"Paris"' in prompt and "{" not in prompt
