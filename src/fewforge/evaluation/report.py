"""results.json (records + summary + meta) and the tables that show a summary.

results.json:
    {"records": [{"condition", "seed", "accuracy", "macro_f1", ...}, ...],
     "summary": {condition: {metric: {"mean", "std", "n"}}},
     "meta": {...}}
Values are fractions; tables show them in percent ("84.3 ± 1.2") with the change of each condition's
mean against the first condition (the baseline) for the first metric.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from fewforge.errors import DataError

if TYPE_CHECKING:
    from rich.table import Table

RESULT_KEYS = ("records", "summary", "meta")


def write_results(
    path: Path,
    records: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write results.json atomically: a killed run leaves the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"records": [dict(r) for r in records], "summary": summary, "meta": dict(meta or {})}
    text = json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_results(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"results file {path} not found", hint="run the experiment first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    missing = [k for k in RESULT_KEYS if not isinstance(data, dict) or k not in data]
    if missing:
        raise DataError(f"{path}: missing {missing}", hint=f"a results file holds {list(RESULT_KEYS)}")
    return data


def _metrics(summary: Mapping[str, Mapping[str, Any]]) -> list[str]:
    names: list[str] = []
    for per_metric in summary.values():
        names += [m for m in per_metric if m not in names]
    return names


def _cell(stats: Mapping[str, Any] | None) -> str:
    if not stats:
        return "-"
    return f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}"


def _delta(stats: Mapping[str, Any] | None, base: Mapping[str, Any] | None) -> str:
    if not stats or not base or not all(math.isfinite(s["mean"]) for s in (stats, base)):
        return "-"
    return f"{100 * (stats['mean'] - base['mean']):+.1f}"


def summary_rows(summary: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and string rows shared by the rich and plain-text tables."""
    metrics = _metrics(summary)
    header = ["condition", "n", *metrics]
    conditions = list(summary)
    with_delta = len(conditions) > 1 and bool(metrics)
    if with_delta:
        header.append(f"Δ {metrics[0]}")
    base = summary[conditions[0]].get(metrics[0]) if with_delta else None
    rows = []
    for i, condition in enumerate(conditions):
        per_metric = summary[condition]
        n = max((int(s["n"]) for s in per_metric.values()), default=0)
        row = [condition, str(n), *(_cell(per_metric.get(m)) for m in metrics)]
        if with_delta:
            row.append("baseline" if i == 0 else _delta(per_metric.get(metrics[0]), base))
        rows.append(row)
    return header, rows


def results_table(summary: Mapping[str, Mapping[str, Any]], title: str | None = None) -> "Table":
    """A rich table: one row per condition, mean ± std in percent over n seeds."""
    from rich.table import Table

    header, rows = summary_rows(summary)
    table = Table(title=title)
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def format_summary_text(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """The same table as plain aligned text (logs, README)."""
    header, rows = summary_rows(summary)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)]) + "\n"
