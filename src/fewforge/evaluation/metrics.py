"""Classification metrics over label names, and `score`, which computes a task's metrics by name."""

from __future__ import annotations

from typing import Callable, Sequence

from fewforge.errors import ConfigError, DataError
from fewforge.tasks.base import Task


def _check(gold: Sequence[str], predicted: Sequence[str]) -> None:
    if len(gold) != len(predicted):
        raise DataError(f"{len(gold)} gold labels but {len(predicted)} predictions", hint="score one prediction per example")
    if not gold:
        raise DataError("no examples to score", hint="the test set is empty")


def accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float:
    _check(gold, predicted)
    return sum(g == p for g, p in zip(gold, predicted)) / len(gold)


def macro_f1(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str] | None = None) -> float:
    """Unweighted mean F1 over `labels` (default: every label seen in gold or predicted).

    Pass the task's labels so a class the model never predicts counts as F1 0 rather than vanishing.
    """
    from sklearn.metrics import f1_score

    _check(gold, predicted)
    labels = list(labels) if labels is not None else sorted(set(gold) | set(predicted))
    return float(f1_score(list(gold), list(predicted), labels=labels, average="macro", zero_division=0))


METRICS: dict[str, Callable[[Task, Sequence[str], Sequence[str]], float]] = {
    "accuracy": lambda task, gold, predicted: accuracy(gold, predicted),
    "macro_f1": lambda task, gold, predicted: macro_f1(gold, predicted, labels=task.label_names),
}


def score(task: Task, gold: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """{metric: value} for each of `task.metrics`, in that order."""
    unknown = [m for m in task.metrics if m not in METRICS]
    if unknown:
        raise ConfigError(
            f"task {task.name!r} asks for unknown metrics {unknown}", hint=f"known metrics: {', '.join(METRICS)}"
        )
    return {name: METRICS[name](task, gold, predicted) for name in task.metrics}


# Metrics that are a mean of per-example scores: the bootstrap CI resamples those scores.
PER_EXAMPLE: dict[str, Callable[[Task, Sequence[str], Sequence[str]], list[float]]] = {
    "accuracy": lambda task, gold, predicted: [float(g == p) for g, p in zip(gold, predicted)],
}


def primary_metric(task: Task) -> str:
    """The metric comparisons and Δ use: the task's first."""
    return task.metrics[0]


def per_example(task: Task, gold: Sequence[str], predicted: Sequence[str]) -> list[float] | None:
    """Per-example scores of the task's primary metric (None when it is not a per-example mean)."""
    fn = PER_EXAMPLE.get(primary_metric(task))
    return fn(task, gold, predicted) if fn is not None else None
