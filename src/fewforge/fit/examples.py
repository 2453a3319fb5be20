"""A user's handful of labeled rows, turned into a task and checked for what real files bring: one label
only, a label with a single row, label typos that make near-empty classes, empty and duplicate texts,
unknown layouts, mixed-up encodings. Each problem is one DataError naming the row and the fix, raised
before anything is written; duplicates that agree on the label are dropped and counted, never silently.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fewforge.data.io import read_examples
from fewforge.data.schema import Example
from fewforge.errors import DataError
from fewforge.fit.layout import Layout, RawRows, find_layout, label_values, read_raw
from fewforge.tasks.base import Task
from fewforge.tasks.kinds import get_kind

MIN_PER_LABEL = 2  # a stratified k-fold split keeps one row of each label on the training side


@dataclass
class UserRows:
    task: Task
    examples: list[Example]  # in file order, duplicates dropped
    where: dict[str, str]  # example id -> "file:line" / "file row N"
    layout: str  # how the task was found: "task file" or the layout's columns
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (dropped row, the row it repeats)
    notes: list[str] = field(default_factory=list)  # one-line remarks worth printing (verbalizers)

    def counts(self) -> dict[str, int]:
        return dict(Counter(e.label for e in self.examples)) if self.task.is_classification else {}


def load_user_rows(path: Path, task: Task | None = None, description: str | None = None) -> UserRows:
    """The user's rows (with the task inferred from the columns unless `task` is given), checked."""
    raw = read_raw(Path(path))
    if not raw.records:
        raise DataError(f"{path}: no rows", hint="the file needs a header line and one row per example")
    notes: list[str] = []
    if task is None:
        layout = find_layout(raw)
        task, notes = infer_task(raw, layout, description)
        how = layout.describe()
        columns = dict(layout.mapping)
    else:
        how, columns = "task file", {}
    examples = read_examples(raw.path, task, split=raw.split or "examples", columns=columns)
    where = {e.id: w for e, w in zip(examples, raw.where)}
    examples, duplicates = drop_duplicates(task, examples, where)
    rows = UserRows(task, examples, where, how, duplicates, notes)
    check_rows(rows)
    return rows


def infer_task(raw: RawRows, layout: Layout, description: str | None) -> tuple[Task, list[str]]:
    """The task a layout implies; labels (sorted) and their verbalizers come from the label names."""
    name = re.sub(r"[^0-9A-Za-z_-]+", "-", raw.path.stem).strip("-") or "examples"
    notes: list[str] = []
    labels: dict[str, str] = {}
    kind = get_kind(layout.kind)
    if kind.classification:
        found = label_values(raw, layout)
        check_label_typos(found)
        for label in sorted({label for label, _ in found}):
            labels[label] = verbalizer(label)
            if labels[label] != label:
                notes.append(
                    f"label {label!r} is not one word: prompts read it as {labels[label]!r} "
                    "(give --task FILE with a one-word verbalizer per label to choose the words)"
                )
        if len(labels) < 2:
            only = found[0][0]
            raise DataError(
                f"{raw.path}: every row has the label {only!r}; a classifier needs two labels or more",
                hint="add rows of at least one other label (8 or more per label give a useful estimate)",
            )
    task = Task(
        name=name,
        kind=layout.kind,
        labels=labels,
        # what generation prompts call a row ("Write a {label} {description}.") unless --description says
        description=description or kind.fit_description,
        columns=dict(layout.mapping),
        inputs=layout.inputs,
        **({"target": layout.target} if layout.target else {}),
    )
    return task, notes


def verbalizer(label: str) -> str:
    """A label's word in prompts: the label itself when it is one word, else its words joined by spaces."""
    if re.fullmatch(r"[^\W_]+", label):
        return label
    return " ".join(re.split(r"[\W_]+", label)).strip() or label


def check_label_typos(found: list[tuple[str, str]]) -> None:
    """A rare label spelled almost like a frequent one ("Positive" next to 15 "positive") is a typo that
    would make a near-empty class: an error naming its rows."""
    counts = Counter(label for label, _ in found)
    for small, n_small in sorted(counts.items(), key=lambda kv: kv[1]):
        for big, n_big in counts.most_common():
            if big == small or n_big <= n_small or n_small > max(2, n_big // 4):
                continue
            same = _squash(small) == _squash(big)
            if same or difflib.SequenceMatcher(None, small.lower(), big.lower()).ratio() >= 0.8:
                rows = [w for label, w in found if label == small]
                shown = ", ".join(rows[:3]) + (f" and {len(rows) - 3} more" if len(rows) > 3 else "")
                raise DataError(
                    f"{shown}: label {small!r} ({n_small} row{'s' if n_small > 1 else ''}) looks like a typo of "
                    f"{big!r} ({n_big} rows)",
                    hint=f"write {big!r} there (labels are compared exactly); if they are two classes, pass "
                    "--task FILE listing both",
                )


def _squash(label: str) -> str:
    return re.sub(r"[\W_]+", "", label.casefold())


def drop_duplicates(
    task: Task, examples: list[Example], where: dict[str, str]
) -> tuple[list[Example], list[tuple[str, str]]]:
    """Rows whose inputs repeat an earlier row's (whitespace aside) are dropped, when they agree on the
    target; a repeat with another label is an error (which label is right is the user's call)."""
    first: dict[tuple[str, ...], Example] = {}
    kept, dropped = [], []
    for e in examples:
        key = tuple(" ".join(e.inputs[f].split()) for f in task.input_fields)
        earlier = first.get(key)
        if earlier is None:
            first[key] = e
            kept.append(e)
        elif earlier.label == e.label or not task.is_classification:
            if earlier.label == e.label:
                dropped.append((where[e.id], where[earlier.id]))
            else:
                kept.append(e)  # one input with two reference outputs: both are real examples
        else:
            raise DataError(
                f"{where[e.id]}: repeats the text of {where[earlier.id]} with another label "
                f"({e.label!r} vs {earlier.label!r})",
                hint="keep the row with the right label and remove the other",
            )
    return kept, dropped


def check_rows(rows: UserRows) -> None:
    task, examples = rows.task, rows.examples
    if not task.is_classification:
        if len(examples) < MIN_PER_LABEL:
            raise DataError(
                f"only {len(examples)} example left after dropping duplicates",
                hint=f"the k-fold estimate needs {MIN_PER_LABEL} or more (8 or more give a useful estimate)",
            )
        return
    counts = Counter(e.label for e in examples)
    present = [label for label in task.label_names if counts[label]]
    if len(present) < 2:
        raise DataError(
            f"every row has the label {present[0]!r}; a classifier needs two labels or more",
            hint="add rows of at least one other label (8 or more per label give a useful estimate)",
        )
    for label in task.label_names:
        n = counts[label]
        if n >= MIN_PER_LABEL:
            continue
        if n == 0:
            raise DataError(
                f"label {label!r} of task {task.name!r} has no rows",
                hint=f"add {MIN_PER_LABEL} or more rows of it, or remove it from the task file",
            )
        row = next(rows.where[e.id] for e in examples if e.label == label)
        raise DataError(
            f"{row}: label {label!r} has only this row; the k-fold estimate needs {MIN_PER_LABEL} or more rows "
            "of every label",
            hint=f"add at least {MIN_PER_LABEL - n} more {label!r} row (8 or more per label give a useful "
            "estimate), or remove this one",
        )
