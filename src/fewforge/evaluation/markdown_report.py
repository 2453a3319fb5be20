"""The report as Markdown: the same tables as the HTML page (evaluation/tables.py), the coverage maps
linked as an SVG file beside it."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from fewforge.evaluation import contamination, curation_report
from fewforge.evaluation.quality import auditor_note, columns_note, quality_rows
from fewforge.evaluation.results import metric_names, summary_rows
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


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]], bold: set = frozenset()) -> str:
    def cell(r: int, c: int, text: str) -> str:
        text = text.replace("|", "\\|")
        return f"**{text}**" if (r, c) in bold and text not in ("-", "") else text

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(r, c, t) for c, t in enumerate(row)) + " |" for r, row in enumerate(rows)]
    return "\n".join(lines)


def markdown(
    results: Mapping[str, Any],
    sets: Sequence[Mapping[str, Any]],
    title: str,
    command: str | None,
    quality: Mapping[str, Any] | None = None,
    coverage_image: str | None = None,
) -> str:
    """The report as Markdown; `coverage_image` is the (relative) path of the coverage maps' SVG, if written."""
    summary, meta = with_training_facts(results), results["meta"]
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
    warned = report_warnings(meta, sets, summary)
    parts += [line for w in warned for line in (f"> **Warning: {w}.**", "")]
    for primary, groups in by_primary_metric(summary):
        for table_title, header, rows, bold in paper_tables(groups, primary):
            parts += [f"### {table_title}", "", md_table(header, rows, bold), ""]
    header, rows = summary_rows(summary)
    bold = bold_cells(rows, detail_bold(summary, metric), metric_columns(header, summary))
    parts += ["## All metrics, with Δ, CI and p against real only", "", md_table(header, rows, bold), ""]
    per_class = per_class_rows(summary)
    if per_class:
        parts += ["## Per-class F1 (mean over seeds)", ""]
        for task, (head, body) in per_class.items():
            parts += [f"### {task}", "", md_table(head, body), ""]
    if quality:
        parts += ["## Synthetic data quality (`fewforge quality`)", "", auditor_note(quality), ""]
        if columns_note(quality):
            parts += [columns_note(quality), ""]
        parts += [md_table(*quality_rows(quality)), ""]
        if coverage_image:
            parts += [f"![coverage of the real train rows by each synthetic set]({coverage_image})", ""]
    header, rows = contamination.set_rows(sets)
    if rows:
        parts += ["## Contamination check: synthetic rows that copy test or few-shot dev rows", ""]
        parts += [contamination_note(sets), "", md_table(header, rows), ""]
    header, rows = auto_rows(sets)
    if rows:
        parts += ["## Method choice (`auto`): every candidate's search score and the choice", "", AUTO_NOTE, "",
                  md_table(header, rows), ""]
    parts += _curation_markdown(sets, results.get("records", []))
    if sets:
        parts += ["## Synthetic sets", "", md_table(*set_rows(sets)), ""]
    return "\n".join(parts).rstrip() + "\n"


def _curation_markdown(sets: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The curated sets' audits (tables; the histograms as block characters) and the learned weights."""
    parts: list[str] = []
    header, rows = curation_report.set_rows(sets)
    if rows:
        parts += ["## Curation: the label audit of each curated set", "", curation_report.CURATION_NOTE, "",
                  md_table(header, rows), "", "### Per intended label", "",
                  md_table(*curation_report.label_rows(sets)), ""]
        header, rows = curation_report.example_rows(sets)
        if rows:
            parts += ["### Rows the audit dropped, relabelled or scored lowest", "", md_table(header, rows), ""]
    header, rows = curation_report.reweight_rows(records)
    if rows:
        parts += ["## Learned sample weights (`paired+reweight`)", "", curation_report.REWEIGHT_NOTE, "",
                  md_table(header, rows), ""]
        header, rows = curation_report.reweight_examples(records)
        if rows:
            parts += ["### Lowest- and highest-weighted synthetic rows (first seed)", "", md_table(header, rows), ""]
    return parts
