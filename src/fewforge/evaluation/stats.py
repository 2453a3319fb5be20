"""Significance and per-class statistics (scipy, scikit-learn).

Two questions, two tools:
- Does the difference hold across seeds? A paired t-test over seeds (`scipy.stats.ttest_rel`): each
  seed is one few-shot split *and* one synthetic set, so this p-value covers the variance of both.
  With 3 seeds it has little power: read it with the interval.
- How sure is the difference given the test set? A bootstrap confidence interval over test examples
  (`scipy.stats.bootstrap`, percentile method): per test example, the condition's score minus the
  baseline's, averaged over seeds (the same test rows in every seed), resampled with replacement. It
  covers test-set sampling, not seed variance.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

CONFIDENCE = 0.95
RESAMPLES = 2000


def paired_p(values: Sequence[float], baseline: Sequence[float]) -> float | None:
    """Two-sided paired t-test p-value over seeds; None with fewer than 2 pairs or no variation."""
    from scipy.stats import ttest_rel

    if len(values) != len(baseline) or len(values) < 2:
        return None
    diffs = [a - b for a, b in zip(values, baseline)]
    if max(diffs) - min(diffs) < 1e-12:  # identical differences: t is undefined
        return None
    p = float(ttest_rel(values, baseline).pvalue)
    return p if math.isfinite(p) else None


def bootstrap_ci(
    scores: Any, baseline: Any, *, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float] | None:
    """CI of mean(scores) - mean(baseline) over test examples; both (seeds, examples) arrays of
    per-example scores (accuracy: 1 correct, 0 wrong), paired by seed and example."""
    import numpy as np
    from scipy.stats import bootstrap

    scores, baseline = np.asarray(scores, dtype=float), np.asarray(baseline, dtype=float)
    if scores.shape != baseline.shape or scores.size == 0:
        return None
    diff = (scores - baseline).reshape(-1, scores.shape[-1]).mean(axis=0)
    if np.ptp(diff) == 0:
        return float(diff[0]), float(diff[0])
    result = bootstrap(
        (diff,),
        np.mean,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return float(low), float(high)


def per_class_f1(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    from sklearn.metrics import f1_score

    values = f1_score(list(gold), list(predicted), labels=list(labels), average=None, zero_division=0)
    return {label: float(v) for label, v in zip(labels, values)}


def confusion(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    """Rows: gold label, columns: predicted label, both in `labels` order."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(list(gold), list(predicted), labels=list(labels)).tolist()
