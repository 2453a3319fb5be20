"""Mean ± sample std over seeds, per condition and metric.

A record is one (condition, seed) result: {"condition": "real", "seed": 13, "accuracy": 0.84, ...}.
Every numeric field other than `seed` counts as a metric, unless `metrics` names them.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

from fewforge.errors import DataError

Summary = dict[str, dict[str, dict[str, float | int]]]  # condition -> metric -> {"mean", "std", "n"}
KEY_FIELDS = ("condition", "seed")


def _metric_names(records: Sequence[Mapping[str, Any]]) -> list[str]:
    names: list[str] = []
    for record in records:
        for key, value in record.items():
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if key not in KEY_FIELDS and numeric and key not in names:
                names.append(key)
    return names


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1); the std of a single value is 0.0."""
    if not values:
        raise DataError("no values to aggregate")
    mean = math.fsum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def aggregate(records: Iterable[Mapping[str, Any]], metrics: Sequence[str] | None = None) -> Summary:
    """{condition: {metric: {"mean", "std", "n"}}}.

    Conditions keep their first-seen order (the order an experiment ran them in, so the first is the
    baseline); metrics follow `metrics` or their first-seen order. A record lacking a metric is left
    out of that metric's n rather than counted as 0.
    """
    records = list(records)
    for i, record in enumerate(records):
        missing = [k for k in KEY_FIELDS if k not in record]
        if missing:
            raise DataError(f"result record {i} lacks {missing}", hint=f"record: {dict(record)}")
    names = list(metrics) if metrics is not None else _metric_names(records)
    seen: dict[tuple[str, Any], int] = {}
    for i, record in enumerate(records):
        key = (str(record["condition"]), record["seed"])
        if key in seen:
            raise DataError(f"records {seen[key]} and {i} are both condition {key[0]!r}, seed {key[1]!r}")
        seen[key] = i
    summary: Summary = {}
    for record in records:
        summary.setdefault(str(record["condition"]), {})
    for condition in summary:
        rows = [r for r in records if str(r["condition"]) == condition]
        for name in names:
            values = [float(r[name]) for r in rows if r.get(name) is not None]
            if not values:
                continue
            mean, std = mean_std(values)
            summary[condition][name] = {"mean": mean, "std": std, "n": len(values)}
    return summary
