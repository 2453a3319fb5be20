"""Honest labels for short synthetic sets: a row says what its cells trained on, not what they asked for.

A set can come back short — filters dropped more than the top-up rounds replaced, `auto` chose no method,
the contamination check dropped copies of test rows — and a real + synthetic cell whose set came back
empty trains on the real rows alone. Each cell's record keeps the rows it asked for
(`train.synthetic_requested`) beside those it trained on (`train.synthetic`); a summary group keeps
both per seed (`training.synthetic_rows`), and:
- a group whose cells got fewer rows than asked is flagged ("⚠ short") in the console table, report.md
  and report.html, with a column naming the rows actually trained on and a warning line;
- a real + synthetic group whose cells got none is labelled as what it is: real only.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

SHORT = "⚠ short"


def synthetic_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A group's training facts on synthetic rows: asked for (the same in every seed) and trained on per
    seed. Empty for real-only groups and for records written before requests were recorded."""
    asked = [(r.get("train") or {}).get("synthetic_requested") for r in rows]
    if not any(a is not None for a in asked):
        return {}
    return {
        "synthetic_requested": max(a for a in asked if a is not None),
        "synthetic_rows": {str(r["seed"]): int((r.get("train") or {}).get("synthetic") or 0) for r in rows},
    }


def _facts(group: Mapping[str, Any]) -> tuple[int | None, dict[str, int]]:
    facts = group.get("training") or {}
    return facts.get("synthetic_requested"), facts.get("synthetic_rows") or {}


def is_short(group: Mapping[str, Any]) -> bool:
    asked, got = _facts(group)
    return asked is not None and any(n < asked for n in got.values())


def got_none(group: Mapping[str, Any]) -> bool:
    """Every cell of a real + synthetic group trained on the real rows alone."""
    asked, got = _facts(group)
    return group.get("condition") == "real+synthetic" and bool(asked) and bool(got) and not any(got.values())


def rows_trained(group: Mapping[str, Any]) -> str:
    """The synthetic rows a group's cells trained on: '60', or '12–60 of 60' when short ('-': none asked)."""
    asked, got = _facts(group)
    if asked is None or not got:
        return "-"
    low, high = min(got.values()), max(got.values())
    if low == high == asked:
        return str(asked)
    return (f"{low}" if low == high else f"{low}–{high}") + f" of {asked}"


def short_set_warnings(summary: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per group whose cells trained on fewer synthetic rows than they asked for."""
    lines = []
    for group in summary:
        if not is_short(group):
            continue
        asked, got = _facts(group)
        seeds = ", ".join(f"seed {s}: {n}" for s, n in got.items() if n < asked)
        what = (f"{group.get('method')} ({group.get('per_label')} per label"
                + (f", {group['strategy']})" if group.get("strategy") else ")"))
        verdict = ("it trained on the real rows alone and is shown as real only" if got_none(group)
                   else "its row is flagged ⚠ short")
        lines.append(
            f"{group['task']} {group['shots']}-shot {group['learner']}, {group.get('condition')} {what}: "
            f"trained on fewer synthetic rows than the {asked} asked ({seeds}); {verdict}"
        )
    return lines
