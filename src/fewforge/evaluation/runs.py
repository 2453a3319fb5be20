"""Reading a run directory for the report: its finished synthetic sets, each with a seeded sample of its
kept and dropped rows (and a curated set's audit examples, from every row)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Sequence

from fewforge.evaluation import curation_report

SAMPLE_ROWS = 25  # kept and dropped rows shown per synthetic set


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
