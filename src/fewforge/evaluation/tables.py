"""The report's tables as plain rows (header, rows, bold cells), shared by the Markdown and the HTML
writers so both show the same numbers: the papers' shape, the detailed table's bold cells, per-class F1,
`auto`'s candidates, the synthetic sets' costs and the contamination warnings."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from fewforge.evaluation import contamination
from fewforge.evaluation.aggregate import group_key, training_facts
from fewforge.evaluation.results import condition_label, metric_names, pct
from fewforge.evaluation.shortfall import short_set_warnings


def paper_tables(
    summary: Sequence[Mapping[str, Any]], metric: str
) -> list[tuple[str, list[str], list[list[str]], set]]:
    """(title, header, rows, bold cells): the papers' shape, rows = training data, best of each column in
    bold. One shots value and several learners: one table, a row per (learner, training data), a column
    per task (DawGen's Table 2). Otherwise, several tasks: a table per (learner, shots), a column per task
    plus their mean; one task: a table per learner, a column per shots value (a learning curve)."""
    tasks = list(dict.fromkeys(g["task"] for g in summary))
    learners = list(dict.fromkeys(g["learner"] for g in summary))
    shots_values = list(dict.fromkeys(g["shots"] for g in summary))
    label_of, first = condition_label, "training data"
    if len(shots_values) == 1 and len(learners) > 1:
        blocks: list[tuple[str | None, int | None]] = [(None, shots_values[0])]
        column_of, columns = (lambda g: g["task"]), tasks
        label_of, first = (lambda g: f"{g['learner']} · {condition_label(g)}"), "learner · training data"
    elif len(tasks) == 1:
        blocks = [(learner, None) for learner in learners]
        column_of, columns = (lambda g: f"{g['shots']} shots"), None
    else:
        blocks = list(dict.fromkeys((g["learner"], g["shots"]) for g in summary))
        column_of, columns = (lambda g: g["task"]), tasks
    out = []
    for learner, shots in blocks:
        groups = [
            g for g in summary if learner in (None, g["learner"]) and (shots is None or g["shots"] == shots)
        ]
        present = {column_of(g) for g in groups}  # a learner restricted to some tasks gets no empty columns
        cols = [c for c in columns if c in present] if columns else None
        cols = cols or list(dict.fromkeys(column_of(g) for g in sorted(groups, key=lambda g: g["shots"])))
        conditions = list(dict.fromkeys(label_of(g) for g in groups))
        with_mean = columns is not None and len(cols) > 1
        header = [first, *cols] + (["mean"] if with_mean else [])
        values: dict[tuple[str, str], float] = {}
        rows = []
        for label in conditions:
            row = [label]
            means = []
            for col in cols:
                g = next((g for g in groups if column_of(g) == col and label_of(g) == label), None)
                stats = g["metrics"].get(metric) if g else None
                row.append(pct(stats))
                if stats:
                    values[(label, col)] = stats["mean"]
                    means.append(stats["mean"])
            if with_mean:
                complete = len(means) == len(cols)
                row.append(f"{100 * sum(means) / len(means):.1f}" if complete else "-")
                if complete:
                    values[(label, "mean")] = sum(means) / len(means)
            rows.append(row)
        bold = set()
        for c, column in enumerate(header[1:], start=1):
            column_values = {label: v for (label, col), v in values.items() if col == column}
            if len(column_values) > 1:
                best = max(column_values.values())
                bold |= {(r, c) for r, label in enumerate(conditions) if column_values.get(label) == best}
        # (k per class for classification, k examples for QA and text-to-text)
        if any(g.get("classes", True) for g in groups):
            where = f"{shots} shots per class" if shots is not None else f"{tasks[0]}, by shots per class"
        else:
            where = f"{shots} examples" if shots is not None else f"{groups[0]['task']}, by number of examples"
        out.append((f"{learner or 'every learner'}, {where}: {metric} (%)", header, rows, bold))
    return out


def by_primary_metric(summary: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """The summary split by each task's primary metric (its first: accuracy, exact_match, rouge_l), so a
    grid mixing task kinds gets one paper table per metric instead of columns of dashes."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for g in summary:
        groups.setdefault(next(iter(g["metrics"]), "accuracy"), []).append(g)
    return list(groups.items())


def detail_bold(summary: Sequence[Mapping[str, Any]], metric: str) -> set[int]:
    """Rows of the detailed table holding the best mean of their (task, shots, learner) block."""
    best: dict[tuple, float] = {}
    for g in summary:
        stats = g["metrics"].get(metric)
        key = (g["task"], g["shots"], g["learner"])
        if stats:
            best[key] = max(best.get(key, -1.0), stats["mean"])
    return {
        i
        for i, g in enumerate(summary)
        if g["metrics"].get(metric)
        and g["metrics"][metric]["mean"] == best[(g["task"], g["shots"], g["learner"])]
        and sum(1 for h in summary if (h["task"], h["shots"], h["learner"]) == (g["task"], g["shots"], g["learner"]))
        > 1
    }


def bold_cells(rows: Sequence[Sequence[str]], bold_rows: set, columns: Sequence[int]) -> set:
    return {(r, c) for r in bold_rows for c in columns if r < len(rows)}


def metric_columns(header: Sequence[str], summary: Sequence[Mapping[str, Any]]) -> list[int]:
    names = set(metric_names(summary))
    return [i for i, h in enumerate(header) if h in names]


def with_training_facts(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The summary, each group with its training facts (trainable parameters, conflict rate), computed from
    the records when results.json predates them."""
    by_group: dict[tuple, list[Mapping[str, Any]]] = {}
    for record in results.get("records", []):
        by_group.setdefault(group_key(record), []).append(record)
    return [
        g if "training" in g else {**g, "training": training_facts(by_group.get(group_key(g), []))}
        for g in results["summary"]
    ]


AUTO_NOTE = (
    "Each candidate synthesized a small set; a fresh student trained on the real few-shot rows + that set and "
    "was scored on held-out few-shot rows (dev, or cross-validation over train + dev). The scores rank "
    "candidates; they are optimistic alike and are not test scores. 'none' is the real rows alone."
)


def auto_rows(sets: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """One row per candidate of every `auto` set: its search score, cost, status and whether it was chosen."""
    header = ["set", "selection", "candidate", "score ± se", "rows", "seconds", "status", "chosen"]
    rows = []
    for s in sets:
        auto = s["card"].get("auto")
        if not auto:
            continue
        for c in auto["candidates"]:
            score = f"{100 * c['score']:.1f} ± {100 * c['se']:.1f}" if c["status"] == "scored" else ""
            status = c["status"] if c["status"] == "scored" else f"{c['status']}: {c.get('reason', '')}"
            rows.append([s["path"], f"{auto['selection']} ({auto['scored_on']} rows)", c["id"], score,
                         str(c.get("rows", "")), str(c.get("seconds", "")), status,
                         "✓" if c["id"] == auto["chosen"] else ""])
    return header, rows


def per_class_rows(summary: Sequence[Mapping[str, Any]]) -> dict[str, tuple[list[str], list[list[str]]]]:
    out: dict[str, tuple[list[str], list[list[str]]]] = {}
    for g in summary:
        if not g.get("per_class_f1"):
            continue
        labels = list(g["per_class_f1"])
        head, body = out.setdefault(g["task"], (["shots", "learner", "training data", *labels], []))
        body.append(
            [str(g["shots"]), g["learner"], condition_label(g), *(f"{100 * g['per_class_f1'][l]:.1f}" for l in labels)]
        )
    return out


def set_rows(sets: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["set", "kept", "generated", "dropped by reason", "cache hits", "generation s",
              "requests (failed)", "tokens in / out", "usd"]
    rows = []
    for s in sets:
        card = s["card"]
        dropped = ", ".join(f"{k} {v}" for k, v in (card.get("postprocess", {}).get("dropped") or {}).items()) or "none"
        cache = card.get("cache", {})
        spend = card.get("spend") or {}  # what the engine was asked and answered (cache hits are free)
        rows.append(
            [
                s["path"],
                str(card.get("count", "")),
                str(card.get("generated", "")),
                dropped,
                f"{cache.get('hits', 0)}/{cache.get('hits', 0) + cache.get('misses', 0)}",
                str(card.get("generation_time_s", "")),
                f"{spend['requests']} ({spend['failed']})" if spend else "",
                f"{spend['prompt_tokens']:,} / {spend['completion_tokens']:,}" if spend else "",
                f"{spend['usd']:.4f}" if "usd" in spend else "",
            ]
        )
    return header, rows


def report_warnings(
    meta: Mapping[str, Any], sets: Sequence[Mapping[str, Any]], summary: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The warning lines both report writers open with: failed cells, contaminated sets, short sets."""
    return [*failed_cell_lines(meta), *contamination_warnings(meta, sets), *short_set_warnings(summary)]


def failed_cell_lines(meta: Mapping[str, Any]) -> list[str]:
    """One line per failed cell (results.json's meta.failed_cells, written by the cell runner)."""
    return [f"cell {f['cell']} failed: {f['error']}" + (f" (log: {f['log']})" if f.get("log") else "")
            + "; rerun to retry it" for f in meta.get("failed_cells") or ()]


def contamination_warnings(meta: Mapping[str, Any], sets: Sequence[Mapping[str, Any]]) -> list[str]:
    """A line per synthetic set that holds copies of test rows: from the sets' cards, else results.json."""
    cards = {s["path"]: s["card"] for s in sets if s["card"].get("contamination")}
    return contamination.warnings(cards) if cards else list((meta.get("contamination") or {}).get("warnings", []))


def contamination_note(sets: Sequence[Mapping[str, Any]]) -> str:
    summary = next(s["card"]["contamination"] for s in sets if s["card"].get("contamination"))
    checks = "; ".join(f"{name}: {what}" for name, what in summary.get("checks", {}).items())
    return (
        "Rows of each synthetic set flagged against the test rows the grid scores on and the few-shot dev rows "
        f"(dev-kN) of the splits it serves; a row can be flagged by several checks, 'rows flagged' counts it once. "
        f"{checks}. Every flag with its reference row: contamination.json beside each set."
    )


def method_order(method: str) -> tuple[int, str]:
    """The order methods are shown in (the papers' zerogen, fewgen, dawgen first, then by name)."""
    order = ["zerogen", "fewgen", "dawgen"]
    return (order.index(method) if method in order else len(order), method)
