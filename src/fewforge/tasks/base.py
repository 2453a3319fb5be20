"""A task: what the inputs are, what the target is, and how to prompt for it.

The kind (`tasks/kinds/`: single, pair, extractive-qa, text-to-text) supplies the input fields, default
templates, few-shot sampler and metrics; a task names its labels (classification), description and
templates, and may override the kind's fields (text-to-text tasks name their own inputs).

Templates are `str.format` strings. Placeholders: the task's input fields ({text}, or {text_a} and
{text_b}, {context}, ...), {label} (the label name), {word} (its verbalizer), {description} and, in
cloze templates, {mask} (the slot a prompt-based learner fills with a verbalizer word). Generation
templates may use the fields the kind copies from a pool row ({text_a} of a pair, {context} of QA).
"""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass, field
from typing import Any, Mapping

from fewforge.data.schema import Example
from fewforge.errors import DataError, TaskError
from fewforge.tasks.kinds import get_kind
from fewforge.tasks.kinds.base import TaskKind, field_title  # field_title: where prompts import it

# the published prompt tables a task may name (S3 Table 1's IMDb and RTE prompts; synthesis/s3/prompts.py)
PUBLISHED_PROMPTS = ("s3-imdb", "s3-rte")


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # a registered kind: single | pair | extractive-qa | text-to-text
    labels: Mapping[str, str]  # label name -> verbalizer word (classification; empty otherwise)
    description: str  # a short phrase like "movie review", used by the default templates
    cloze_template: str = ""
    # label -> generation prompt; a label missing here uses the kind's generic template ("" for kinds
    # without labels)
    generation_templates: Mapping[str, str] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()  # empty: the kind's
    inputs: tuple[str, ...] = ()  # input fields, when not the kind's (text-to-text tasks name theirs)
    given: tuple[str, ...] | None = None  # fields generation copies from a pool row (None: the kind's)
    columns: Mapping[str, str] = field(default_factory=dict)  # field -> column in the data files ("a.b.0")
    target: str = "answer"  # what the target is called in prompts ("Question:" for question generation)
    source_template: str = ""  # how a text-to-text student sees the inputs (default: one "Field: value" line each)
    data: str = ""  # the data folder's name when not the task's (squad-qg reads squad/)
    # the published prompt table a method may take verbatim for this task's data: "s3-imdb" (S3 Table 1's
    # IMDb prompts, for SST-2, IMDb, Rotten Tomatoes), "s3-rte" (its RTE prompts); "" for none
    published_prompts: str = ""

    def __post_init__(self) -> None:
        spec = get_kind(self.kind, self.name)
        if self.published_prompts and self.published_prompts not in PUBLISHED_PROMPTS:
            raise TaskError(
                f"task {self.name!r}: unknown published_prompts {self.published_prompts!r}",
                hint=f"use one of {', '.join(PUBLISHED_PROMPTS)}, or leave it out for prompts built from the task",
            )
        if not self.metrics:
            object.__setattr__(self, "metrics", spec.metrics)
        if spec.classification and len(self.labels) < 2:
            raise TaskError(f"task {self.name!r}: needs at least two labels", hint="list them under `labels:`")
        if not spec.classification and self.labels:
            raise TaskError(f"task {self.name!r}: a {self.kind} task has no labels", hint="remove `labels:`")
        spec.check_task(self)
        if not self.cloze_template and spec.default_cloze:
            object.__setattr__(self, "cloze_template", spec.default_cloze)
        unknown = set(self.generation_templates) - (set(self.labels) if spec.classification else {""})
        if unknown:
            raise TaskError(
                f"task {self.name!r}: generation templates for unknown labels {sorted(unknown)}",
                hint=f"labels are {list(self.labels)}" if spec.classification else "give one template for the task",
            )
        # Each template is checked against what its caller fills in (`cloze` vs `generation_prompt`), so a
        # bad placeholder fails when the task loads, not as a KeyError in the middle of a run.
        if spec.classification:
            cloze_allowed = {*self.input_fields, "mask", "description"}
            used = self._placeholders("cloze", self.cloze_template, cloze_allowed)
            missing = {*self.input_fields, "mask"} - used
            if missing:
                raise TaskError(
                    f"task {self.name!r}: cloze template {self.cloze_template!r} lacks {sorted(missing)}",
                    hint="a cloze template must place every input field and {mask}",
                )
        if self.source_template:
            self._placeholders("source", self.source_template, {*self.input_fields, "description"})
        generation_allowed = {"label", "word", "description", *spec.given(self), *((self.target,) if spec.target_given else ())}
        for label, template in self.generation_templates.items():
            self._placeholders(f"generation ({label or 'all'})", template, generation_allowed)

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

    def definition(self) -> dict[str, Any]:
        """The task as data, for fingerprints. `published_prompts` is left out: it was chosen from the
        task's name and description before it was a field, so finished runs keep their fingerprints."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "published_prompts"}

    @property
    def spec(self) -> TaskKind:
        """The kind's behaviour (tasks/kinds/)."""
        return get_kind(self.kind)

    @property
    def is_classification(self) -> bool:
        return self.spec.classification

    @property
    def input_fields(self) -> tuple[str, ...]:
        return self.spec.fields(self)

    @property
    def given_fields(self) -> tuple[str, ...]:
        """Input fields generation copies from a pool row."""
        return self.spec.given(self)

    @property
    def generated_fields(self) -> tuple[str, ...]:
        """What a generator writes ("label" is the target of kinds without classes)."""
        return self.spec.generated(self)

    @property
    def label_names(self) -> list[str]:
        return list(self.labels)

    @property
    def groups(self) -> list[str]:
        """What synthesis balances over: the labels, or one group ("") for kinds without classes."""
        return self.label_names if self.is_classification else [""]

    def group(self, example: Example) -> str:
        return example.label if self.is_classification else ""

    def check_label(self, label: str) -> str:
        if not self.is_classification:
            return label
        if label not in self.labels:
            raise TaskError(
                f"unknown label {label!r} for task {self.name!r}", hint=f"labels are {self.label_names}"
            )
        return label

    def read_label(self, value: Any, where: str) -> str:
        """A label name from a raw row; numbers are refused (integer orders differ between data sets)."""
        names = ", ".join(self.labels)
        if isinstance(value, str) and value.strip() in self.labels:
            return value.strip()
        if value is None:
            raise DataError(f"{where}: missing field 'label'", hint=f"each row of task {self.name!r} needs a label")
        if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
            raise DataError(
                f"{where}: label {_short(value)} is a number; labels must be names",
                hint=f"write one of: {names} (integer orders differ between data sets, so they are not guessed)",
            )
        raise DataError(
            f"{where}: label {_short(value)} is not a label of task {self.name!r}", hint=f"valid labels: {names}"
        )

    def generation_prompt(self, label: str = "", parent: Example | None = None) -> str:
        """The (label-conditional) prompt; kinds with given fields condition on a pool row (`parent`)."""
        self.check_label(label)
        template = self.generation_templates.get(label) or self.generation_templates.get("") or self.spec.default_generation
        values = {"label": label, "word": self.labels.get(label, ""), "description": self.description}
        if self.given_fields:
            if parent is None or not all(parent.inputs.get(name) for name in self.given_fields):
                raise TaskError(
                    f"task {self.name!r}: a generation prompt needs {', '.join(self.given_fields)} to condition on"
                )
            given = self.spec.condition_values(self, parent)
            values.update({(self.target if name == "label" else name): value for name, value in given.items()})
        return template.format(**values)

    def cloze(self, example: Example, mask: str) -> str:
        """The classification prompt with `mask` in the label slot (prompt-based learners)."""
        return self.cloze_template.format(**example.inputs, mask=mask, description=self.description)

    def source(self, example: Example) -> str:
        """The input text a text-to-text student reads."""
        if self.source_template:
            return self.source_template.format(**example.inputs, description=self.description)
        return "\n".join(f"{field_title(f)}: {example.inputs[f]}" for f in self.input_fields)

    def encoder_input(self, example: Example) -> tuple[str, str | None]:
        """(text, text_pair) for an encoder's tokenizer."""
        fields = self.input_fields
        return example.inputs[fields[0]], (example.inputs[fields[1]] if len(fields) > 1 else None)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
