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

from pathlib import Path

from fewforge.evaluation.html_report import render_html
from fewforge.evaluation.markdown_report import markdown
from fewforge.evaluation.plots import coverage_maps
from fewforge.evaluation.quality import QUALITY_FILE
from fewforge.evaluation.results import read_results
from fewforge.evaluation.runs import synthetic_sets
from fewforge.evaluation.tables import auto_rows, paper_tables
from fewforge.files import read_json, write_text

# where callers have always imported them from; each lives in its own module (see the imports above)
__all__ = ["auto_rows", "markdown", "paper_tables", "render_html", "synthetic_sets", "write_report"]


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
