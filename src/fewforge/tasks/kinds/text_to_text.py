"""Text-to-text: named input fields, rendered by the task's source template, → one output text.

The task names its inputs (`inputs: [context, answer]`), where the target is found in its files
(`columns: {label: question}`; dotted paths reach into objects, e.g. `answers.text.0`), and a source
template for students (`{context}`, `{answer}`, ...). Few-shot sets are k examples. Generation copies the
task's `given` fields from a pool row and has the generator write the other inputs and the output.
Metrics: ROUGE-L (F) and BLEU.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from fewforge.errors import TaskError
from fewforge.tasks.kinds.base import FileLayout, TaskKind, sample_k_examples, text_value


class TextToTextKind(TaskKind):
    name = "text-to-text"
    classification = False
    default_learners = ("causal-lm",)
    default_student = "causal-lm"
    fit_learner = "causal-lm"
    file_layouts = (FileLayout(("source", "target"), {"label": "target"}, inputs=("source",), target="target"),)
    card_words = "text-to-text"
    pipeline_tag = "text-generation"
    input_fields = ("input",)
    default_generation = "Write one example of {description}.\n"
    max_new_tokens = 64
    stop = ("\n\n",)
    metrics = ("rouge_l", "bleu")
    # an instruct generator that restates its instruction ("Write a question about the context whose
    # answer is ...") instead of writing the output
    chatter = re.compile(r"^(?:write|generate|create) (?:a|an|the|one)\b|\bwhose answer is\b", re.I)

    def read_target(self, task, value: Any, inputs: Mapping[str, str], column: str, where: str) -> tuple[str, tuple]:
        return text_value(value, column, where), ()

    sample = staticmethod(sample_k_examples)  # type: ignore[assignment]

    def check_task(self, task) -> None:
        if "label" in self.fields(task):
            raise TaskError(f"task {task.name!r}: an input field cannot be called 'label'", hint="rename it")
