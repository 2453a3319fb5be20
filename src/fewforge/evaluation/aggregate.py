"""Summaries over seeds: one group per grid point (every axis but the seed), with mean ± std of each
metric and, for every condition other than real-only, the comparison with the real-only baseline of
the same task, shots and learner: Δ of the primary metric, a paired test over seeds and a bootstrap
confidence interval over test examples (evaluation/stats.py).

A record is one cell's result:
    {"cell", "task", "shots", "seed", "learner", "condition", "method", "per_label",
     "metrics": {"accuracy": 0.84, ...}, "per_class_f1": {...}, "confusion": [[...]], ...}
Real-only cells have method and per_label None: one real-only cell serves every method of the grid.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping, Sequence

from fewforge.errors import DataError
from fewforge.evaluation.shortfall import synthetic_rows
from fewforge.evaluation.stats import bootstrap_ci, paired_p

AXES = ("task", "shots", "learner", "condition", "method", "per_label", "strategy")
BASELINE = "real"

Group = dict[str, Any]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1); the std of a single value is 0.0."""
    if not values:
        raise DataError("no values to aggregate")
    mean = math.fsum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def group_key(record: Mapping[str, Any]) -> tuple:
    return tuple(record.get(axis) for axis in AXES)


def baseline_key(key: tuple, baselines: Mapping[str, str] | None = None) -> tuple:
    """The real-only group a group is compared with: same task and shots, and the same learner unless
    `baselines` names another for it (a variant such as prompt-tuning+ls against prompt-tuning)."""
    task, shots, learner, *_ = key
    return (task, shots, (baselines or {}).get(learner, learner), BASELINE, None, None, None)


def summarize(
    records: Iterable[Mapping[str, Any]],
    *,
    scores: Callable[[Mapping[str, Any]], Any] | None = None,
    primary: Callable[[str], str] = lambda task: "accuracy",
    baselines: Mapping[str, str] | None = None,
) -> list[Group]:
    """One group per grid point, in first-seen order. `scores(record)` returns the cell's per-example
    scores of the primary metric (for the bootstrap); `primary(task)` names that metric; `baselines`
    maps a learner to the learner whose real-only groups are its baseline (default: itself)."""
    records = list(records)
    seen: dict[tuple, int] = {}
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for i, record in enumerate(records):
        missing = [k for k in (*AXES[:4], "seed", "metrics") if k not in record]
        if missing:
            raise DataError(f"result record {i} lacks {missing}", hint=f"record: {dict(record)}"[:300])
        cell = (*group_key(record), record["seed"])
        if cell in seen:
            raise DataError(f"records {seen[cell]} and {i} are the same cell {cell}")
        seen[cell] = i
        groups.setdefault(group_key(record), []).append(record)

    out: list[Group] = []
    for key, rows in groups.items():
        rows = sorted(rows, key=lambda r: r["seed"])
        group: Group = dict(zip(AXES, key))
        group["seeds"] = [r["seed"] for r in rows]
        group["n"] = len(rows)
        names: list[str] = []
        for r in rows:
            names += [m for m in r["metrics"] if m not in names]
        group["metrics"] = {}
        for name in names:
            values = [float(r["metrics"][name]) for r in rows if r["metrics"].get(name) is not None]
            if values:
                mean, std = mean_std(values)
                group["metrics"][name] = {"mean": mean, "std": std, "n": len(values)}
        group["training"] = training_facts(rows)
        # classification unless the records say they have no labels (QA and text-to-text write labels: [])
        group["classes"] = not all("labels" in r and not r["labels"] for r in rows)
        group["per_class_f1"] = _mean_per_class(rows)
        group["confusion"] = _sum_confusion(rows)
        group["vs_baseline"] = None
        base = baseline_key(key, baselines)
        if key[3] != BASELINE and base in groups:
            group["vs_baseline"] = _compare(rows, groups[base], primary(key[0]), scores)
            if base[2] != key[2]:
                group["baseline_learner"] = base[2]
        out.append(group)
    return out


def training_facts(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the records say about training: trainable parameters (the same in every seed), the mean
    gradient-conflict rate of gradient surgery, and the synthetic rows asked for and trained on."""
    trains = [r.get("train") or {} for r in rows]
    params = [t["trainable_parameters"] for t in trains if t.get("trainable_parameters") is not None]
    rates = [float(t["conflict_rate"]) for t in trains if t.get("conflict_rate") is not None]
    return {
        "trainable_parameters": max(params) if params else None,
        "conflict_rate": math.fsum(rates) / len(rates) if rates else None,
        **synthetic_rows(rows),  # asked for vs trained on (evaluation/shortfall.py)
    }


def _compare(rows, base_rows, metric: str, scores) -> dict[str, Any] | None:
    """Δ of `metric` against the baseline over the seeds both have, with p and the bootstrap CI."""
    base_by_seed = {r["seed"]: r for r in base_rows}
    pairs = [(r, base_by_seed[r["seed"]]) for r in rows if r["seed"] in base_by_seed]
    pairs = [(a, b) for a, b in pairs if a["metrics"].get(metric) is not None and b["metrics"].get(metric) is not None]
    if not pairs:
        return None
    values = [float(a["metrics"][metric]) for a, _ in pairs]
    base = [float(b["metrics"][metric]) for _, b in pairs]
    ci = None
    if scores is not None:
        import numpy as np

        cond_scores = [scores(a) for a, _ in pairs]
        base_scores = [scores(b) for _, b in pairs]
        if all(s is not None for s in (*cond_scores, *base_scores)):
            ci = bootstrap_ci(np.stack(cond_scores), np.stack(base_scores))
    return {
        "condition": BASELINE,
        "metric": metric,
        "delta": math.fsum(values) / len(values) - math.fsum(base) / len(base),
        "p": paired_p(values, base),
        "ci": list(ci) if ci is not None else None,
        "pairs": len(pairs),
    }


def _mean_per_class(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    tables = [r["per_class_f1"] for r in rows if r.get("per_class_f1")]
    if not tables:
        return {}
    return {label: math.fsum(t.get(label, 0.0) for t in tables) / len(tables) for label in tables[0]}


def _sum_confusion(rows: Sequence[Mapping[str, Any]]) -> list[list[int]] | None:
    tables = [r["confusion"] for r in rows if r.get("confusion")]
    if not tables:
        return None
    return [[sum(t[i][j] for t in tables) for j in range(len(tables[0][i]))] for i in range(len(tables[0]))]
