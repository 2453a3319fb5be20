"""Task kinds: one module each, registered here by the name a task file's `type:` uses."""

from __future__ import annotations

from fewforge.errors import TaskError
from fewforge.tasks.kinds.base import TaskKind
from fewforge.tasks.kinds.extractive_qa import ExtractiveQAKind
from fewforge.tasks.kinds.pair import PairKind
from fewforge.tasks.kinds.single import SingleKind
from fewforge.tasks.kinds.text_to_text import TextToTextKind

KINDS: dict[str, TaskKind] = {kind.name: kind for kind in (SingleKind(), PairKind(), ExtractiveQAKind(), TextToTextKind())}


def kind_names(classification: bool | None = None) -> tuple[str, ...]:
    """The registered kinds' names (only those with classes, or only those without, when asked): what a
    learner or method declares it serves, so a new kind is named in one place."""
    return tuple(n for n, k in KINDS.items() if classification is None or k.classification == classification)


def get_kind(name: str, task: str = "") -> TaskKind:
    if name not in KINDS:
        where = f"task {task!r}: " if task else ""
        raise TaskError(f"{where}unknown type {name!r}", hint=f"use one of: {', '.join(KINDS)}")
    return KINDS[name]


__all__ = ["KINDS", "TaskKind", "get_kind", "kind_names"]
