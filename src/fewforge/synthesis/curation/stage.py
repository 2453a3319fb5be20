"""Curation as a post-processing stage of any method's set: audit every row, then keep, filter, relabel
or weight — every row's audit in its lineage, every drop in `dropped` with its reason, the counts in
the data card.

Each row's lineage gets `audit = {auditor, score, predicted, probs}`: `score` is the auditor's
probability of the row's intended label (the label it was generated for), `predicted` the auditor's
likeliest label. Then, by `action`:
- `keep`: nothing else changes;
- `filter`: rows scoring below `threshold` are dropped ("audit_threshold"), or, with `bottom`, the
  lowest-scoring share of each label's rows (ties: later rows first; "audit_bottom"), which keeps the
  labels balanced;
- `relabel`: a row whose auditor prefers another label with probability >= `confidence` takes that
  label; `audit.relabelled_from` keeps the old one (`score` stays the old label's probability);
- `weight`: `lineage["weight"]` = the score, divided by the set's mean score with `normalize` (so the
  synthetic rows keep their total weight and only their balance changes); every learner that trains on
  the set multiplies each row's loss by it (learners/loop.py; the linear probe and SetFit's head through
  scikit-learn's sample_weight).

With `overgenerate` above 1, the method was asked for more rows than the set keeps (the pipeline sizes
it); after the action, each label keeps its `per_label` rows that score highest for the label they end
with, and the rest are dropped ("audit_surplus"). A filtered set is so topped back up to `per_label`
from the same generation run, rather than shrinking; with action keep it selects the rows the auditor
finds likeliest (SuperGen selects by the generator's own probability of each row instead).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import Any, Mapping, Sequence

from fewforge.data.schema import Example
from fewforge.errors import ConfigError
from fewforge.synthesis.base import SyntheticDataset
from fewforge.synthesis.curation.base import AuditContext, CurateConfig
from fewforge.synthesis.curation.registry import get_auditor
from fewforge.tasks.kinds import kind_names

REASONS = {
    "audit_threshold": "the auditor's probability of the row's label is below the threshold",
    "audit_bottom": "among the lowest-scoring share of its label's rows (filter bottom)",
    "audit_surplus": "beyond per_label for its label, after the rows that score higher (overgenerate)",
}
HISTOGRAM_BINS = 10


def curate(
    dataset: SyntheticDataset, config: CurateConfig | Mapping[str, Any], ctx: AuditContext, per_label: int | None = None
) -> SyntheticDataset:
    """The set after the audit and the action (and, given `per_label`, at most that many rows per label, best
    scored first); `dataset` itself is not changed."""
    config = config if isinstance(config, CurateConfig) else CurateConfig.model_validate(dict(config))
    task = ctx.task
    if not task.is_classification:
        raise ConfigError(
            f"curation audits class labels, and task {task.name!r} is {task.kind}",
            hint=f"curate classification sets ({', '.join(kind_names(classification=True))}) only",
        )
    auditor = get_auditor(config.auditor, config.options)
    started = time.perf_counter()
    rows = list(dataset.examples)
    audit = auditor.audit(ctx, rows)
    labels = task.label_names
    scored: list[tuple[Example, float, str, list[float]]] = []
    for e, probs in zip(rows, audit.probs, strict=True):
        best = max(range(len(labels)), key=lambda k: probs[k])
        scored.append((e, probs[labels.index(e.label)], labels[best], probs))

    drop = _to_drop(config, [(e.label, s) for e, s, _, _ in scored])
    kept: list[Example] = []
    dropped: list[dict[str, Any]] = []
    relabelled: list[tuple[str, str]] = []
    for i, (e, score, predicted, probs) in enumerate(scored):
        record: dict[str, Any] = {"auditor": auditor.name, "score": score, "predicted": predicted,
                                  "probs": dict(zip(labels, probs))}
        label = e.label
        if config.action == "relabel" and predicted != e.label and probs[labels.index(predicted)] >= config.confidence:
            record["relabelled_from"], label = e.label, predicted
            relabelled.append((e.label, predicted))
        if i in drop:
            dropped.append(_dropped(e, drop[i], score, predicted, auditor.name))
            continue
        kept.append(replace(e, label=label, lineage={**e.lineage, "audit": record}))
    if per_label is not None:
        kept, surplus = _best_per_label(kept, per_label)
        for e in surplus:
            a = e.lineage["audit"]
            dropped.append(_dropped(e, "audit_surplus", a["probs"][e.label], a["predicted"], auditor.name))
    weights = _weights(config, kept)
    if weights is not None:
        kept = [replace(e, lineage={**e.lineage, "weight": w}) for e, w in zip(kept, weights)]

    card = dict(dataset.card)
    card["curation"] = {
        "config": config.model_dump(mode="json"),
        "auditor": {"name": auditor.name, "reads_fewshot": auditor.reads_fewshot, **audit.info},
        "before": len(rows),
        "after": len(kept),
        "agreement": round(sum(p == e.label for e, _, p, _ in scored) / len(scored), 4) if scored else None,
        "per_label": _per_label(labels, scored, drop, relabelled),
        "dropped": {r: n for r in REASONS if (n := sum(d["reason"] == r for d in dropped))},
        "reasons": {r: REASONS[r] for r in {d["reason"] for d in dropped}},
        "per_label_kept": per_label,
        # labels that even the overgenerated rows could not fill (raise overgenerate, or loosen the filter)
        "shortfall": {label: per_label - n for label in labels
                      if (n := sum(e.label == label for e in kept)) < per_label} if per_label else {},
        "relabelled": len(relabelled),
        "weights": _summary(weights) if weights is not None else None,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return SyntheticDataset(examples=kept, card=card, dropped=[*dataset.dropped, *dropped])


def _to_drop(config: CurateConfig, rows: Sequence[tuple[str, float]]) -> dict[int, str]:
    """Row index -> reason for the rows `filter` drops."""
    if config.action != "filter":
        return {}
    if config.threshold is not None:
        return {i: "audit_threshold" for i, (_, s) in enumerate(rows) if s < config.threshold}
    out: dict[int, str] = {}
    assert config.bottom is not None
    for label in dict.fromkeys(label for label, _ in rows):
        idx = [i for i, (g, _) in enumerate(rows) if g == label]
        n = int(config.bottom * len(idx) + 1e-9)
        for i in sorted(idx, key=lambda i: (rows[i][1], -i))[:n]:  # lowest first; on ties the later row goes
            out[i] = "audit_bottom"
    return out


def _dropped(e: Example, reason: str, score: float, predicted: str, auditor: str) -> dict[str, Any]:
    return {"id": e.id, "label": e.label, "reason": reason, "score": round(score, 6), "predicted": predicted,
            "auditor": auditor, "text": " ".join(e.inputs.values())[:300]}


def _best_per_label(rows: Sequence[Example], per_label: int) -> tuple[list[Example], list[Example]]:
    """(kept, surplus): each label's `per_label` rows that score highest for it (ties: earlier rows), in
    the set's order."""
    by_label: dict[str, list[int]] = {}
    for i, e in enumerate(rows):
        by_label.setdefault(e.label, []).append(i)
    keep = {i for idx in by_label.values()
            for i in sorted(idx, key=lambda i: (-rows[i].lineage["audit"]["probs"][rows[i].label], i))[:per_label]}
    return [e for i, e in enumerate(rows) if i in keep], [e for i, e in enumerate(rows) if i not in keep]


def _weights(config: CurateConfig, kept: Sequence[Example]) -> list[float] | None:
    if config.action != "weight":
        return None
    scores = [e.lineage["audit"]["score"] for e in kept]
    mean = statistics.fmean(scores) if scores else 0.0
    return [s / mean for s in scores] if config.normalize and mean > 0 else list(scores)


def _per_label(labels: list[str], scored: Sequence[tuple], drop: Mapping[int, str], relabelled: Sequence[tuple[str, str]]) -> dict:
    """Per intended label: rows scored, dropped, relabelled away (out) and onto it (in), score summary."""
    out = {}
    for label in labels:
        idx = [i for i, (e, *_) in enumerate(scored) if e.label == label]
        scores = [scored[i][1] for i in idx]
        out[label] = {
            "scored": len(idx),
            "dropped": sum(i in drop for i in idx),
            "relabelled_out": sum(old == label for old, _ in relabelled),
            "relabelled_in": sum(new == label for _, new in relabelled),
            "agreement": round(sum(scored[i][2] == label for i in idx) / len(idx), 4) if idx else None,
            **(_summary(scores) or {}),
            "histogram": _histogram(scores),
        }
    return out


def _summary(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"mean": round(statistics.fmean(values), 4), "min": round(min(values), 4),
            "median": round(statistics.median(values), 4), "max": round(max(values), 4)}


def _histogram(scores: Sequence[float]) -> list[int]:
    """Counts of scores in [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0]: the report's histogram per label."""
    counts = [0] * HISTOGRAM_BINS
    for s in scores:
        counts[min(int(s * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] += 1
    return counts
