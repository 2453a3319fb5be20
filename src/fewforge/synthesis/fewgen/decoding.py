"""FewGen's released decoding (yumeng5/FewGen, src/gen_train_data.py and gen_train_data.sh), the tables
`decoding: fewgen` reads: the repetition penalty per task and label, and the neutral start words a
single-input row begins with (one drawn per row, written before the generated text).

FewGen's tables are keyed by its own task and label names; here they are spelled as fewforge's built-in
tasks spell them. Its QQP entry is left out (its "0"/"1" are swapped against GLUE's, PROTOCOLS §4), and a
task FewGen does not list gets 1.1 for single-input tasks (FewGen's value for both of its single-input
tasks, SST-2 and CoLA) and 1.0 (no penalty) for pairs.
"""

from __future__ import annotations

import random

from fewforge.tasks.base import Task

REPETITION_PENALTY: dict[str, dict[str, float]] = {
    "sst2": {"negative": 1.1, "positive": 1.1},
    "rte": {"entailment": 1.0, "not_entailment": 1.5},
    "qnli": {"entailment": 1.0, "not_entailment": 1.5},
    "mnli": {"entailment": 1.1, "neutral": 1.5, "contradiction": 1.1},
    "mrpc": {"equivalent": 1.0, "not_equivalent": 1.5},
}
SINGLE_INPUT_PENALTY, PAIR_PENALTY = 1.1, 1.0

# FewGen's fix_start_mapping["sst-2"]: a row starts with one of these, so rows do not all open alike.
START_WORDS: tuple[str, ...] = ("a", "one", "the", "this", "that", "i", "you", "it", "what")


def repetition_penalty(task: Task, label: str) -> float:
    """FewGen's repetition penalty for `label` of `task` (see the module docstring for unlisted tasks)."""
    default = PAIR_PENALTY if task.given_fields else SINGLE_INPUT_PENALTY
    return REPETITION_PENALTY.get(task.name, {}).get(label, default)


def start_word(words: tuple[str, ...] | list[str], seed: int, index: int) -> str:
    """The start word of request `index` (FewGen draws one per row; here drawn from the request's seed,
    so a rerun writes the same rows)."""
    return words[random.Random(f"{seed}:{index}").randrange(len(words))]
