"""`auto` ranks candidates on the kind's ranking metric. On a few held-out QA rows a few-shot student
almost never copies the answer span exactly: ranked on exact match every candidate scores 0, the real rows
alone win the tie and `auto` returned an empty set on every QA split. Token F1 credits the overlap.

The student is scripted (it proves the ranking, not learning): trained with synthetic rows it answers
each held-out row with part of the gold answer (F1 > 0, exact match 0); on the real rows alone, with a
word that is not in the answer. The search makes at most the full run's rows: a default search of 8 rows
for a set of 3 trained the QA student on rows the full run would never give it."""

from __future__ import annotations

import re
from pathlib import Path

from fewforge.data.schema import Answer, Example
from fewforge.evaluation.metrics import ranking_metric
from fewforge.synthesis import get_method
from fewforge.synthesis.base import SynthesisContext
from fewforge.tasks import load_task

CONTEXTS = [
    "Marie Curie won the Nobel Prize in Physics in 1903 and the Nobel Prize in Chemistry in 1911.",
    "The Amazon River flows through Brazil, Peru and Colombia, and its basin covers 7,000,000 square kilometres.",
    "The Ming dynasty rebuilt much of the Great Wall of China in the 1500s, and it draws 10 million visitors.",
    "Ada Lovelace wrote the first published algorithm for the Analytical Engine of Charles Babbage in 1843.",
]
ANSWERS = ["Nobel Prize in Physics", "Brazil, Peru and Colombia", "Great Wall of China", "Analytical Engine"]


def _row(i: int, question: str) -> Example:
    context, answer = CONTEXTS[i], ANSWERS[i]
    return Example({"context": context, "question": question}, answer, id=f"r{i}",
                   answers=(Answer(answer, context.index(answer)),))


class PartialStudent:
    def __init__(self, synthetic: list[Example]) -> None:
        self.synthetic = synthetic

    def predict(self, rows: list[Example]) -> list[str]:
        # a span overlapping the answer when synthetic rows were seen, else a word outside every answer
        return [e.label.split()[0] if self.synthetic else "kilometres" for e in rows]


def test_auto_ranks_qa_candidates_on_token_f1_and_keeps_the_one_that_helps(fake_generator, tmp_path: Path) -> None:
    task = load_task("squad")
    assert ranking_metric(task) == "f1" and task.metrics[0] == "exact_match"
    rows = [_row(i, f"What is named in passage {i}?") for i in range(4)]
    trained: list[int] = []

    def train_learner(train, dev, synthetic, name, options):
        trained.append(len(synthetic))
        return PartialStudent(list(synthetic))

    def script(prompt: str, i: int) -> str:
        answer = re.search(r'whose answer is "(.+?)"', prompt).group(1)
        return f"Which {answer} is meant in case {i}?"

    method = get_method("auto", {"candidates": [{"name": "zerogen", "options": {"postprocess": {"near_dup": "ngram"}}}],
                                 "per_label": 3})  # the search's default 8 rows exceed the full set
    ctx = SynthesisContext(
        task=task, generator=fake_generator(script), seed=13, train=rows[:2], dev=rows[2:],
        pool=[_row(i, "Which one?") for i in range(4)], workdir=tmp_path, train_learner=train_learner,
    )
    dataset = method.synthesize(ctx)
    card = dataset.card["auto"]
    scores = {r["id"]: r["score"] for r in card["candidates"]}
    assert card["search_per_label"] == 3 and card["candidates"][1]["rows"] == 3  # never more than the full run
    assert card["metric"] == "f1" and card["selection"] == "cv"
    assert scores["none"] == 0.0 and scores["zerogen"] > 0.3  # exact match would have tied them at 0
    assert card["chosen"] == "zerogen" and len(dataset.examples) == 3
    assert all(e.lineage["chosen_by"] == "auto" for e in dataset.examples)
    assert trained.count(0) == card["folds"]  # `none`: one real-only student per fold
