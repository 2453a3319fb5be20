"""An honest estimate without a test set: repeated stratified k-fold over the user's own rows.

Each repeat deals every label's rows round-robin over k folds in a seeded order (auto's
`stratified_folds`); each fold's held-out rows are predicted by a learner trained on the other folds
only — real rows alone, and real rows + a synthetic set that was itself made from those other folds
only (`synthesize_outside`, the same per-fold synthesis auto's search uses), so no held-out row ever
reaches training, a generation prompt or a method's choice. Both conditions train the same learner
with the same seed on the same rows, so their difference is paired fold by fold.

Intervals. k-fold scores are not independent (the training sets overlap), so a plain t-interval over
folds is too narrow. The estimate and the paired difference use the corrected resampled t interval of
Nadeau & Bengio (2003), as Bouckaert & Frank (2004) recommend for repeated k-fold:

    mean ± t(J-1, 0.975) · sqrt((1/J + n_test/n_train) · var)

over the J = k × repeats fold scores (or paired fold differences), n_test/n_train = 1/(k-1).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Sequence

from fewforge.data.schema import Example
from fewforge.fingerprint import derive_seed
from fewforge.synthesis.auto import stratified_folds
from fewforge.tasks.base import Task

CONFIDENCE = 0.95
REAL, SYNTHETIC = "real", "real+synthetic"


@dataclass(frozen=True)
class Fold:
    repeat: int
    index: int
    train: list[Example]
    held: list[Example]

    @property
    def name(self) -> str:
        return f"r{self.repeat}-f{self.index}"


def plan_folds(task: Task, rows: Sequence[Example], folds: int, repeats: int, seed: int) -> list[Fold]:
    """repeats × k stratified folds; k is lowered to the row count when there are fewer rows."""
    k = max(2, min(folds, len(rows)))
    out = []
    for r in range(repeats):
        for i, held in enumerate(stratified_folds(task, rows, k, derive_seed(seed, "fit-folds", r))):
            ids = {id(e) for e in held}
            out.append(Fold(r, i, [e for e in rows if id(e) not in ids], held))
    return out


def corrected_interval(values: Sequence[float], test_share: float, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high) by the corrected resampled t interval; `test_share` = n_test / n_train."""
    from scipy.stats import t

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean, mean
    var = statistics.variance(values)
    half = t.ppf(0.5 + confidence / 2, len(values) - 1) * math.sqrt((1 / len(values) + test_share) * var)
    return mean, mean - half, mean + half


def summarize(task: Task, records: dict[str, list[dict[str, Any]]], folds: int, n_rows: int) -> dict[str, Any]:
    """The estimate from per-fold records {condition: [{"fold", "gold", "predicted", "scores"}, ...]},
    folds in the same order for every condition: per condition its primary-metric estimate with an
    interval, every task metric over the pooled held-out predictions, and the paired difference."""
    from fewforge.evaluation.metrics import primary_metric, score

    metric = primary_metric(task)
    test_share = 1 / (folds - 1)
    out: dict[str, Any] = {"metric": metric, "folds": folds, "repeats": None, "rows": n_rows, "conditions": {}}
    fold_values: dict[str, list[float]] = {}
    for condition, fold_records in records.items():
        values = [statistics.fmean(r["scores"]) for r in fold_records]
        mean, low, high = corrected_interval(values, test_share)
        gold = [g for r in fold_records for g in r["gold"]]
        predicted = [p for r in fold_records for p in r["predicted"]]
        out["conditions"][condition] = {
            "estimate": mean,
            "low": max(low, 0.0),
            "high": min(high, 1.0),
            "per_fold": values,
            "pooled": score(task, gold, predicted),
            "synthetic_rows": [r.get("synthetic_rows", 0) for r in fold_records],
            "methods": [r["method"] for r in fold_records if r.get("method")],
        }
        fold_values[condition] = values
    out["repeats"] = len(next(iter(records.values()))) // folds if records else 0
    if REAL in fold_values and SYNTHETIC in fold_values:
        diffs = [b - a for a, b in zip(fold_values[REAL], fold_values[SYNTHETIC], strict=True)]
        mean, low, high = corrected_interval(diffs, test_share)
        out["difference"] = {"estimate": mean, "low": low, "high": high, "per_fold": diffs}
    return out


def verdict(summary: dict[str, Any]) -> str:
    """Which training data the final model uses: real + synthetic, unless the estimate says the synthetic
    rows clearly hurt (the whole interval of the paired difference below zero)."""
    diff = summary.get("difference")
    if SYNTHETIC not in summary["conditions"]:
        return REAL
    if diff is not None and diff["high"] < 0:
        return REAL
    return SYNTHETIC


def estimate_table(summary: dict[str, Any], labels: dict[str, str]) -> str:
    """The estimate as one Markdown table (printed by the CLI and kept in the model card)."""
    metric = summary["metric"]
    pooled_names = [m for m in next(iter(summary["conditions"].values()))["pooled"] if m != metric]
    head = f"| training data | {metric} (estimate) | 95% CI | " + " | ".join(pooled_names) + (" |" if pooled_names else "|")
    rule = "|---|---|---|" + "---|" * len(pooled_names)
    rows = [head, rule]
    for condition, c in summary["conditions"].items():
        others = " | ".join(_pct(c["pooled"][m]) for m in pooled_names)
        rows.append(
            f"| {labels.get(condition, condition)} | {_pct(c['estimate'])} | [{_pct(c['low'])}, {_pct(c['high'])}] | "
            + others + (" |" if others else "|")
        )
    diff = summary.get("difference")
    if diff is not None:
        rows.append(
            f"| difference (paired over {len(diff['per_fold'])} folds) | {_signed(diff['estimate'])} | "
            f"[{_signed(diff['low'])}, {_signed(diff['high'])}] |" + " |" * len(pooled_names)
        )
    return "\n".join(rows)


def describe_protocol(summary: dict[str, Any]) -> str:
    return (
        f"{summary['folds']}-fold cross-validation repeated {summary['repeats']}× over your {summary['rows']} rows "
        "(stratified by label; every row held out once per repeat; synthetic rows for each fold made from the "
        "other folds only); 95% CI: corrected resampled t interval over folds (Nadeau & Bengio 2003)"
    )


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _signed(value: float) -> str:
    return f"{100 * value:+.1f}"
