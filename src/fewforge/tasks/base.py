"""A task: what the inputs are, which labels exist, and how to prompt for them.

Templates are `str.format` strings. Placeholders: the task's input fields ({text}, or {text_a} and
{text_b}), {label} (the label name), {word} (its verbalizer), {description} and, in cloze templates,
{mask} (the slot a prompt-based learner fills with a verbalizer word).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Literal, Mapping

from fewforge.data.schema import Example
from fewforge.errors import TaskError

TaskKind = Literal["single", "pair"]
INPUT_FIELDS: dict[str, tuple[str, ...]] = {"single": ("text",), "pair": ("text_a", "text_b")}

DEFAULT_CLOZE = {
    "single": "{text} It was {mask}.",
    "pair": "{text_a} ? {mask} , {text_b}",
}
# Instruction-style so an instruct generator (the packaged SmolLM2) writes just the example.
DEFAULT_GENERATION = {
    "single": "Write a {label} {description}.",
    "pair": (
        "Here is a {description}. Sentence 1: {text_a}\n"
        "Write Sentence 2 so that the relation between the two sentences is: {label}.\nSentence 2:"
    ),
}


@dataclass(frozen=True)
class Task:
    name: str
    kind: TaskKind
    labels: Mapping[str, str]  # label name -> verbalizer word (e.g. entailment -> "yes")
    description: str  # a short phrase like "movie review", used by the default templates
    cloze_template: str = ""
    # label -> generation prompt; a label missing here uses the generic template for the kind
    generation_templates: Mapping[str, str] = field(default_factory=dict)
    metrics: tuple[str, ...] = ("accuracy", "macro_f1")

    def __post_init__(self) -> None:
        if self.kind not in INPUT_FIELDS:
            raise TaskError(f"task {self.name!r}: unknown type {self.kind!r}", hint="use 'single' or 'pair'")
        if len(self.labels) < 2:
            raise TaskError(f"task {self.name!r}: needs at least two labels", hint="list them under `labels:`")
        if not self.cloze_template:
            object.__setattr__(self, "cloze_template", DEFAULT_CLOZE[self.kind])
        unknown = set(self.generation_templates) - set(self.labels)
        if unknown:
            raise TaskError(
                f"task {self.name!r}: generation templates for unknown labels {sorted(unknown)}",
                hint=f"labels are {list(self.labels)}",
            )
        # Each template is checked against what its caller fills in (`cloze` vs `generation_prompt`), so a
        # bad placeholder fails when the task loads, not as a KeyError in the middle of a run.
        cloze_allowed = {*self.input_fields, "mask", "description"}
        used = self._placeholders("cloze", self.cloze_template, cloze_allowed)
        missing = {*self.input_fields, "mask"} - used
        if missing:
            raise TaskError(
                f"task {self.name!r}: cloze template {self.cloze_template!r} lacks {sorted(missing)}",
                hint="a cloze template must place every input field and {mask}",
            )
        generation_allowed = {"label", "word", "description", *(("text_a",) if self.kind == "pair" else ())}
        for label, template in self.generation_templates.items():
            self._placeholders(f"generation ({label})", template, generation_allowed)

    def _placeholders(self, which: str, template: str, allowed: set[str]) -> set[str]:
        try:
            used = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        except ValueError as err:  # unbalanced braces
            raise TaskError(
                f"task {self.name!r}: {which} template {template!r} is not a valid format string ({err})",
                hint="write literal braces as {{ and }}",
            ) from None
        if used - allowed:
            raise TaskError(
                f"task {self.name!r}: {which} template {template!r} uses unknown placeholders {sorted(used - allowed)}",
                hint=f"allowed here: {sorted(allowed)}",
            )
        return used

    @property
    def input_fields(self) -> tuple[str, ...]:
        return INPUT_FIELDS[self.kind]

    @property
    def label_names(self) -> list[str]:
        return list(self.labels)

    def check_label(self, label: str) -> str:
        if label not in self.labels:
            raise TaskError(
                f"unknown label {label!r} for task {self.name!r}", hint=f"labels are {self.label_names}"
            )
        return label

    def generation_prompt(self, label: str, parent: Example | None = None) -> str:
        """The label-conditional prompt; pair tasks condition on a real first sentence (`parent`)."""
        self.check_label(label)
        template = self.generation_templates.get(label, DEFAULT_GENERATION[self.kind])
        values = {"label": label, "word": self.labels[label], "description": self.description}
        if self.kind == "pair":
            if parent is None:
                raise TaskError(f"task {self.name!r}: a pair prompt needs a first sentence to condition on")
            values["text_a"] = parent.inputs["text_a"]
        return template.format(**values)

    def cloze(self, example: Example, mask: str) -> str:
        """The classification prompt with `mask` in the label slot (prompt-based learners)."""
        return self.cloze_template.format(**example.inputs, mask=mask, description=self.description)

    def encoder_input(self, example: Example) -> tuple[str, str | None]:
        """(text, text_pair) for an encoder's tokenizer."""
        if self.kind == "pair":
            return example.inputs["text_a"], example.inputs["text_b"]
        return example.inputs["text"], None
