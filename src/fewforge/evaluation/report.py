"""`fewforge report RUN_DIR`: one self-contained HTML page (inline CSS, SVG plots and a little script)
and the same tables as Markdown, built from results.json and the run's synthetic sets.

Sections: the table in the papers' shape (a block per learner and shots, rows = training data,
columns = tasks, mean ± std over seeds, best in bold), the detailed table (every metric, Δ against real
only with its 95 % bootstrap CI and paired p), accuracy vs shots and vs synthetic size, per-class F1 and
confusion matrices, the data quality of `fewforge quality` (its table and the coverage maps, which the
Markdown report links as an SVG file beside it), the contamination check, `auto`'s choice, the label
audit of curated sets (per-label score histograms, what was dropped or relabelled, with example rows)
and the weights `paired+reweight` learned (evaluation/curation_report.py), and a browsable sample of each
synthetic set: kept rows, and dropped rows with the reason and the near-duplicate partner.
"""

from __future__ import annotations

import html
import json
import random
from pathlib import Path
from typing import Any, Mapping, Sequence

from fewforge.evaluation import contamination, curation_report
from fewforge.evaluation.plots import (
    accuracy_vs_shots,
    accuracy_vs_size,
    coverage_maps,
    score_histogram,
    weight_histograms,
)
from fewforge.evaluation.quality import QUALITY_FILE, auditor_note, columns_note, quality_rows
from fewforge.evaluation.results import (
    condition_label,
    metric_names,
    pct,
    read_results,
    summary_rows,
)
from fewforge.evaluation.shortfall import short_set_warnings
from fewforge.executors.base import failed_cell_lines
from fewforge.files import read_json, write_text

SAMPLE_ROWS = 25  # kept and dropped rows shown per synthetic set


# -- the tables, as plain rows ------------------------------------------------------------------------


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


# -- Markdown -----------------------------------------------------------------------------------------


def _bold_cells(rows: Sequence[Sequence[str]], bold_rows: set, columns: Sequence[int]) -> set:
    return {(r, c) for r in bold_rows for c in columns if r < len(rows)}


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], bold: set = frozenset()) -> str:
    def cell(r: int, c: int, text: str) -> str:
        text = text.replace("|", "\\|")
        return f"**{text}**" if (r, c) in bold and text not in ("-", "") else text

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(r, c, t) for c, t in enumerate(row)) + " |" for r, row in enumerate(rows)]
    return "\n".join(lines)


def _with_training_facts(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The summary, each group with its training facts (trainable parameters, conflict rate), computed from
    the records when results.json predates them."""
    from fewforge.evaluation.aggregate import group_key, training_facts

    by_group: dict[tuple, list[Mapping[str, Any]]] = {}
    for record in results.get("records", []):
        by_group.setdefault(group_key(record), []).append(record)
    return [
        g if "training" in g else {**g, "training": training_facts(by_group.get(group_key(g), []))}
        for g in results["summary"]
    ]


def markdown(
    results: Mapping[str, Any],
    sets: Sequence[Mapping[str, Any]],
    title: str,
    command: str | None,
    quality: Mapping[str, Any] | None = None,
    coverage_image: str | None = None,
) -> str:
    """The report as Markdown; `coverage_image` is the (relative) path of the coverage maps' SVG, if written."""
    summary, meta = _with_training_facts(results), results["meta"]
    metric = (metric_names(summary) or ["accuracy"])[0]
    parts = [f"# {title}", ""]
    if meta.get("description"):
        parts += [meta["description"].strip(), ""]
    if meta.get("command"):
        cost = f" ({meta['stage_seconds'] / 60:.1f} min of work on this machine)" if meta.get("stage_seconds") else ""
        parts += ["Run: `" + meta["command"] + "`" + cost, ""]
    if command:
        parts += [f"Report: `{command}`", ""]
    parts += [
        f"Mean ± std over seeds ({', '.join(map(str, meta.get('config', {}).get('seeds', [])))}); "
        f"test rows: {', '.join(f'{k} {v}' for k, v in meta.get('test_size', {}).items())}. "
        f"{meta.get('seeds_cover', '')}. Δ: points vs real only; CI: {meta.get('ci', '')}; p: {meta.get('p', '')}.",
        "",
    ]
    warned = [*failed_cell_lines(meta), *_contamination_warnings(meta, sets), *short_set_warnings(summary)]
    parts += [line for w in warned for line in (f"> **Warning: {w}.**", "")]
    for primary, groups in by_primary_metric(summary):
        for table_title, header, rows, bold in paper_tables(groups, primary):
            parts += [f"### {table_title}", "", _md_table(header, rows, bold), ""]
    header, rows = summary_rows(summary)
    bold = _bold_cells(rows, detail_bold(summary, metric), _metric_columns(header, summary))
    parts += ["## All metrics, with Δ, CI and p against real only", "", _md_table(header, rows, bold), ""]
    per_class = _per_class_rows(summary)
    if per_class:
        parts += ["## Per-class F1 (mean over seeds)", ""]
        for task, (head, body) in per_class.items():
            parts += [f"### {task}", "", _md_table(head, body), ""]
    if quality:
        parts += ["## Synthetic data quality (`fewforge quality`)", "", auditor_note(quality), ""]
        if columns_note(quality):
            parts += [columns_note(quality), ""]
        parts += [_md_table(*quality_rows(quality)), ""]
        if coverage_image:
            parts += [f"![coverage of the real train rows by each synthetic set]({coverage_image})", ""]
    header, rows = contamination.set_rows(sets)
    if rows:
        parts += ["## Contamination check: synthetic rows that copy test or few-shot dev rows", ""]
        parts += [_contamination_note(sets), "", _md_table(header, rows), ""]
    header, rows = auto_rows(sets)
    if rows:
        parts += ["## Method choice (`auto`): every candidate's search score and the choice", "", AUTO_NOTE, "",
                  _md_table(header, rows), ""]
    parts += _curation_markdown(sets, results.get("records", []))
    if sets:
        parts += ["## Synthetic sets", "", _md_table(*_set_rows(sets)), ""]
    return "\n".join(parts).rstrip() + "\n"


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


def _per_class_rows(summary: Sequence[Mapping[str, Any]]) -> dict[str, tuple[list[str], list[list[str]]]]:
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


def _set_rows(sets: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
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


# -- HTML -----------------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1280px;color:#1d1d1f;padding:0 16px}
h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}table{border-collapse:collapse;margin:6px 0 14px;font-size:13px}
th,td{border:1px solid #d6d6d6;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f2f4f7}td.l,th.l{text-align:left}b{color:#0b57d0}.meta{color:#555}
.pos{color:#137333}.neg{color:#b3261e}details{margin:6px 0}summary{cursor:pointer;font-weight:600}
.rows td{text-align:left;max-width:560px}.plot{margin:8px 0;overflow-x:auto}input.filter{margin:4px 0 8px;padding:4px;width:320px}
.tag{font-size:11px;padding:1px 5px;border-radius:3px;background:#eef}
.warn{background:#fdecea;border-left:4px solid #b3261e;padding:6px 10px;color:#7a1c16}
"""

_JS = """
function filterRows(input, id){const q=input.value.toLowerCase();
document.querySelectorAll('#'+id+' tbody tr').forEach(r=>{r.style.display=r.textContent.toLowerCase().includes(q)?'':'none'})}
"""


def _esc(text: Any) -> str:
    return html.escape(str(text))


def _metric_columns(header: Sequence[str], summary: Sequence[Mapping[str, Any]]) -> list[int]:
    names = set(metric_names(summary))
    return [i for i, h in enumerate(header) if h in names]


def _html_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    bold: set = frozenset(),
    left: int = 1,
    table_id: str = "",
    klass: str = "",
) -> str:
    attributes = (f' id="{table_id}"' if table_id else "") + (f' class="{klass}"' if klass else "")
    out = [f"<table{attributes}><thead><tr>"]
    out += [f'<th class="{"l" if c < left else ""}">{_esc(h)}</th>' for c, h in enumerate(header)]
    out.append("</tr></thead><tbody>")
    for r, row in enumerate(rows):
        cells = []
        for c, text in enumerate(row):
            value = _esc(text)
            if (r, c) in bold and text not in ("-", ""):
                value = f"<b>{value}</b>"
            elif header[c] == "Δ" and text.startswith(("+", "-")) and text != "-":
                value = f'<span class="{"pos" if text.startswith("+") else "neg"}">{value}</span>'
            cells.append(f'<td class="{"l" if c < left else ""}">{value}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _confusions(summary: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for g in summary:
        matrix, labels = g.get("confusion"), list(g.get("per_class_f1") or {})
        if not matrix or not labels:
            continue
        title = f"{g['task']} · {g['shots']} shots · {g['learner']} · {condition_label(g)} (summed over {g['n']} seeds)"
        rows = [[f"gold {label}", *map(str, row)] for label, row in zip(labels, matrix)]
        parts.append(
            f"<details><summary>{_esc(title)}</summary>{_html_table(['', *[f'pred {l}' for l in labels]], rows)}</details>"
        )
    return "".join(parts)


def _set_browser(index: int, s: Mapping[str, Any]) -> str:
    card = s["card"]
    kept = s["kept"]
    dropped = s["dropped"]
    fields = [f for f in ("text_a", "text_b", "text") if kept and f in kept[0]] or ["text"]
    kept_rows = [[r.get("id", ""), r.get("label", ""), *(r.get(f, "") for f in fields)] for r in kept]
    dropped_rows = [
        [
            r.get("id", ""),
            r.get("label", ""),
            r.get("reason", ""),
            r.get("text") or r.get("raw", ""),
            (f"{r['partner_id']}: {r.get('partner_text', '')}" if r.get("partner_id") else ""),
            (f"{r['similarity']:.3f}" if isinstance(r.get("similarity"), (int, float)) else ""),
        ]
        for r in dropped
    ]
    post = card.get("postprocess", {})
    reasons = (
        "".join(
            f"<li><span class='tag'>{_esc(k)}</span> {v} — {_esc(post.get('reasons', {}).get(k, ''))}</li>"
            for k, v in (post.get("dropped") or {}).items()
        )
        or "<li>none</li>"
    )
    kid, did = f"kept{index}", f"dropped{index}"
    return (
        f"<details{' open' if index == 0 else ''}><summary>{_esc(s['path'])}: {card.get('count', '?')} kept of "
        f"{card.get('generated', '?')} generated</summary>"
        f"<p class='meta'>generator {_esc(card.get('generator_spec', '?'))}, sampling "
        f"{_esc(', '.join(f'{k}={v}' for k, v in card.get('sampling', {}).items() if k not in ('n',)))}</p>"
        f"<ul>{reasons}</ul>"
        f"<h3>Kept rows (a random sample of {len(kept)})</h3>"
        f"<input class='filter' placeholder='filter rows' oninput=\"filterRows(this,'{kid}')\">"
        + _html_table(["id", "label", *fields], kept_rows, left=99, table_id=kid, klass="rows")
        + f"<h3>Dropped rows (a random sample of {len(dropped)}), with reason and near-duplicate partner</h3>"
        f"<input class='filter' placeholder='filter rows' oninput=\"filterRows(this,'{did}')\">"
        + _html_table(
            ["id", "label", "reason", "text", "partner", "similarity"],
            dropped_rows,
            left=99,
            table_id=did,
            klass="rows",
        )
        + "</details>"
    )


def render_html(
    results: Mapping[str, Any], sets: Sequence[Mapping[str, Any]], title: str, quality: Mapping[str, Any] | None = None
) -> str:
    summary, meta = _with_training_facts(results), results["meta"]
    metric = (metric_names(summary) or ["accuracy"])[0]
    body = [f"<h1>{_esc(title)}</h1>"]
    if meta.get("description"):
        body.append(f"<p>{_esc(meta['description'])}</p>")
    facts = [
        f"seeds: {', '.join(map(str, meta.get('config', {}).get('seeds', [])))}",
        "test rows: " + ", ".join(f"{k} {v}" for k, v in meta.get("test_size", {}).items()),
    ]
    if meta.get("stage_seconds"):
        facts.append(f"{meta['stage_seconds'] / 60:.1f} min of work")
    if meta.get("command"):
        facts.append(f"command: <code>{_esc(meta['command'])}</code>")
    body.append("<p class='meta'>" + " · ".join(facts) + "</p>")
    body.append(
        f"<p class='meta'>Mean ± std over seeds. {_esc(meta.get('seeds_cover', ''))}. Δ: points against real only "
        f"(same task, shots, learner). CI: {_esc(meta.get('ci', ''))}. p: {_esc(meta.get('p', ''))}.</p>"
    )
    warned = [*failed_cell_lines(meta), *_contamination_warnings(meta, sets), *short_set_warnings(summary)]
    body += [f"<p class='warn'>⚠ Warning: {_esc(w)}.</p>" for w in warned]
    body.append("<h2>Results</h2>")
    for primary, groups in by_primary_metric(summary):
        for table_title, header, rows, bold in paper_tables(groups, primary):
            body.append(f"<h3>{_esc(table_title)}</h3>" + _html_table(header, rows, bold=bold))
    plots = [
        ("Accuracy vs shots", accuracy_vs_shots(summary, metric)),
        ("Accuracy vs synthetic size", accuracy_vs_size(summary, metric)),
    ]
    for name, svg in plots:
        if svg:
            body.append(f"<h2>{name}</h2><div class='plot'>{svg}</div>")
    header, rows = summary_rows(summary)
    body.append("<h2>All metrics, with Δ, CI and p against real only</h2>")
    body.append(
        _html_table(
            header, rows, bold=_bold_cells(rows, detail_bold(summary, metric), _metric_columns(header, summary)), left=4
        )
    )
    per_class = _per_class_rows(summary)
    if per_class:
        body.append("<h2>Per-class F1 (mean over seeds)</h2>")
        for task, (head, rows) in per_class.items():
            body.append(f"<h3>{_esc(task)}</h3>" + _html_table(head, rows, left=3))
        body.append("<h3>Confusion matrices</h3>" + _confusions(summary))
    if quality:
        body.append("<h2>Synthetic data quality</h2><p class='meta'>" + _esc(auditor_note(quality)) + "</p>")
        if columns_note(quality):
            body.append("<p class='meta'>" + _esc(columns_note(quality)) + "</p>")
        body.append(_html_table(*quality_rows(quality), left=2))
        maps = coverage_maps(quality)
        if maps:
            body.append(f"<h3>Coverage of the real train rows (joint 2-D maps)</h3><div class='plot'>{maps}</div>")
    header, rows = contamination.set_rows(sets)
    if rows:
        body.append("<h2>Contamination check</h2><p class='meta'>" + _esc(_contamination_note(sets)) + "</p>")
        body.append(_html_table(header, rows, left=2))
        for path, examples in contamination.set_examples(sets):
            body.append(
                f"<details><summary>{_esc(path)}: flagged rows (examples)</summary>"
                + _html_table(["reference", "check", "synthetic row", "reference row", "cosine / shared span"],
                              examples, left=99, klass="rows")
                + "</details>"
            )
    header, rows = auto_rows(sets)
    if rows:
        body.append("<h2>Method choice (auto)</h2><p class='meta'>" + _esc(AUTO_NOTE) + "</p>")
        body.append(_html_table(header, rows, left=3))
    body += _curation_html(sets, results.get("records", []))
    if sets:
        body.append("<h2>Synthetic data</h2>" + _html_table(*_set_rows(sets), left=1))
        body += [_set_browser(i, s) for i, s in enumerate(sets)]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_esc(title)}</title><style>{_CSS}</style><script>{_JS}</script></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def _curation_markdown(sets: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The curated sets' audits (tables; the histograms as block characters) and the learned weights."""
    parts: list[str] = []
    header, rows = curation_report.set_rows(sets)
    if rows:
        parts += ["## Curation: the label audit of each curated set", "", curation_report.CURATION_NOTE, "",
                  _md_table(header, rows), "", "### Per intended label", "",
                  _md_table(*curation_report.label_rows(sets)), ""]
        header, rows = curation_report.example_rows(sets)
        if rows:
            parts += ["### Rows the audit dropped, relabelled or scored lowest", "", _md_table(header, rows), ""]
    header, rows = curation_report.reweight_rows(records)
    if rows:
        parts += ["## Learned sample weights (`paired+reweight`)", "", curation_report.REWEIGHT_NOTE, "",
                  _md_table(header, rows), ""]
        header, rows = curation_report.reweight_examples(records)
        if rows:
            parts += ["### Lowest- and highest-weighted synthetic rows (first seed)", "", _md_table(header, rows), ""]
    return parts


def _curation_html(sets: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]]) -> list[str]:
    body: list[str] = []
    header, rows = curation_report.set_rows(sets)
    if rows:
        body.append("<h2>Curation: label audit</h2><p class='meta'>" + _esc(curation_report.CURATION_NOTE) + "</p>")
        body.append(_html_table(header, rows, left=3))
        body.append("<h3>Per intended label</h3>" + _html_table(*curation_report.label_rows(sets), left=2))
        examples_header, examples = curation_report.example_rows(sets)
        for i, s in enumerate(curation_report.curated(sets)):
            svg = score_histogram(s["card"]["curation"], f"{s['path']}: audit scores per intended label")
            mine = [row for row in examples if row[0] == s["path"]]
            body.append(
                f"<details{' open' if i == 0 else ''}><summary>{_esc(s['path'])}: score histograms and example "
                f"rows</summary>" + (f"<div class='plot'>{svg}</div>" if svg else "")
                + (_html_table(examples_header[1:], [row[1:] for row in mine], left=99, klass="rows") if mine else "")
                + "</details>"
            )
    header, rows = curation_report.reweight_rows(records)
    if rows:
        body.append("<h2>Learned sample weights (paired+reweight)</h2><p class='meta'>"
                    + _esc(curation_report.REWEIGHT_NOTE) + "</p>")
        body.append(_html_table(header, rows, left=4))
        panels = []
        for first, group in curation_report.reweight_groups(records):
            histograms = [(r["train"]["reweight"].get("histogram") or {}) for r in group]
            counts = [sum(c) for c in zip(*(h["counts"] for h in histograms if h.get("counts")))]
            if counts:
                name = f"{first['task']} k={first['shots']} {first['learner']}: {condition_label(first)}"
                panels.append((name, histograms[0]["edges"], counts))
        svg = weight_histograms(panels)
        if svg:
            body.append(f"<div class='plot'>{svg}</div>")
        header, rows = curation_report.reweight_examples(records)
        if rows:
            body.append("<details><summary>Lowest- and highest-weighted synthetic rows (first seed)</summary>"
                        + _html_table(header, rows, left=99, klass="rows") + "</details>")
    return body


def _contamination_warnings(meta: Mapping[str, Any], sets: Sequence[Mapping[str, Any]]) -> list[str]:
    """A line per synthetic set that holds copies of test rows: from the sets' cards, else results.json."""
    cards = {s["path"]: s["card"] for s in sets if s["card"].get("contamination")}
    return contamination.warnings(cards) if cards else list((meta.get("contamination") or {}).get("warnings", []))


def _contamination_note(sets: Sequence[Mapping[str, Any]]) -> str:
    summary = next(s["card"]["contamination"] for s in sets if s["card"].get("contamination"))
    checks = "; ".join(f"{name}: {what}" for name, what in summary.get("checks", {}).items())
    return (
        "Rows of each synthetic set flagged against the test rows the grid scores on and the few-shot dev rows "
        f"(dev-kN) of the splits it serves; a row can be flagged by several checks, 'rows flagged' counts it once. "
        f"{checks}. Every flag with its reference row: contamination.json beside each set."
    )


# -- reading a run directory ---------------------------------------------------------------------------


def synthetic_sets(root: Path, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every finished synthetic set of the run (or those named), with a seeded sample of its rows."""
    out = []
    dirs = (
        [root / n for n in names]
        if names is not None
        else sorted(p.parent for p in (root / "synthetic").rglob("card.json"))
    )
    for directory in dirs:
        card_path = directory / "card.json"
        if not card_path.is_file() or "_stale" in directory.parts:
            continue
        rng = random.Random(0)
        kept = [
            json.loads(line) for line in (directory / "data.jsonl").read_text(encoding="utf-8").splitlines() if line
        ]
        dropped_path = directory / "dropped.jsonl"
        dropped = (
            [json.loads(line) for line in dropped_path.read_text(encoding="utf-8").splitlines() if line]
            if dropped_path.is_file()
            else []
        )
        card = json.loads(card_path.read_text(encoding="utf-8"))
        out.append(
            {
                "path": str(directory.relative_to(root)),
                "card": card,
                "kept": sorted(rng.sample(kept, min(SAMPLE_ROWS, len(kept))), key=lambda r: r.get("id", "")),
                "dropped": sorted(rng.sample(dropped, min(SAMPLE_ROWS, len(dropped))), key=lambda r: r.get("id", "")),
                # a curated set's dropped, relabelled and lowest-scored rows, from every row (not the sample)
                **({"curation_examples": curation_report.examples(kept, dropped)} if card.get("curation") else {}),
            }
        )
    return out


def write_report(
    run_dir: Path,
    *,
    html_path: Path | None = None,
    markdown_path: Path | None = None,
    title: str | None = None,
    command: str | None = None,
) -> tuple[Path, Path]:
    """Write report.html and report.md for a run directory (or to the given paths); returns both paths."""
    run_dir = Path(run_dir)
    results = read_results(run_dir / "results.json")
    names = list(results["meta"].get("synthetic_sets") or []) or None
    sets = synthetic_sets(run_dir, names)
    title = title or f"fewforge report: {run_dir.name}"
    html_path = html_path or run_dir / "report.html"
    markdown_path = markdown_path or run_dir / "report.md"
    quality_path = run_dir / QUALITY_FILE
    quality = read_json(quality_path) if quality_path.is_file() else None
    maps = coverage_maps(quality) if quality else None
    image = markdown_path.with_name(f"{markdown_path.stem}-coverage.svg")
    if maps:
        write_text(image, maps + "\n")
    write_text(html_path, render_html(results, sets, title, quality))
    write_text(markdown_path, markdown(results, sets, title, command, quality, image.name if maps else None))
    return html_path, markdown_path
