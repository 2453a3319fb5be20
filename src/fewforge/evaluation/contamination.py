"""Test-set contamination check: which synthetic rows copy a row of the test split or of the few-shot dev
set. A generator can reproduce benchmark sentences it saw in pre-training; a result is only trustworthy
once the synthetic set is checked against what the learner is scored (test) and selected (dev) on.

Three checks per reference split, each counted on its own (a row can be flagged by several):
- **exact**: the same text after normalisation (case, punctuation, whitespace, accents, and the PTB token
  split of "does n't"/"wo n't" in SST-2 and other GLUE files, so "won't" matches "wo n't").
- **ngram**: a shared span of `ngram` words (default 10). GPT-3's 13-grams suit documents, not
  sentences: 24 % of SST-2's test sentences are shorter than 13 words and could never match. At 8 words,
  stock phrases of reviews ("one of the best films of the year") flag rows that copy nothing (5 of 6,920
  SST-2 train sentences share an 8-gram with a test sentence; 1 at 10). A reference shorter than `ngram`
  words counts when a row contains all of it and it has at least `ngram_min` (6) words; shorter ones are
  left to the exact and embedding checks. docs/fidelity.md has the measurements.
- **embedding**: MiniLM cosine ≥ `threshold` (default 0.9) to the nearest reference row: paraphrase-level
  near-copies. On SST-2, hand-written paraphrases of test sentences scored a median 0.97 (24 of 30 ≥ 0.9),
  while no SST-2 train sentence came within 0.9 of a test sentence (max 0.898, 99.9th percentile 0.80).

What is compared depends on the task kind: the fields the generator writes (`task.generated_fields`:
the text; a pair's second sentence; a QA question; a text-to-text target), against the same fields of
the reference rows. Fields a prompt copies from a pool row (a pair's first sentence, a QA context) are
compared exactly and counted apart as **given**: a context copied from the test split is contamination
of its own, whatever question was written for it.

The pipeline checks every synthetic set against the grid's test rows (after `max_test`) and the dev rows
of every split the set serves, stores the flags beside the set (`contamination/contamination.json`, a
stage of its own through `RunDir.stage`: a finished set is checked on load without being redone, and a
check whose references changed is retired to _stale/) and the counts in its `card.json`; `contamination: {drop: true}` drops the flagged rows before each cell trains.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from fewforge.data.schema import Example
from fewforge.tasks.base import Task

CONTAMINATION_STAGE = "contamination"  # the check's stage folder inside the set's folder
CONTAMINATION_FILE = f"{CONTAMINATION_STAGE}/contamination.json"  # relative to the set's folder
VERSION = 1
CHECKS = ("exact", "ngram", "embedding", "given")
WHAT = {
    "exact": "the same text after normalisation (case, punctuation, whitespace, accents, PTB n't)",
    "ngram": "shares a span of {ngram} words with a reference row (or all of a reference row of {ngram_min}+ words)",
    "embedding": "MiniLM cosine ≥ {threshold} to a reference row (a paraphrase-level near-copy)",
    "given": "the fields copied from a pool row (pair first sentence, QA context) equal a reference row's",
}


class ContaminationConfig(BaseModel):
    """The contamination check of every synthetic set (run-level: `contamination:` in a grid file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drop: bool = Field(
        False,
        description="drop flagged synthetic rows before training: rows flagged against the test rows or the "
        "cell's own few-shot dev rows (changes what cells train on)",
    )
    ngram: int = Field(10, ge=3, description="words in a shared span that counts as a copy (GPT-3 used 13 on documents)")
    ngram_min: int = Field(
        6, ge=1, description="a reference shorter than `ngram` counts when wholly contained and at least this long"
    )
    threshold: float = Field(0.9, gt=0, le=1, description="MiniLM cosine at which a row is a near-copy")
    embedding: bool = Field(True, description="run the embedding check (false: exact and n-gram only, no model)")
    embedder: str | None = Field(None, description="sentence-transformers model dir (None = packaged MiniLM)")
    examples: int = Field(3, ge=0, description="example pairs kept per reference and check in the card")

    def semantic(self) -> dict[str, Any]:
        """What decides which rows are flagged (for fingerprints); not `drop` or `examples`."""
        return self.model_dump(mode="json", exclude={"drop", "examples"})


# -- what is compared ------------------------------------------------------------------------------------

_NOT = re.compile(r"\s*n['’]t\b", re.I)


def contamination_key(text: str) -> str:
    """Normalised text: postprocess.normalize after joining the PTB split of n't ("wo n't" = "won't") and
    dropping accents ("clichés" = "cliches": SST-2 is lower-cased ASCII, generators write accents)."""
    import unicodedata

    from fewforge.synthesis.postprocess import normalize

    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return normalize(_NOT.sub(" not", text))


def _value(example: Example, field: str) -> str:
    return example.label if field == "label" else example.inputs.get(field, "")


def checked_text(task: Task, example: Example) -> str:
    """The fields a generator writes, joined (what the exact, n-gram and embedding checks compare)."""
    return " ".join(_value(example, f) for f in task.generated_fields).strip()


def given_text(task: Task, example: Example) -> str:
    """The fields a prompt copies from a pool row, joined ("" for kinds without them)."""
    return " ".join(example.inputs.get(f, "") for f in task.given_fields).strip()


# -- the three checks (one entry per synthetic row: the match, or None) ------------------------------------


def exact_matches(keys: Sequence[str], reference_keys: Sequence[str]) -> list[int | None]:
    """Index of a reference with the same normalised text."""
    index: dict[str, int] = {}
    for j, key in enumerate(reference_keys):
        if key:
            index.setdefault(key, j)
    return [index.get(k) if k else None for k in keys]


def ngram_matches(
    keys: Sequence[str], reference_keys: Sequence[str], n: int, n_min: int
) -> list[tuple[int, str] | None]:
    """(reference index, shared span) for rows that share an n-word span with a reference, or contain all
    of a reference of n_min..n-1 words. An index of the references' spans: O(total words), not O(n × m)
    (near_duplicates_ngram in dedup.py compares every pair by bigram Jaccard, a similarity, not a copy)."""
    spans: dict[tuple[str, ...], int] = {}
    lengths: set[int] = set()
    for j, key in enumerate(reference_keys):
        words = key.split()
        if len(words) >= n:
            for i in range(len(words) - n + 1):
                spans.setdefault(tuple(words[i : i + n]), j)
        elif len(words) >= n_min:
            spans.setdefault(tuple(words), j)
            lengths.add(len(words))
    out: list[tuple[int, str] | None] = []
    for key in keys:
        words, found = key.split(), None
        for size in sorted({n, *lengths}, reverse=True):
            start = next((i for i in range(len(words) - size + 1) if tuple(words[i : i + size]) in spans), None)
            if start is not None:
                partner, stop = spans[tuple(words[start : start + size])], start + size
                # report the whole shared run: extend while the next n-gram is the same reference's too
                while size == n and stop < len(words) and spans.get(tuple(words[stop - n + 1 : stop + 1])) == partner:
                    stop += 1
                found = (partner, " ".join(words[start:stop]))
                break
        out.append(found)
    return out


def embedding_matches(
    texts: Sequence[str], reference_texts: Sequence[str], threshold: float, embedder: str | None = None
) -> list[tuple[int, float] | None]:
    """(reference index, cosine) of the nearest reference when it is at least `threshold`."""
    from fewforge.embeddings import embed
    from fewforge.synthesis.dedup import nearest

    rows = [i for i, t in enumerate(texts) if t]
    refs = [j for j, t in enumerate(reference_texts) if t]
    out: list[tuple[int, float] | None] = [None] * len(texts)
    if not rows or not refs:
        return out
    sims, ids = nearest(embed([texts[i] for i in rows], embedder), embed([reference_texts[j] for j in refs], embedder))
    for i, sim, j in zip(rows, sims, ids):
        if j >= 0 and sim >= threshold:
            out[i] = (refs[int(j)], float(sim))
    return out


# -- one set against its references ------------------------------------------------------------------------


def check(
    task: Task,
    synthetic: Sequence[Example],
    references: Mapping[str, Sequence[Example]],
    config: ContaminationConfig | None = None,
) -> list[dict[str, Any]]:
    """Every flag: one dict per (synthetic row, reference, check) with the row, its partner and the
    evidence (similarity or shared span), in row order."""
    config = config or ContaminationConfig()
    texts = [checked_text(task, e) for e in synthetic]
    keys = [contamination_key(t) for t in texts]
    given = [contamination_key(given_text(task, e)) for e in synthetic]
    flags: list[tuple[int, int, str, Example, dict[str, Any]]] = []  # (row, reference order, check, partner, extra)
    for order, (name, rows) in enumerate(references.items()):
        ref_texts = [checked_text(task, e) for e in rows]
        ref_keys = [contamination_key(t) for t in ref_texts]

        def add(kind: str, matches: Sequence[Any], extra: Any = lambda m: {}) -> None:
            for i, m in enumerate(matches):
                if m is not None:
                    j = m if isinstance(m, int) else m[0]
                    flags.append((i, order, kind, rows[j], {"reference": name, **extra(m)}))

        add("exact", exact_matches(keys, ref_keys))
        add("ngram", ngram_matches(keys, ref_keys, config.ngram, config.ngram_min), lambda m: {"span": m[1]})
        if config.embedding:
            add(
                "embedding",
                embedding_matches(texts, ref_texts, config.threshold, config.embedder),
                lambda m: {"similarity": round(m[1], 4)},
            )
        if task.given_fields:
            add("given", exact_matches(given, [contamination_key(given_text(task, e)) for e in rows]))
    flags.sort(key=lambda f: (f[0], f[1], CHECKS.index(f[2])))
    return [
        {
            "id": synthetic[i].id,
            "row": i,
            "label": synthetic[i].label,
            "text": given_text(task, synthetic[i]) if kind == "given" else texts[i],
            "reference": extra.pop("reference"),
            "check": kind,
            "partner_id": partner.id,
            "partner_text": given_text(task, partner) if kind == "given" else checked_text(task, partner),
            "partner_label": partner.label,
            **extra,
        }
        for i, _, kind, partner, extra in flags
    ]


def summarize(
    flags: Sequence[Mapping[str, Any]],
    references: Mapping[str, Sequence[Example]],
    n_rows: int,
    config: ContaminationConfig,
    task: Task,
) -> dict[str, Any]:
    """The card's section: per reference, the rows flagged by each check, by any ("rows"), and a few
    example pairs per check."""
    checks = [c for c in CHECKS if (c != "embedding" or config.embedding) and (c != "given" or task.given_fields)]
    out: dict[str, Any] = {}
    for name, rows in references.items():
        mine = [f for f in flags if f["reference"] == name]
        counts = {c: len({f["row"] for f in mine if f["check"] == c}) for c in checks}
        examples = []
        for c in checks:
            examples += [
                {k: f[k] for k in ("check", "id", "text", "partner_id", "partner_text", "similarity", "span") if k in f}
                for f in [f for f in mine if f["check"] == c][: config.examples]
            ]
        out[name] = {"size": len(rows), **counts, "rows": len({f["row"] for f in mine}), "examples": examples}
    what = {c: WHAT[c].format(**config.model_dump()) for c in checks}
    return {
        "checked": n_rows,
        "fields": list(task.generated_fields),
        "given_fields": list(task.given_fields),
        "references": out,
        "checks": what,
        "config": config.semantic(),
        "drop": config.drop,
    }


def _reference_fingerprint(task: Task, rows: Sequence[Example]) -> str:
    from fewforge.fingerprint import fingerprint

    return fingerprint([(e.id, checked_text(task, e), given_text(task, e)) for e in rows])


def check_set(
    directory: Any,
    task: Task,
    examples: Sequence[Example],
    references: Mapping[str, Sequence[Example]],
    config: ContaminationConfig,
    set_fingerprint: str,
    run: Any = None,
) -> dict[str, Any]:
    """Check a finished synthetic set (in `directory`) once: the flags go to contamination.json beside it
    (a stage of `run`, the RunDir holding `directory`: reused while the set, the references and the
    check's settings are the same), the counts into its card.json and dataset card. Returns
    {"fingerprint", "summary", "flags"}."""
    from pathlib import Path

    from fewforge.files import read_json, write_json, write_text
    from fewforge.fingerprint import fingerprint
    from fewforge.rundir import RunDir

    directory = Path(directory)
    fp = fingerprint(
        {
            "set": set_fingerprint,
            "references": {name: _reference_fingerprint(task, rows) for name, rows in references.items()},
            "config": config.semantic(),
            "examples": config.examples,  # kept in the stored summary
            "v": VERSION,
        }
    )
    run = run if run is not None else RunDir(directory)
    path = directory / CONTAMINATION_FILE
    stage = run.stage(path.parent, fp, outputs=(path.name,))
    if stage.done:
        stored = read_json(path)
    else:
        flags = check(task, examples, references, config)
        stored = {"fingerprint": fp, "summary": summarize(flags, references, len(examples), config, task), "flags": flags}
        with stage:
            write_json(path, stored)
    summary = {**stored["summary"], "drop": config.drop, "file": CONTAMINATION_FILE}
    card_path = directory / "card.json"
    if card_path.is_file():
        card = read_json(card_path)
        if card.get("contamination") != summary:
            write_json(card_path, {**card, "contamination": summary})
            readme = directory / "README.md"
            if readme.is_file():
                write_text(readme, with_section(readme.read_text(encoding="utf-8"), card_section(summary)))
    return {**stored, "summary": summary}


def drop_contaminated(
    examples: Sequence[Example], stored: Mapping[str, Any], references: Sequence[str]
) -> tuple[list[Example], list[dict[str, Any]]]:
    """The rows not flagged against any of `references`, and one record per dropped row (its first flag:
    reason `contamination_<reference>_<check>`, partner and evidence), as postprocess records a drop."""
    first: dict[int, Mapping[str, Any]] = {}  # row -> its first flag against these references
    for flag in stored.get("flags", []):
        if flag["reference"] in references:
            first.setdefault(flag["row"], flag)
    kept = [e for i, e in enumerate(examples) if i not in first]
    dropped = [
        {
            **{k: v for k, v in flag.items() if k not in ("row", "check")},
            "reason": f"contamination_{flag['reference']}_{flag['check']}".replace("-", "_"),
        }
        for _, flag in sorted(first.items())
    ]
    return kept, dropped


def dev_reference(shots: int) -> str:
    """The name of a split's dev rows among a set's references."""
    return f"dev-k{shots}"


# -- reading it back: cards, results and the report ---------------------------------------------------------


def card_section(summary: Mapping[str, Any]) -> str:
    """The dataset card's (README.md) section."""
    header, rows = reference_rows(summary)
    lines = [
        "## Contamination check",
        "",
        f"Compared fields: {', '.join(summary.get('fields', []))}"
        + (f"; copied fields: {', '.join(summary['given_fields'])}" if summary.get("given_fields") else "")
        + ". Rows flagged by each check (a row can be flagged by several); `rows`: by any.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
        *(f"- {name}: {what}" for name, what in summary.get("checks", {}).items()),
        "",
        f"Every flagged row, with the reference row it copies, is in `{summary.get('file', CONTAMINATION_FILE)}`.",
    ]
    return "\n".join(lines) + "\n"


def with_section(readme: str, section: str) -> str:
    """`readme` with its contamination section replaced (or put before the citation, or appended)."""
    start = readme.find("## Contamination check")
    if start < 0:
        cite = readme.find("## Citation")
        if cite >= 0:
            return readme[:cite] + section + "\n" + readme[cite:]
        return readme.rstrip() + "\n\n" + section
    end = readme.find("\n## ", start + 1)
    return readme[:start] + section + ("\n" + readme[end + 1 :] if end >= 0 else "")


def reference_rows(summary: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    checks = [c for c in CHECKS if c in summary.get("checks", {})]
    header = ["reference", "rows in it", *checks, "rows"]
    rows = [
        [name, str(r.get("size", "")), *(str(r.get(c, 0)) for c in checks), str(r.get("rows", 0))]
        for name, r in summary.get("references", {}).items()
    ]
    return header, rows


def set_rows(sets: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The report's table: a row per (synthetic set, reference) with the counts per check."""
    header = ["set", "reference", "checked", "exact", "ngram", "embedding", "given", "rows flagged", "dropped"]
    rows = []
    for s in sets:
        summary = s["card"].get("contamination")
        if not summary:
            continue
        for name, r in summary["references"].items():
            rows.append(
                [
                    s["path"],
                    f"{name} ({r['size']})",
                    str(summary["checked"]),
                    *(str(r[c]) if c in r else "-" for c in ("exact", "ngram", "embedding", "given")),
                    str(r["rows"]),
                    "before training" if summary.get("drop") and r["rows"] else "no",
                ]
            )
    return header, rows


def set_examples(sets: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[list[str]]]]:
    """(set path, rows of [reference, check, synthetic text, reference text, evidence]) for every set
    with flags."""
    out = []
    for s in sets:
        summary = s["card"].get("contamination") or {}
        rows = [
            [
                name,
                ex["check"],
                ex.get("text", ""),
                f"{ex.get('partner_id', '')}: {ex.get('partner_text', '')}",
                f"{ex['similarity']:.3f}" if "similarity" in ex else ex.get("span", ""),
            ]
            for name, r in summary.get("references", {}).items()
            for ex in r.get("examples", [])
        ]
        if rows:
            out.append((s["path"], rows))
    return out


def run_summary(cards: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """results.json's `contamination`: counts per set and reference, and the warnings a report shows."""
    sets = {
        path: {name: {k: v for k, v in r.items() if k != "examples"} for name, r in c["contamination"]["references"].items()}
        for path, c in cards.items()
        if c.get("contamination")
    }
    return {"sets": sets, "warnings": warnings(cards)}


def warnings(cards: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per synthetic set whose rows copy test rows (any check)."""
    out = []
    for path, card in cards.items():
        summary = card.get("contamination") or {}
        test = summary.get("references", {}).get("test")
        if not test or not test.get("rows"):
            continue
        counts = ", ".join(f"{c} {test[c]}" for c in CHECKS if test.get(c))
        fate = "dropped before training" if summary.get("drop") else "kept in training: its results may be inflated"
        out.append(
            f"synthetic set {path} contains {test['rows']} of its {summary.get('checked', '?')} rows that copy "
            f"test rows ({counts}); {fate}"
        )
    return out
