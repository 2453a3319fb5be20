"""Sentence-pair classification: {text_a}, {text_b} → a label. Generation keeps a real first sentence
(ZeroGen and FewGen condition NLI on the given premise) and writes the second, on one line."""

from __future__ import annotations

import re
from typing import Any, Mapping

from fewforge.tasks.kinds.base import FileLayout, TaskKind, label_words, sample_k_per_class


class PairKind(TaskKind):
    name = "pair"
    input_fields = ("text_a", "text_b")
    given_fields = ("text_a",)
    one_line = True  # SmolLM2 explains its second sentence on the lines after it
    default_cloze = "{text_a} ? {mask} , {text_b}"
    # for a causal LM when the cloze template puts text after {mask}: the answer must come last
    causal_cloze = "{text_a}\nQuestion: {text_b}\nAnswer: {mask}"
    default_generation = (
        "Here is a {description}. Sentence 1: {text_a}\n"
        "Write Sentence 2 so that the relation between the two sentences is: {label}.\nSentence 2:"
    )
    max_new_tokens = 48
    stop = ("\n\n",)
    # several column names for the two sentences (the first layout whose columns are all present wins)
    file_layouts = (
        FileLayout(("text_a", "text_b", "label")),
        FileLayout(("premise", "hypothesis", "label"), {"text_a": "premise", "text_b": "hypothesis"}),
        FileLayout(("sentence1", "sentence2", "label"), {"text_a": "sentence1", "text_b": "sentence2"}),
    )
    fit_description = "sentence pair"
    card_words = "sentence-pair classification"
    pipeline_tag = "text-classification"
    # A second sentence that discusses "the sentence", entailment or equivalence is an explanation.
    chatter = re.compile(
        r"\b(?:(?:the|this|that|first|second|original|given|above|two|both|each) sentences?\b|entail\w*|"
        r"(?:is|are) (?:not )?(?:equivalent|different|relevant|irrelevant)\W*$)|^(?:yes|no)\b",
        re.I,
    )

    def read_target(self, task, value: Any, inputs: Mapping[str, str], column: str, where: str) -> tuple[str, tuple]:
        return task.read_label(value, where), ()

    sample = staticmethod(sample_k_per_class)  # type: ignore[assignment]

    def teacher_definition(self, task, mode) -> str:
        d = task.description
        if mode == "annotate":
            return f"Classify the relation between Sentence 1 and Sentence 2 ({d}). Answer with one of: {label_words(task)}."
        return (f"Given a label and Sentence 1 ({d}), write Sentence 2 so that the relation between the two "
                f"sentences is the label ({', '.join(task.label_names)}).")

    def teacher_inputs(self, task, mode, example, label: str):
        assert example is not None
        if mode == "annotate":
            return [("Sentence 1", example.inputs["text_a"]), ("Sentence 2", example.inputs["text_b"])]
        return [("Label", label), ("Sentence 1", example.inputs["text_a"])]
