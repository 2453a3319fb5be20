"""The report as one self-contained HTML page (inline CSS, SVG plots and a little script): the tables of
evaluation/tables.py, the plots, confusion matrices, the label audit's histograms and a browsable sample
of each synthetic set (kept rows, and dropped rows with the reason and the near-duplicate partner)."""

from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

from fewforge.evaluation import contamination, curation_report
from fewforge.evaluation.plots import (
    accuracy_vs_shots,
    accuracy_vs_size,
    coverage_maps,
    score_histogram,
    weight_histograms,
)
from fewforge.evaluation.quality import auditor_note, columns_note, quality_rows
from fewforge.evaluation.results import condition_label, metric_names, summary_rows
from fewforge.evaluation.tables import (
    AUTO_NOTE,
    auto_rows,
    bold_cells,
    by_primary_metric,
    contamination_note,
    detail_bold,
    metric_columns,
    paper_tables,
    per_class_rows,
    report_warnings,
    set_rows,
    with_training_facts,
)

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


def html_table(
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
            f"<details><summary>{_esc(title)}</summary>{html_table(['', *[f'pred {l}' for l in labels]], rows)}</details>"
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
        + html_table(["id", "label", *fields], kept_rows, left=99, table_id=kid, klass="rows")
        + f"<h3>Dropped rows (a random sample of {len(dropped)}), with reason and near-duplicate partner</h3>"
        f"<input class='filter' placeholder='filter rows' oninput=\"filterRows(this,'{did}')\">"
        + html_table(
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
    summary, meta = with_training_facts(results), results["meta"]
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
    warned = report_warnings(meta, sets, summary)
    body += [f"<p class='warn'>⚠ Warning: {_esc(w)}.</p>" for w in warned]
    body.append("<h2>Results</h2>")
    for primary, groups in by_primary_metric(summary):
        for table_title, header, rows, bold in paper_tables(groups, primary):
            body.append(f"<h3>{_esc(table_title)}</h3>" + html_table(header, rows, bold=bold))
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
        html_table(
            header, rows, bold=bold_cells(rows, detail_bold(summary, metric), metric_columns(header, summary)), left=4
        )
    )
    per_class = per_class_rows(summary)
    if per_class:
        body.append("<h2>Per-class F1 (mean over seeds)</h2>")
        for task, (head, rows) in per_class.items():
            body.append(f"<h3>{_esc(task)}</h3>" + html_table(head, rows, left=3))
        body.append("<h3>Confusion matrices</h3>" + _confusions(summary))
    if quality:
        body.append("<h2>Synthetic data quality</h2><p class='meta'>" + _esc(auditor_note(quality)) + "</p>")
        if columns_note(quality):
            body.append("<p class='meta'>" + _esc(columns_note(quality)) + "</p>")
        body.append(html_table(*quality_rows(quality), left=2))
        maps = coverage_maps(quality)
        if maps:
            body.append(f"<h3>Coverage of the real train rows (joint 2-D maps)</h3><div class='plot'>{maps}</div>")
    header, rows = contamination.set_rows(sets)
    if rows:
        body.append("<h2>Contamination check</h2><p class='meta'>" + _esc(contamination_note(sets)) + "</p>")
        body.append(html_table(header, rows, left=2))
        for path, examples in contamination.set_examples(sets):
            body.append(
                f"<details><summary>{_esc(path)}: flagged rows (examples)</summary>"
                + html_table(["reference", "check", "synthetic row", "reference row", "cosine / shared span"],
                              examples, left=99, klass="rows")
                + "</details>"
            )
    header, rows = auto_rows(sets)
    if rows:
        body.append("<h2>Method choice (auto)</h2><p class='meta'>" + _esc(AUTO_NOTE) + "</p>")
        body.append(html_table(header, rows, left=3))
    body += _curation_html(sets, results.get("records", []))
    if sets:
        body.append("<h2>Synthetic data</h2>" + html_table(*set_rows(sets), left=1))
        body += [_set_browser(i, s) for i, s in enumerate(sets)]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_esc(title)}</title><style>{_CSS}</style><script>{_JS}</script></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def _curation_html(sets: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]]) -> list[str]:
    body: list[str] = []
    header, rows = curation_report.set_rows(sets)
    if rows:
        body.append("<h2>Curation: label audit</h2><p class='meta'>" + _esc(curation_report.CURATION_NOTE) + "</p>")
        body.append(html_table(header, rows, left=3))
        body.append("<h3>Per intended label</h3>" + html_table(*curation_report.label_rows(sets), left=2))
        examples_header, examples = curation_report.example_rows(sets)
        for i, s in enumerate(curation_report.curated(sets)):
            svg = score_histogram(s["card"]["curation"], f"{s['path']}: audit scores per intended label")
            mine = [row for row in examples if row[0] == s["path"]]
            body.append(
                f"<details{' open' if i == 0 else ''}><summary>{_esc(s['path'])}: score histograms and example "
                f"rows</summary>" + (f"<div class='plot'>{svg}</div>" if svg else "")
                + (html_table(examples_header[1:], [row[1:] for row in mine], left=99, klass="rows") if mine else "")
                + "</details>"
            )
    header, rows = curation_report.reweight_rows(records)
    if rows:
        body.append("<h2>Learned sample weights (paired+reweight)</h2><p class='meta'>"
                    + _esc(curation_report.REWEIGHT_NOTE) + "</p>")
        body.append(html_table(header, rows, left=4))
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
                        + html_table(header, rows, left=99, klass="rows") + "</details>")
    return body
