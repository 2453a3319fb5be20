"""The rows every stage passes around: real and synthetic examples, and few-shot splits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Answer:
    """One reference answer of an extractive QA row: its text and character offset in the context."""

    text: str
    start: int


@dataclass(frozen=True)
class Example:
    """One labeled example.

    `inputs` maps the task's input fields to text: {"text": ...} for single-sentence tasks,
    {"text_a": ..., "text_b": ...} for sentence pairs (later task kinds add their own fields, e.g.
    context/question). `label` is the target: a class label name for classification, the output text of
    text-to-text, the first reference answer of extractive QA (whose references are all in `answers`).
    `lineage` is empty for real data; for synthetic rows it records method, model, prompt,
    sampling params, seed and parent example id.
    """

    inputs: Mapping[str, str]
    label: str
    id: str = ""
    lineage: Mapping[str, Any] = field(default_factory=dict)
    answers: tuple[Answer, ...] = ()

    @property
    def text(self) -> str:
        """The first input field (the only one for single-sentence tasks)."""
        return next(iter(self.inputs.values()))

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {**self.inputs}
        if self.answers:  # the SQuAD layout, which the reader takes back
            record["answers"] = {"text": [a.text for a in self.answers], "answer_start": [a.start for a in self.answers]}
        else:
            record["label"] = self.label
        if self.id:
            record["id"] = self.id
        if self.lineage:
            record["lineage"] = dict(self.lineage)
        return record


@dataclass(frozen=True)
class FewShotSplit:
    """An LM-BFF split: k per class for train and a disjoint k per class for dev, plus the test set."""

    seed: int
    shots: int
    train: list[Example]
    dev: list[Example]
    test: list[Example]
