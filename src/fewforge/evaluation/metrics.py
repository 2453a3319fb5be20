"""Metrics by name, and `score`, which computes a task's metrics.

Classification metrics compare label names. Extractive QA uses SQuAD v1.1's official exact match and F1
(answer normalisation: lowercase, no punctuation, no articles a/an/the, single spaces; the best over a
row's references). Text-to-text uses ROUGE-L F-measure (`rouge-score`, Porter stemming, as in the DAFTT
and summarisation literature) and corpus BLEU (`sacrebleu`, its default 13a tokenisation). A gold item is a
label/reference string or a list of references. Scores are fractions in [0, 1] (BLEU is divided by 100).
"""

from __future__ import annotations

import collections
import re
import string
from functools import lru_cache
from typing import Callable, Sequence, Union

from fewforge.errors import ConfigError, DataError
from fewforge.tasks.base import Task

Gold = Union[str, Sequence[str]]


def _refs(gold: Gold) -> list[str]:
    return [gold] if isinstance(gold, str) else list(gold)


def _check(gold: Sequence[Gold], predicted: Sequence[str]) -> None:
    if len(gold) != len(predicted):
        raise DataError(f"{len(gold)} gold labels but {len(predicted)} predictions", hint="score one prediction per example")
    if not gold:
        raise DataError("no examples to score", hint="the test set is empty")


def accuracy(gold: Sequence[Gold], predicted: Sequence[str]) -> float:
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


# --- extractive QA: SQuAD v1.1's evaluate-v1.1.py, function for function ---------------------------------


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse whitespace (SQuAD v1.1)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


_PUNCTUATION = set(string.punctuation)


def _token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = collections.Counter(pred) & collections.Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match_scores(gold: Sequence[Gold], predicted: Sequence[str]) -> list[float]:
    _check(gold, predicted)
    return [
        float(max(normalize_answer(p) == normalize_answer(r) for r in _refs(g))) for g, p in zip(gold, predicted)
    ]


def f1_scores(gold: Sequence[Gold], predicted: Sequence[str]) -> list[float]:
    _check(gold, predicted)
    return [max(_token_f1(p, r) for r in _refs(g)) for g, p in zip(gold, predicted)]


# --- text-to-text ------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l_scores(gold: Sequence[Gold], predicted: Sequence[str]) -> list[float]:
    """ROUGE-L F-measure per example, the best over its references."""
    _check(gold, predicted)
    scorer = _rouge()
    return [max(scorer.score(r, p)["rougeL"].fmeasure for r in _refs(g)) for g, p in zip(gold, predicted)]


def bleu(gold: Sequence[Gold], predicted: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu defaults) over every reference, / 100."""
    import sacrebleu

    _check(gold, predicted)
    refs = [_refs(g) for g in gold]
    width = max(len(r) for r in refs)
    streams = [[r[i] if i < len(r) else r[0] for r in refs] for i in range(width)]  # sacrebleu: one stream per ref
    return float(sacrebleu.corpus_bleu(list(predicted), streams).score) / 100


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


METRICS: dict[str, Callable[[Task, Sequence[Gold], Sequence[str]], float]] = {
    "accuracy": lambda task, gold, predicted: accuracy(gold, predicted),
    "macro_f1": lambda task, gold, predicted: macro_f1(gold, predicted, labels=task.label_names),
    "exact_match": lambda task, gold, predicted: _mean(exact_match_scores(gold, predicted)),
    "f1": lambda task, gold, predicted: _mean(f1_scores(gold, predicted)),
    "rouge_l": lambda task, gold, predicted: _mean(rouge_l_scores(gold, predicted)),
    "bleu": lambda task, gold, predicted: bleu(gold, predicted),
}


def score(task: Task, gold: Sequence[Gold], predicted: Sequence[str]) -> dict[str, float]:
    """{metric: value} for each of `task.metrics`, in that order."""
    unknown = [m for m in task.metrics if m not in METRICS]
    if unknown:
        raise ConfigError(
            f"task {task.name!r} asks for unknown metrics {unknown}", hint=f"known metrics: {', '.join(METRICS)}"
        )
    return {name: METRICS[name](task, gold, predicted) for name in task.metrics}


# Metrics that are a mean of per-example scores: the bootstrap CI resamples those scores.
PER_EXAMPLE: dict[str, Callable[[Task, Sequence[Gold], Sequence[str]], list[float]]] = {
    "accuracy": lambda task, gold, predicted: [float(g == p) for g, p in zip(gold, predicted)],
    "exact_match": lambda task, gold, predicted: exact_match_scores(gold, predicted),
    "f1": lambda task, gold, predicted: f1_scores(gold, predicted),
    "rouge_l": lambda task, gold, predicted: rouge_l_scores(gold, predicted),
}


def primary_metric(task: Task) -> str:
    """The metric comparisons and Δ use: the task's first."""
    return task.metrics[0]


def ranking_metric(task: Task) -> str:
    """The metric that ranks candidates on a few held-out rows: the kind's `ranking_metric` when the task
    computes it (a task that lists its own metrics without it keeps its choice), else the primary one."""
    wanted = task.spec.ranking_metric
    return wanted if wanted and wanted in task.metrics else primary_metric(task)


def per_example(task: Task, gold: Sequence[Gold], predicted: Sequence[str], metric: str | None = None) -> list[float] | None:
    """Per-example scores of `metric` (default: the task's primary metric); None when it is not a
    per-example mean."""
    fn = PER_EXAMPLE.get(metric or primary_metric(task))
    return fn(task, gold, predicted) if fn is not None else None
