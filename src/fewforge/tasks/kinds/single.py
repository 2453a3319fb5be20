"""Single-sentence classification: {text} → one of the task's labels."""

from __future__ import annotations

from typing import Any, Mapping

from fewforge.tasks.kinds.base import FileLayout, TaskKind, label_words, sample_k_per_class


class SingleKind(TaskKind):
    name = "single"
    input_fields = ("text",)
    default_cloze = "{text} It was {mask}."
    # Instruction-style so an instruct generator (the packaged SmolLM2) writes just the example.
    # for a causal LM when the cloze template puts text after {mask}: the answer must come last
    causal_cloze = "{text}\n{description}: {mask}"
    default_generation = "Write a {label} {description}."
    max_new_tokens = 64  # ZeroGen's 40 fits one sentence; a headline plus a few sentences needs more
    rationales = True  # S3 Alg. 1: reasons for a label (a review's "great acting") seed a text
    s3_prompts = "rationale"
    file_layouts = (FileLayout(("text", "label")),)
    card_words = "text classification"
    pipeline_tag = "text-classification"

    def teacher_definition(self, task, mode) -> str:
        if mode == "annotate":
            return f"Classify the {task.description}. Answer with one of: {label_words(task)}."
        return f"Write a {task.description} whose label is the input ({', '.join(task.label_names)})."

    def teacher_inputs(self, task, mode, example, label: str):
        if mode == "annotate":
            assert example is not None
            return [("", example.inputs["text"])]
        return [("", label)]

    def read_target(self, task, value: Any, inputs: Mapping[str, str], column: str, where: str) -> tuple[str, tuple]:
        return task.read_label(value, where), ()

    sample = staticmethod(sample_k_per_class)  # type: ignore[assignment]
