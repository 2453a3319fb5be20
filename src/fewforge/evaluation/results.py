"""results.json (every cell's record + the summaries over seeds) and the tables that show it.

    {"records": [{"cell", "task", "shots", "seed", "learner", "condition", "method", "per_label",
                  "metrics": {...}, ...}, ...],
     "summary": [{"task", "shots", "learner", "condition", "method", "per_label", "n", "seeds",
                  "metrics": {metric: {"mean", "std", "n"}}, "vs_baseline": {"delta", "p", "ci", ...}}, ...],
     "meta": {...}}

Values are fractions; tables show percent ("84.3 ± 1.2"), Δ in points against the real-only row of the
same task, shots and learner (or the learner named as its `baseline`), its 95 % bootstrap CI over test examples and the paired p over seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from fewforge.errors import DataError
from fewforge.evaluation.shortfall import SHORT, got_none, is_short, rows_trained
from fewforge.files import read_json, write_json

if TYPE_CHECKING:
    from rich.table import Table

RESULT_KEYS = ("records", "summary", "meta")


def write_results(
    path: Path, records: Sequence[Mapping[str, Any]], summary: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]
) -> Path:
    """Write results.json atomically: a killed run leaves the old file or the new one, never half."""
    return write_json(path, {"records": [dict(r) for r in records], "summary": list(summary), "meta": dict(meta)})


def read_results(path: Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise DataError(f"results file {path} not found", hint="run the experiment first (fewforge run)")
    try:
        data = read_json(path)
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})".splitlines()[0]) from None
    missing = [k for k in RESULT_KEYS if not isinstance(data, dict) or k not in data]
    if missing:
        raise DataError(f"{path}: missing {missing}", hint=f"a results file holds {list(RESULT_KEYS)}")
    return data


def condition_label(group: Mapping[str, Any]) -> str:
    """'real only', 'real + zerogen (40/label)', 'zerogen only (40/label)', 'real + zerogen (40/label), paired+gs';
    'real + zerogen (40/label) ⚠ short' when its cells trained on fewer synthetic rows than asked, and
    'real only (zerogen gave none of 40/label)' when they trained on none (shortfall.py)."""
    condition, method, per_label = group.get("condition"), group.get("method"), group.get("per_label")
    # QA and text-to-text rows have no labels (and no per-class F1): their size is the whole set
    unit = "/label" if group.get("classes", True) else " rows"
    size = f" ({per_label}{unit})" if per_label else ""
    if condition == "real":
        return "real only"
    if got_none(group):  # a real + synthetic row whose set came back empty is not one (shortfall.py)
        return f"real only ({method} gave none of {per_label}{unit})"
    flag = f" {SHORT}" if is_short(group) else ""
    if condition == "synthetic":
        return f"{method} only{size}{flag}"
    strategy = group.get("strategy")
    return f"real + {method}{size}" + (f", {strategy}" if strategy else "") + flag


def pct(stats: Mapping[str, Any] | None) -> str:
    if not stats:
        return "-"
    return f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}"


def comparison_cells(vs: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """(Δ, 95% CI, p) in points, or dashes for a baseline row."""
    if not vs:
        return "-", "-", "-"
    delta = f"{100 * vs['delta']:+.1f}"
    ci = f"[{100 * vs['ci'][0]:+.1f}, {100 * vs['ci'][1]:+.1f}]" if vs.get("ci") else "-"
    p = "-" if vs.get("p") is None else (f"{vs['p']:.3f}" if vs["p"] >= 0.001 else "<0.001")
    return delta, ci, p


def metric_names(summary: Sequence[Mapping[str, Any]]) -> list[str]:
    names: list[str] = []
    for group in summary:
        names += [m for m in group["metrics"] if m not in names]
    return names


def summary_rows(summary: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and string rows shared by the rich, plain-text and Markdown tables."""
    metrics = metric_names(summary)
    facts = [g.get("training") or {} for g in summary]
    extra = [
        (name, key)
        for name, key in (("trainable params", "trainable_parameters"), ("conflict rate", "conflict_rate"))
        if any(f.get(key) is not None for f in facts)
    ]
    short = any(is_short(g) for g in summary)  # then a column names the synthetic rows each row trained on
    header = ["task", "shots", "learner", "training data", *(["synthetic rows"] if short else []), "seeds", *metrics,
              "Δ", "95% CI", "p", *(n for n, _ in extra)]
    rows = []
    for g, f in zip(summary, facts):
        rows.append(
            [
                str(g["task"]),
                str(g["shots"]),
                str(g["learner"]),
                condition_label(g) + (f" (Δ vs {g['baseline_learner']})" if g.get("baseline_learner") else ""),
                *([rows_trained(g)] if short else []),
                str(g["n"]),
                *(pct(g["metrics"].get(m)) for m in metrics),
                *comparison_cells(g.get("vs_baseline")),
                *(_fact(key, f.get(key)) for _, key in extra),
            ]
        )
    return header, rows


def _fact(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "conflict_rate":
        return f"{100 * value:.0f}%"
    return f"{value / 1e6:.1f}M" if value >= 1e6 else f"{value / 1e3:.1f}K" if value >= 1e3 else str(value)


def results_table(summary: Sequence[Mapping[str, Any]], title: str | None = None) -> "Table":
    """A rich table: one row per grid point, mean ± std in percent over seeds, Δ/CI/p vs real only."""
    from rich.table import Table

    header, rows = summary_rows(summary)
    table = Table(title=title)
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i in (0, 2, 3) else "right")
    previous: list[str] = []
    for row in rows:
        if previous and row[:3] != previous[:3]:
            table.add_section()
        table.add_row(*row)
        previous = row
    return table


def format_summary_text(summary: Sequence[Mapping[str, Any]]) -> str:
    """The same table as plain aligned text (logs)."""
    header, rows = summary_rows(summary)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in (0, 2, 3) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]) + "\n"
