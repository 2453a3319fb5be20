"""The README's default-run table says what the committed default run's report says (docs/results/
default-run.md, written by `fewforge report runs/default --markdown docs/results/default-run.md`): a
regenerated run that changes a number fails here until the README is updated with it."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "docs" / "results" / "default-run.md"
# the README's row names for the default run's learner ids
LEARNERS = {"linear probe": "linear-probe", "MiniLM fine-tuned": "encoder"}
CELL = re.compile(r"\d+\.\d ± \d+\.\d")


def _cells(line: str) -> list[str]:
    return [c.strip().strip("*") for c in line.strip().strip("|").split("|")]


def readme_table() -> dict[tuple[str, int], list[str]]:
    """(learner id, shots) -> [real only, real + 10/label, real + 30/label, "Δ [CI], p p"] ('' where the README
    has none)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("| learner, shots |")
    out = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        name, real, ten, thirty, delta = _cells(line)
        learner, shots = name.rsplit(",", 1)
        out[(LEARNERS[learner.strip()], int(shots))] = [real, ten, thirty, delta]
    return out


def report_tables() -> dict[tuple[str, int], list[str]]:
    """The same cells from the report's per-learner tables (columns: shots; rows: training data)."""
    out: dict[tuple[str, int], list[str]] = {}
    rows = ("real only", "real + zerogen (10/label)", "real + zerogen (30/label)")
    for block in REPORT.read_text(encoding="utf-8").split("\n### ")[1:]:
        learner = block.split(",", 1)[0]
        if learner not in LEARNERS.values() or "by shots per class: accuracy" not in block.splitlines()[0]:
            continue
        lines = [line for line in block.splitlines() if line.startswith("|")]
        columns = _cells(lines[0])[1:]
        table = {_cells(line)[0]: _cells(line)[1:] for line in lines[2:]}
        for c, column in enumerate(columns):
            shots = int(column.split()[0])
            values = [table.get(row, [""] * len(columns))[c] for row in rows]
            out[(learner, shots)] = [v if CELL.fullmatch(v) else "" for v in values]
    # Δ, CI and p of real + 30/label against real only, from the detailed table
    for line in REPORT.read_text(encoding="utf-8").splitlines():
        cells = _cells(line) if line.startswith("| bbc |") else []
        if len(cells) >= 10 and cells[3] == rows[2] and (cells[2], int(cells[1])) in out:
            out[(cells[2], int(cells[1]))].append(f"{cells[7]} {cells[8]}, p {cells[9]}")
    return out


def test_the_readme_default_run_table_is_the_committed_reports():
    readme, report = readme_table(), report_tables()
    assert readme, "no default-run table in the README"
    assert set(readme) == {k for k, v in report.items() if any(v)}, "the README lists other (learner, shots) rows"
    for key, values in readme.items():
        assert values == report[key], f"README row {key}: {values}, the committed default run: {report[key]}"
