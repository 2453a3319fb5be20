"""Every registered kind answers what the methods and learners ask of it (tasks/kinds/base.py): a new
kind is covered here without a new test, and a hook it gets wrong fails here, not in a method's branch."""

from __future__ import annotations

import pytest

from fewforge.data.schema import Example
from fewforge.learners import LEARNERS
from fewforge.synthesis.daftt.teacher import definition, input_fields
from fewforge.synthesis.s3.prompts import prompts_for
from fewforge.tasks.builtin import BUILTIN_TASKS
from fewforge.tasks.kinds import KINDS


def _task_and_row(kind: str):
    """A built-in task of `kind` and a row of it whose every input field holds one sentence (a QA answer,
    "London", is a span of it)."""
    task = next(t for t in BUILTIN_TASKS.values() if t.kind == kind)
    inputs = {f: "The river Thames flows through London." for f in task.input_fields}
    label = task.label_names[0] if task.is_classification else "London"
    return task, Example(inputs, label, id="row-1")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_words_a_teacher_prompt_and_decodes_its_answers(kind):
    task, row = _task_and_row(kind)
    for mode in ("annotate", "generate"):
        assert task.description in definition(task, mode) or task.given_fields
        lines = input_fields(task, mode, row, row.label if task.is_classification else "")
        assert lines and all(isinstance(title, str) and value.strip() for title, value in lines)
    max_new_tokens, stop = task.spec.answer_limits()
    assert max_new_tokens >= 1 and isinstance(stop, tuple)
    assert task.spec.decode_answer(task, row, "   ") == "empty"
    decoded = task.spec.decode_answer(task, row, " London \nand more")
    assert isinstance(decoded, tuple) and decoded[0].startswith("London")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_names_registered_students_an_s3_table_and_a_file_layout(kind):
    task, _ = _task_and_row(kind)
    spec = KINDS[kind]
    for learner in (spec.default_student, spec.fit_learner, *spec.default_learners):
        assert learner in LEARNERS.names() and kind in LEARNERS.get(learner).kinds
    prompts_for(task)  # the kind's `s3_prompts` names a table
    assert spec.file_layouts and spec.card_words and spec.pipeline_tag
    assert not spec.rationales or spec.classification  # rationales lead to a label
