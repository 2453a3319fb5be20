"""The report's curation sections, as plain rows for the Markdown and HTML tables: what each curated set's
audit did (data card `curation`, synthesis/curation/stage.py), per label (score summary and histogram,
dropped, relabelled), example rows that were dropped, relabelled or scored lowest, and the weights that
`paired+reweight` learned (each cell record's `train.reweight`, learners/reweight.py).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from fewforge.evaluation.aggregate import group_key
from fewforge.evaluation.results import condition_label

EXAMPLES_PER_KIND = 5  # dropped / relabelled / lowest-scored rows shown per curated set
BARS = "▁▂▃▄▅▆▇█"

CURATION_NOTE = (
    "Each curated set's label audit: the auditor's probability of every row's intended label (its score), "
    "the share of rows whose likeliest label is the intended one (agreement), and what the action did. "
    "Histograms: the scores of each intended label's rows in ten bins from 0 to 1 (before any drop)."
)
REWEIGHT_NOTE = (
    "Weights learned by `paired+reweight` (mode centred) or `paired+l2rw` (Ren et al. 2018's rule), from a "
    "look-ahead on the step's real batch (docs/fidelity.md): each synthetic row's mean weight over the steps "
    "that drew it, averaged over the "
    "seeds. Weights average 1 per batch; 0 means the row's gradient never agreed with the real rows'. "
    "'audit agrees / disagrees': the mean weight of the rows a curation auditor gave their intended label / "
    "another label (sets with an audit only)."
)


def sparkline(counts: Sequence[int]) -> str:
    """Counts as a row of block characters, an empty bin as '·' (Markdown's histogram)."""
    top = max(counts, default=0)
    if not top:
        return ""
    return "".join("·" if not c else BARS[min(len(BARS) - 1, int(c / top * (len(BARS) - 1) + 0.5))] for c in counts)


def curated(sets: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [s for s in sets if s["card"].get("curation")]


def _action(config: Mapping[str, Any]) -> str:
    action = config.get("action", "keep")
    if action == "filter":
        return f"filter (score < {config['threshold']})" if config.get("threshold") is not None else (
            f"filter (bottom {100 * config.get('bottom', 0):.0f} % per label)")
    if action == "relabel":
        return f"relabel (confidence ≥ {config.get('confidence')})"
    if action == "weight":
        return "weight" + (" (normalised)" if config.get("normalize", True) else " (raw score)")
    return action


def set_rows(sets: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """One row per curated set: auditor, action, rows before and after, agreement, drops, relabels, weights."""
    header = ["set", "auditor", "action", "rows before", "rows after", "agreement", "dropped", "relabelled", "weights"]
    rows = []
    for s in curated(sets):
        c = s["card"]["curation"]
        dropped = ", ".join(f"{reason} {n}" for reason, n in (c.get("dropped") or {}).items()) or "0"
        w = c.get("weights")
        weights = f"mean {w['mean']:.2f} ({w['min']:.2f}–{w['max']:.2f})" if w else ""
        agreement = f"{100 * c['agreement']:.1f} %" if c.get("agreement") is not None else ""
        rows.append([s["path"], c["auditor"]["name"], _action(c.get("config") or {}), str(c.get("before", "")),
                     str(c.get("after", "")), agreement, dropped, str(c.get("relabelled", 0)), weights])
    return header, rows


def label_rows(sets: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """One row per (curated set, intended label): rows, agreement, score summary, drops, relabels."""
    header = ["set", "label", "rows", "agreement", "score mean", "median", "min–max", "dropped",
              "relabelled out / in", "score histogram (0 → 1)"]
    rows = []
    for s in curated(sets):
        for label, p in s["card"]["curation"].get("per_label", {}).items():
            agreement = f"{100 * p['agreement']:.1f} %" if p.get("agreement") is not None else ""
            summary = [f"{p[k]:.2f}" if p.get(k) is not None else "" for k in ("mean", "median")]
            span = f"{p['min']:.2f}–{p['max']:.2f}" if p.get("min") is not None else ""
            rows.append([s["path"], label, str(p.get("scored", 0)), agreement, *summary, span,
                         str(p.get("dropped", 0)), f"{p.get('relabelled_out', 0)} / {p.get('relabelled_in', 0)}",
                         sparkline(p.get("histogram") or [])])
    return header, rows


def examples(kept: Sequence[Mapping[str, Any]], dropped: Sequence[Mapping[str, Any]]) -> dict[str, list[dict]]:
    """A curated set's example rows: those the audit dropped, those it relabelled, and the kept rows it scored
    lowest, each the most doubtful first (the report reads every row once, the browser only a sample)."""

    def text(r: Mapping[str, Any]) -> str:
        return r.get("text") or " | ".join(str(r[f]) for f in ("text_a", "text_b") if r.get(f))

    def kept_row(r: Mapping[str, Any]) -> dict[str, Any]:
        audit = r["lineage"]["audit"]
        return {"id": r.get("id", ""), "label": r.get("label", ""), "score": audit.get("score"),
                "predicted": audit.get("predicted", ""), "from": audit.get("relabelled_from"), "text": text(r)}

    audited = [r for r in kept if isinstance((r.get("lineage") or {}).get("audit"), dict)]
    by_score = sorted(audited, key=lambda r: r["lineage"]["audit"].get("score", 1.0))
    drops = sorted((r for r in dropped if str(r.get("reason", "")).startswith("audit_")),
                   key=lambda r: r.get("score", 1.0))
    return {
        "dropped": [{"id": r.get("id", ""), "label": r.get("label", ""), "score": r.get("score"),
                     "predicted": r.get("predicted", ""), "reason": r.get("reason"), "text": r.get("text", "")}
                    for r in drops[:EXAMPLES_PER_KIND]],
        "relabelled": [kept_row(r) for r in by_score if r["lineage"]["audit"].get("relabelled_from")][
            :EXAMPLES_PER_KIND],
        "lowest": [kept_row(r) for r in by_score if not r["lineage"]["audit"].get("relabelled_from")][
            :EXAMPLES_PER_KIND],
    }


def example_rows(sets: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The example rows of every curated set: what happened, the label (old → new), score, auditor's label."""
    header = ["set", "what", "id", "label", "score", "auditor's label", "text"]
    rows = []
    for s in curated(sets):
        found = s.get("curation_examples") or {}
        for kind in ("dropped", "relabelled", "lowest"):
            for r in found.get(kind, []):
                what = {"dropped": f"dropped ({r.get('reason')})", "relabelled": "relabelled",
                        "lowest": "kept, lowest score"}[kind]
                label = f"{r['from']} → {r['label']}" if r.get("from") else r["label"]
                score = f"{r['score']:.3f}" if isinstance(r.get("score"), (int, float)) else ""
                rows.append([s["path"], what, str(r["id"]), label, score, r.get("predicted", ""), r["text"][:200]])
    return header, rows


# -- weights learned by paired+reweight ------------------------------------------------------------------


def reweight_groups(records: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], list[Mapping]]]:
    """(first record, the records over seeds) for every grid point whose cells learned weights."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in records:
        if (r.get("train") or {}).get("reweight"):
            groups.setdefault(group_key(r), []).append(r)
    return [(rows[0], sorted(rows, key=lambda r: r["seed"])) for rows in groups.values()]


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return math.fsum(present) / len(present) if present else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def reweight_rows(records: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """One row per grid point with learned weights: the weights' spread and what they did, over seeds."""
    header = ["task", "shots", "learner", "training data", "seeds", "mode", "rows < 0.5", "draws weighted 0",
              "batches skipped", "audit agrees", "audit disagrees", "mean per label"]
    rows = []
    for first, group in reweight_groups(records):
        learned = [r["train"]["reweight"] for r in group]
        low = []
        for w in learned:
            counts = (w.get("histogram") or {}).get("counts") or []
            low.append(sum(counts[:2]) / sum(counts) if sum(counts) else None)  # bins [0, 0.25) and [0.25, 0.5)
        audits = [w.get("by_audit") or {} for w in learned]
        labels = list(dict.fromkeys(label for w in learned for label in (w.get("per_label") or {})))
        per_label = ", ".join(
            f"{label} {_fmt(_mean([(w.get('per_label') or {}).get(label) for w in learned]))}" for label in labels
        )
        share = _mean(low)
        zero = _mean([w.get("zero_share") for w in learned])
        rows.append([
            first["task"], str(first["shots"]), first["learner"], condition_label(first), str(len(group)),
            str(learned[0].get("mode", "")), "" if share is None else f"{100 * share:.0f} %",
            "" if zero is None else f"{100 * zero:.0f} %",
            f"{sum(w.get('skipped_batches', 0) for w in learned)} of {sum(w.get('batches', 0) for w in learned)}",
            _fmt(_mean([a.get("agree") for a in audits])), _fmt(_mean([a.get("disagree") for a in audits])),
            per_label,
        ])
    return header, rows


def reweight_examples(records: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The lowest- and highest-weighted synthetic rows of each grid point's first seed."""
    header = ["cell", "which", "id", "label", "learned weight", "audit score", "text"]
    rows = []
    for _, group in reweight_groups(records):
        r = group[0]
        for which in ("lowest", "highest"):
            for e in r["train"]["reweight"].get(which, []):
                score = e.get("audit_score")
                rows.append([r.get("cell", ""), which, str(e["id"]), e["label"], f"{e['weight']:.3f}",
                             "" if score is None else f"{score:.3f}", e["text"][:200]])
    return header, rows
