"""What a task kind declares: its input fields and target, which fields a generator writes, default
templates and stop strings, its few-shot sampler and its metrics, and the wording and capabilities the
methods and learners need (a DAFTT teacher's instruction and input lines, how an answer is decoded,
whether S3's rationales apply, which S3 prompt table it takes, its default students, the file layouts
`fewforge fit` recognises, what a model card calls it). One module per kind, one registration line in
`kinds/__init__.py`; `Task` and every stage ask the kind instead of branching on its name.
"""

from __future__ import annotations

import random
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping, Sequence

from fewforge.errors import ConfigError, DataError

if TYPE_CHECKING:
    from fewforge.data.schema import Example
    from fewforge.tasks.base import Task


TeacherMode = Literal["annotate", "generate"]  # DAFTT: the teacher labels pool rows, or writes new ones
Fields = list[tuple[str, str]]  # (title or "", value): the lines of a prompt's "Input:" section


@dataclass(frozen=True)
class FileLayout:
    """Columns that make a user's file a task of this kind (`fewforge fit` without a task file)."""

    columns: tuple[str, ...]  # all present: this layout
    mapping: Mapping[str, str] = field(default_factory=dict)  # task field -> column, where they differ
    inputs: tuple[str, ...] = ()  # the task's own input fields (text-to-text)
    target: str = ""  # what the target is called in prompts, when not the task's default


def field_title(name: str) -> str:
    """How a field is named in prompts: "text_b" -> "Text b", "context" -> "Context"."""
    return name.replace("_", " ").capitalize()


def label_words(task: "Task") -> str:
    """"great (positive), terrible (negative)": each label's verbalizer with its name."""
    return ", ".join(f"{word} ({label})" for label, word in task.labels.items())


def _titles(task: "Task", fields: Sequence[str]) -> list[str]:
    return [field_title(task.target if f == "label" else f) for f in fields]


def _join(titles: Sequence[str]) -> str:
    titles = [t.lower() for t in titles]
    return titles[0] if len(titles) == 1 else ", ".join(titles[:-1]) + " and " + titles[-1]


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
    # The per-example metric that ranks models and candidates on a handful of held-out rows (`auto`'s
    # search), when the primary metric is too coarse to tell them apart there; "": the primary metric.
    ranking_metric: ClassVar[str] = ""
    chatter: ClassVar[re.Pattern[str] | None] = None  # kind-specific "talks about the task" matcher
    default_learners: ClassVar[tuple[str, ...]] = ()  # students a run uses when none is named (besides the grid's)
    target_column: ClassVar[str] = "label"  # where the target is in a data file (QA: "answers")
    # the cheap student a method trains inside its own loop (S3's error finder, `auto`'s search)
    default_student: ClassVar[str] = "linear-probe"
    # What `fewforge fit` trains when no --learner is given: the best landed learner on the committed
    # results. Classification: SetFit + paired synthetic data was the best row on SST-2 (79.4,
    # docs/results/learners.md); on RTE every learner was within noise of chance and SetFit costs a
    # fraction of prompt tuning (docs/results/learners-rte.md). QA and text-to-text: the kind's own student.
    fit_learner: ClassVar[str] = "setfit"
    rationales: ClassVar[bool] = False  # S3 (Alg. 1): reasons for a label seed the generation prompt
    # which of S3's prompt tables the kind takes (synthesis/s3/prompts.py): "rationale" (Table 1's IMDb
    # shape), "qa" (AdQA's EES), "generation" (the task's own generation prompt)
    s3_prompts: ClassVar[str] = "generation"
    file_layouts: ClassVar[tuple[FileLayout, ...]] = ()
    fit_description: ClassVar[str] = "text"  # a `fewforge fit` task's description when none is given
    card_words: ClassVar[str] = ""  # a model card's "A ... model" (default: the kind's name)
    pipeline_tag: ClassVar[str] = ""  # the Hugging Face pipeline tag of its saved models

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

    # -- what methods ask of a kind -----------------------------------------------------------------------

    def teacher_definition(self, task: "Task", mode: TeacherMode) -> str:
        """SNI's task definition for a DAFTT teacher: what it is asked to do, in one or two sentences.
        This default serves kinds without classes whose fields the task names (text-to-text)."""
        d = task.description
        if mode == "annotate":
            return f"Given the {_join(_titles(task, task.input_fields))} ({d}), write the {task.target.lower()}."
        wanted = _join(_titles(task, task.generated_fields))
        if task.given_fields:
            return f"Given the {_join(_titles(task, task.given_fields))}, write the {wanted} ({d})."
        return f"Write one example of {d}: its {wanted}."

    def teacher_inputs(self, task: "Task", mode: TeacherMode, example: "Example | None", label: str) -> Fields:
        """A DAFTT teacher's "Input:" lines: a row's inputs (annotate), or what a new row is written from
        (generate: the label, the given fields of `example`)."""
        if mode == "annotate":
            assert example is not None
            return [(field_title(f), example.inputs[f]) for f in task.input_fields]
        if not task.given_fields:
            return [("", task.description)]
        assert example is not None
        given = self.condition_values(task, example)
        return [(field_title(task.target if f == "label" else f), given[f]) for f in task.given_fields]

    def answer_limits(self) -> tuple[int, tuple[str, ...]]:
        """(max new tokens, stop strings) when a teacher writes a row's target (DAFTT annotation)."""
        return self.max_new_tokens, self.stop

    def decode_answer(self, task: "Task", row: "Example", raw: str) -> tuple[str, tuple] | str:
        """A teacher's target for `row` from its raw completion, as (target, answers), or the reason to
        drop it (a key of postprocess.REASONS)."""
        target = " ".join(raw.split())
        return (target, ()) if target else "empty"


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
