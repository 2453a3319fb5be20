"""What a task kind declares: its input fields and target, which fields a generator writes, default
templates and stop strings, its few-shot sampler and its metrics. One module per kind, one registration
line in `kinds/__init__.py`; `Task` and every stage ask the kind instead of branching on its name.
"""

from __future__ import annotations

import random
import re
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

from fewforge.errors import ConfigError, DataError

if TYPE_CHECKING:
    from fewforge.data.schema import Example
    from fewforge.tasks.base import Task


class TaskKind(ABC):
    name: ClassVar[str]
    classification: ClassVar[bool] = True  # a label set, per-class sampling, class probabilities
    input_fields: ClassVar[tuple[str, ...]] = ()  # a text-to-text task names its own
    # Fields a generation prompt copies from a pool row (a pair's first sentence, a QA context); the other
    # input fields (and, outside classification, the target) are what the generator writes.
    given_fields: ClassVar[tuple[str, ...]] = ()
    target_given: ClassVar[bool] = False  # QA: the answer is chosen first, the generator writes the question
    one_line: ClassVar[bool] = False  # whether a generated field is one line (what follows explains it)
    default_cloze: ClassVar[str] = ""
    causal_cloze: ClassVar[str] = ""  # a cloze with {mask} last, for causal-LM learners
    default_generation: ClassVar[str] = ""
    max_new_tokens: ClassVar[int] = 64
    stop: ClassVar[tuple[str, ...]] = ()
    metrics: ClassVar[tuple[str, ...]] = ("accuracy", "macro_f1")
    chatter: ClassVar[re.Pattern[str] | None] = None  # kind-specific "talks about the task" matcher
    default_learners: ClassVar[tuple[str, ...]] = ()  # students a run uses when none is named (besides the grid's)
    target_column: ClassVar[str] = "label"  # where the target is in a data file (QA: "answers")

    # -- fields ------------------------------------------------------------------------------------------

    def fields(self, task: "Task") -> tuple[str, ...]:
        return task.inputs or self.input_fields

    def given(self, task: "Task") -> tuple[str, ...]:
        return task.given if task.given is not None else self.given_fields

    def generated(self, task: "Task") -> tuple[str, ...]:
        """Fields a generator writes, in the order a prompt asks for them ("label" is the target)."""
        rest = tuple(f for f in self.fields(task) if f not in self.given(task))
        return rest if self.classification or self.target_given else (*rest, "label")

    def conditions(self, task: "Task", rows: Sequence["Example"], rng: random.Random, **options: Any) -> list["Example"]:
        """The rows generation conditions on, from the pool: one per distinct value of the given fields,
        in the caller's (shuffled) order."""
        given = self.given(task)
        seen: set[tuple[str, ...]] = set()
        out = []
        for e in rows:
            key = tuple(e.inputs.get(f, "").strip() for f in given)
            if all(key) and key not in seen:
                seen.add(key)
                out.append(e)
        return out

    def condition_values(self, task: "Task", parent: "Example") -> dict[str, str]:
        """What a prompt and a generated row take from a condition row (its given fields; the target too
        when the kind chooses it first, stored under "label")."""
        values = {f: parent.inputs[f] for f in self.given(task)}
        if self.target_given:
            values["label"] = parent.label
        return values

    # -- reading rows -----------------------------------------------------------------------------------

    @abstractmethod
    def read_target(self, task: "Task", value: Any, inputs: Mapping[str, str], column: str, where: str) -> tuple[str, tuple]:
        """(label, answers) from a row's target `value` (read from `column`), given its parsed inputs."""

    def finish(self, task: "Task", fields: Mapping[str, str]) -> tuple[dict[str, str], tuple] | str:
        """A generated row's final (fields, answers) from its given + generated fields ("label": the
        target), or the reason to drop it (a key of postprocess.REASONS)."""
        return dict(fields), ()

    # -- few-shot sampling ------------------------------------------------------------------------------

    @abstractmethod
    def sample(self, task: "Task", pool: Sequence["Example"], order: list[int], shots: int) -> tuple[list, list]:
        """(train, dev) from the pool visited in `order` (LM-BFF's shuffle): `sample_k_per_class` or
        `sample_k_examples` below."""

    # -- scoring ----------------------------------------------------------------------------------------

    def gold(self, example: "Example") -> str | list[str]:
        """What a prediction is scored against: the label, or every reference answer."""
        return example.label

    def check_task(self, task: "Task") -> None:
        """Kind-specific checks of a task definition (a TaskError on a problem)."""


def sample_k_per_class(task: "Task", pool: Sequence["Example"], order: list[int], shots: int) -> tuple[list, list]:
    """LM-BFF: group the shuffled pool by label, first k of each for train, next k for dev."""
    by_label: dict[str, list[int]] = {}
    for i in order:
        by_label.setdefault(task.check_label(pool[i].label), []).append(i)
    short = [(label, len(by_label.get(label, []))) for label in task.labels if len(by_label.get(label, [])) < 2 * shots]
    if short:
        counts = ", ".join(f"{label!r} has {n}" for label, n in short)
        raise DataError(
            f"task {task.name!r}: too few pool examples for {shots} shots ({counts}; each class needs {2 * shots})",
            hint=f"lower --shots to at most {min(n for _, n in short) // 2} or add examples of those classes",
        )
    return (
        [pool[i] for rows in by_label.values() for i in rows[:shots]],
        [pool[i] for rows in by_label.values() for i in rows[shots : 2 * shots]],
    )


def sample_k_examples(task: "Task", pool: Sequence["Example"], order: list[int], shots: int) -> tuple[list, list]:
    """No classes: the first k of the shuffled pool for train, the next k for dev (S3's QA protocol)."""
    if len(pool) < 2 * shots:
        raise DataError(
            f"task {task.name!r}: too few pool examples for {shots} shots ({len(pool)}; train and dev need {2 * shots})",
            hint=f"lower --shots to at most {len(pool) // 2}",
        )
    return [pool[i] for i in order[:shots]], [pool[i] for i in order[shots : 2 * shots]]


def text_value(value: Any, column: str, where: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: field {column!r} must be text, got {value!r:.60}", hint="quote the text")
    if not value.strip():
        raise DataError(f"{where}: empty {column!r}", hint="fill in the text or remove the row")
    return value


def lookup(record: Mapping[str, Any], column: str) -> Any:
    """record[column], where a dotted column walks into objects and lists ("answers.text.0")."""
    if column in record:
        return record[column]
    value: Any = record
    for part in column.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def unknown_metric(task_name: str, unknown: list[str], known: Sequence[str]) -> ConfigError:
    return ConfigError(f"task {task_name!r} asks for unknown metrics {unknown}", hint=f"known metrics: {', '.join(known)}")
