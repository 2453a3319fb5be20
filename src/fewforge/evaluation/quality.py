"""Data quality of every synthetic set in a run (`fewforge quality RUN_DIR`), written to quality.json and
shown in the report.

Per set:
- label fidelity: the share of rows whose intended label an auditor agrees with. The auditor is the linear
  probe (MiniLM features + logistic regression) trained on the task's real train split — 90 % of it, the
  other 10 % choosing its regularisation — and its accuracy on the run's test rows is reported beside it,
  so a weak auditor (RTE) reads as one;
- distinct-n (n = 1, 2, 3): unique n-grams over all n-grams of the generated field (lower-cased words);
- similarity to real rows: the mean cosine (MiniLM) between a row's generated field and the real train
  rows of its own label, and of the other labels; their gap says how class-specific the text is;
- self-BLEU: the mean sentence BLEU (sacrebleu: 13a tokens, lower-cased, exp smoothing, effective order;
  0-100) of each of a seeded sample of at most 200 rows against the other sampled rows as references
  (Zhu et al. 2018, Texygen); lower = more diverse. It rises with the number of references, so sets are
  compared at the same sample size;
- embedding coverage of the gold data (S3 App. C.1, `fewforge.evaluation.coverage`): the share of a gold
  sample (the real train split) with a synthetic point within γ in one joint t-SNE map of equal-size
  samples; γ = 2 × the median gold nearest-neighbour distance in that map. Per task, the coverage of the
  gold sample by a disjoint gold sample, made the same way, is the reference ("coverage_reference");
- parent-child similarity (S3 §3.6), over rows that extrapolate a real row (`lineage["extrapolates"] =
  {"id", "inputs": {field: text}, "label", "predicted"?}`: S3's error-extrapolated rows, GoldGen): the mean
  cosine (MiniLM) between the parent's and the child's generated field, the mean word-level Levenshtein
  distance (lower-cased whitespace words, the unit of S3's Table 6) and that distance over the longer of
  the two lengths, the mean lengths in words, and the count of such rows (per `lineage["ees_round"]`);
- the keep rate of post-processing and, for tuned generators, the tuning wall time and diagnostics (the dev
  guard's kept epoch and dev accuracies, weight concentration, hinge, prompt drift: tuning_diagnostics.py).
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from fewforge.data.schema import Example
from fewforge.errors import ConfigError
from fewforge.evaluation.coverage import COVERAGE_GAMMA, COVERAGE_ROWS, embedding_coverage, gold_reference, sample
from fewforge.evaluation.tables import method_order
from fewforge.evaluation.tuning_diagnostics import AUDIT_NOTE, TUNING_COLUMNS, TUNING_NOTE, tuning_diagnostics
from fewforge.tasks.base import Task

QUALITY_FILE = "quality.json"
AUDITOR_DEV_SHARE = 0.1
SELF_BLEU_ROWS = 200


@dataclass(frozen=True)
class QualityOptions:
    """Sample sizes and the map of the sampled metrics (recorded in quality.json as "options")."""

    coverage_rows: int = COVERAGE_ROWS  # gold and synthetic rows each in the joint map
    coverage_gamma: float = COVERAGE_GAMMA  # γ = gamma × the median gold nearest-neighbour distance
    projection: str = "tsne"  # or "pca" (faster, coarser)
    self_bleu_rows: int = SELF_BLEU_ROWS
    seed: int = 0

    def __post_init__(self) -> None:
        from fewforge.evaluation.coverage import PROJECTIONS

        if self.projection not in PROJECTIONS:
            raise ConfigError(f"unknown projection {self.projection!r}", hint=f"use one of {', '.join(PROJECTIONS)}")
        if self.coverage_rows < 1 or self.self_bleu_rows < 2 or self.coverage_gamma < 0:
            raise ConfigError(
                "coverage rows must be ≥ 1, self-BLEU rows ≥ 2 and gamma ≥ 0",
                hint=f"got {self.coverage_rows}, {self.self_bleu_rows} and {self.coverage_gamma}",
            )


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique n-grams / all n-grams over `texts` (lower-cased whitespace words); 0 for no n-grams."""
    grams = [tuple(words[i : i + n]) for t in texts for words in [t.lower().split()] for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def self_bleu(texts: Sequence[str], rows: int = SELF_BLEU_ROWS, seed: int = 0) -> float | None:
    """Mean sentence BLEU (0-100) of each text of a seeded sample of at most `rows` against the other
    sampled texts as references; None for fewer than two texts. Equal to sacrebleu.sentence_bleu(text,
    others, lowercase=True) per text, computed once per n-gram instead of once per (text, reference): the
    best reference count of an n-gram apart from the text itself is the top count, or the second when the
    text holds the top."""
    from sacrebleu.metrics import BLEU
    from sacrebleu.metrics.helpers import extract_all_word_ngrams

    texts = sample(texts, rows, seed)
    if len(texts) < 2:
        return None
    bleu = BLEU(lowercase=True, effective_order=True)
    order = bleu.max_ngram_order
    grams = [extract_all_word_ngrams(bleu.tokenizer(t.lower().rstrip()), 1, order) for t in texts]
    best: dict[tuple, tuple[int, int, int]] = {}  # n-gram -> (top count, its row, second count)
    for i, (counts, _) in enumerate(grams):
        for gram, k in counts.items():
            top, row, second = best.get(gram, (0, -1, 0))
            if k > top:
                best[gram] = (k, i, top)
            elif k > second:
                best[gram] = (top, row, k)
    lengths = [n for _, n in grams]
    scores = []
    for i, (counts, length) in enumerate(grams):
        correct, total = [0] * order, [0] * order
        for gram, k in counts.items():
            top, row, second = best[gram]
            total[len(gram) - 1] += k
            correct[len(gram) - 1] += min(k, second if row == i else top)
        ref_len = min((abs(length - n), n) for j, n in enumerate(lengths) if j != i)[1]  # closest, ties: shorter
        score = bleu.compute_bleu(
            correct, total, length, ref_len, smooth_method=bleu.smooth_method, smooth_value=bleu.smooth_value,
            effective_order=True, max_ngram_order=order,
        )
        scores.append(score.score)
    return statistics.fmean(scores)


def levenshtein(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Edit distance (insertions, deletions, substitutions) between two sequences, e.g. of words; one numpy
    row per item of the longer: d[j] = min over k ≤ j of t[k] + (j - k) is a running minimum."""
    import numpy as np

    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    ids: dict[Any, int] = {}
    xs = [ids.setdefault(x, len(ids)) for x in a]
    ys = np.array([ids.setdefault(y, len(ids)) for y in b])
    steps = np.arange(len(b) + 1)
    row = steps.copy()
    for i, x in enumerate(xs, start=1):
        t = np.empty_like(row)
        t[0] = i
        t[1:] = np.minimum(row[:-1] + (ys != x), row[1:] + 1)  # substitute or match, delete
        row = np.minimum.accumulate(t - steps) + steps  # insert
    return int(row[-1])


def _parent_text(task: Task, parent: Mapping[str, Any]) -> str:
    """The parent's generated field(s), from `lineage["extrapolates"]`; "" when one is missing."""
    inputs = parent.get("inputs") or {}
    values = [parent.get("label") if f == "label" else inputs.get(f) for f in task.generated_fields]
    return " ".join(values) if all(isinstance(v, str) and v.strip() for v in values) else ""


def parent_child(task: Task, examples: Sequence[Example]) -> dict[str, Any]:
    """S3 §3.6 over the rows that extrapolate a real row (`lineage["extrapolates"]`); the rest are skipped.
    Similarity keys are None when there are no such rows."""
    import numpy as np

    from fewforge.embeddings import embed

    pairs, rounds = [], Counter()
    for e in examples:
        parent = (e.lineage or {}).get("extrapolates")
        text = _parent_text(task, parent) if isinstance(parent, Mapping) else ""
        if not text:
            continue
        pairs.append((text, _generated(task, e)))
        if e.lineage.get("ees_round") is not None:
            rounds[str(e.lineage["ees_round"])] += 1
    out: dict[str, Any] = {
        "extrapolated_rows": len(pairs),
        "extrapolated_by_round": dict(sorted(rounds.items(), key=lambda kv: (len(kv[0]), kv[0]))) or None,
        "parent_child_cos": None, "parent_child_edit": None, "parent_child_edit_norm": None,
        "parent_words": None, "child_words": None,
    }
    if not pairs:
        return out
    parents, children = zip(*pairs)
    cos = np.sum(embed(list(parents)) * embed(list(children)), axis=1)
    words = [(p.lower().split(), c.lower().split()) for p, c in pairs]
    edits = [levenshtein(p, c) for p, c in words]
    out.update(
        parent_child_cos=float(np.mean(cos)),
        parent_child_edit=statistics.fmean(edits),
        parent_child_edit_norm=statistics.fmean(d / max(len(p), len(c), 1) for d, (p, c) in zip(edits, words)),
        parent_words=statistics.fmean(len(p) for p, _ in words),
        child_words=statistics.fmean(len(c) for _, c in words),
    )
    return out


def class_similarity(task: Task, synthetic: Sequence[Example], real: Sequence[Example]) -> tuple[float, float]:
    """(mean cosine to the real rows of the row's own label, mean cosine to the other labels' rows), over
    the generated field; the mean cosine to a set of unit vectors is the dot with their mean."""
    import numpy as np

    from fewforge.embeddings import embed

    labels = task.groups
    centroids = {}
    for label in labels:
        rows = [_generated(task, e) for e in real if task.group(e) == label]
        if rows:
            centroids[label] = embed(rows).mean(axis=0)
    vectors = embed([_generated(task, e) for e in synthetic])
    same, other = [], []
    for e, v in zip(synthetic, vectors):
        group = task.group(e)
        if group in centroids:
            same.append(float(v @ centroids[group]))
        rest = [float(v @ c) for label, c in centroids.items() if label != group]
        if rest:
            other.append(float(np.mean(rest)))
    return (float(np.mean(same)) if same else 0.0, float(np.mean(other)) if other else 0.0)


class Auditor:
    """The linear probe trained on a task's real train split: which label does a row read as?"""

    def __init__(self, task: Task, train: Sequence[Example], test: Sequence[Example]) -> None:
        from fewforge.learners.linear_probe import LinearProbe, LinearProbeConfig

        rows = list(train)
        random.Random(0).shuffle(rows)
        n_dev = max(1, int(len(rows) * AUDITOR_DEV_SHARE))
        self.task = task
        self.probe = LinearProbe(task, LinearProbeConfig(strategy="real"), seed=0)
        self.probe.fit(rows[n_dev:], rows[:n_dev])
        self.train_rows = len(rows) - n_dev
        self.test_accuracy = self.agreement(test) if test else None

    def agreement(self, rows: Sequence[Example]) -> float:
        return sum(p == e.label for p, e in zip(self.probe.predict(list(rows)), rows)) / max(len(rows), 1)

    def per_label(self, rows: Sequence[Example]) -> dict[str, float]:
        return {
            label: self.agreement(subset)
            for label in self.task.label_names
            if (subset := [e for e in rows if e.label == label])
        }


def _generated(task: Task, e: Example) -> str:
    """The text a generator wrote for a row (QA: the question; text-to-text: the target too)."""
    return " ".join(e.label if f == "label" else e.inputs[f] for f in task.generated_fields)


def assess_set(
    task: Task,
    examples: Sequence[Example],
    card: dict[str, Any],
    auditor: "Auditor | None",
    real: Sequence[Example],
    options: QualityOptions | None = None,
) -> dict[str, Any]:
    """Quality of one set; kinds without labels get no auditor, and their "same label" cosine is the
    similarity to the real rows (there is no other label). `real` is the gold data of the coverage map."""
    options = options or QualityOptions()
    texts = [_generated(task, e) for e in examples]
    same, other = class_similarity(task, examples, real)
    generated = card.get("generated") or 0
    covered = embedding_coverage(
        [_generated(task, e) for e in real], texts, rows=options.coverage_rows, gamma=options.coverage_gamma,
        projection=options.projection, seed=options.seed,
    ) or {"coverage": None, "coverage_rows": None, "coverage_radius": None, "coverage_map": None}
    bleu_rows = min(options.self_bleu_rows, len(texts))
    return {
        "rows": len(examples),
        "label_fidelity": auditor.agreement(examples) if auditor is not None else None,
        "label_fidelity_per_label": auditor.per_label(examples) if auditor is not None else None,
        **{f"distinct_{n}": distinct_n(texts, n) for n in (1, 2, 3)},
        "self_bleu": self_bleu(texts, options.self_bleu_rows, options.seed),
        "self_bleu_rows": bleu_rows if bleu_rows > 1 else None,
        "cos_same_label": same,
        "cos_other_labels": other if task.is_classification else None,
        "cos_gap": same - other if task.is_classification else None,
        **parent_child(task, examples),
        "keep_rate": (card.get("kept_after_filters", 0) / generated) if generated else None,
        # what tuned the generator: FewGen/DawGen's soft prompts, or DAFTT's LoRA teacher
        "tuning_s": (card.get("tuning") or {}).get("wall_time_s", card.get("teacher_time_s")),
        "tuning_reused": (card.get("tuning") or {}).get("reused"),
        **tuning_diagnostics(card.get("tuning") or {}),
        **covered,  # the map last: quality.json stays readable from the top
    }


def assess_run(
    run_dir: Path, progress: Callable[[str], None] | None = None, options: QualityOptions | None = None
) -> dict[str, Any]:
    """Quality of every finished synthetic set of the run, by task; written to RUN_DIR/quality.json."""
    import yaml

    from fewforge.config import RunConfig
    from fewforge.data.io import read_jsonl
    from fewforge.evaluation.runs import synthetic_sets
    from fewforge.files import write_json
    from fewforge.grid import load_data

    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml)", hint="pass the --output folder of a fewforge run")
    cfg = RunConfig.model_validate(yaml.safe_load(config_path.read_text(encoding="utf-8")))
    sets = synthetic_sets(run_dir)
    if not sets:
        raise ConfigError(f"{run_dir} holds no finished synthetic set", hint="run `fewforge generate` or `fewforge run` first")
    options = options or QualityOptions()
    out: dict[str, Any] = {"auditors": {}, "options": asdict(options), "coverage_reference": {}, "sets": []}
    for name, data in load_data(cfg).items():  # the run's own pool and test rows (max_test applied)
        task = data.task
        mine = [s for s in sets if s["card"].get("task") == name]
        if not mine:
            continue
        auditor = None
        if task.is_classification:  # label fidelity needs labels
            if progress:
                progress(f"{name}: training the auditor on {len(data.pool)} real rows")
            auditor = Auditor(task, data.pool, data.test)
            out["auditors"][name] = {
                "learner": "linear-probe", "train_rows": auditor.train_rows, "test_accuracy": auditor.test_accuracy
            }
        if progress:
            progress(f"{name}: coverage of the real rows by other real rows (the reference)")
        out["coverage_reference"][name] = gold_reference(
            [_generated(task, e) for e in data.pool], rows=options.coverage_rows, gamma=options.coverage_gamma,
            projection=options.projection, seed=options.seed,
        )
        for s in mine:
            if progress:
                progress(f"{name}: {s['path']}")
            examples = read_jsonl(run_dir / s["path"] / "data.jsonl", task)
            card = s["card"]
            shots = next((int(p[1:]) for p in Path(s["path"]).parts if p[:1] == "k" and p[1:].isdigit()), None)
            out["sets"].append(
                # the grid's method id (the set's folder: "s3-no-ees"), not the method's name ("s3")
                {"path": s["path"], "task": name, "method": Path(s["path"]).name, "seed": card.get("split_seed"),
                 "shots": shots, **assess_set(task, examples, card, auditor, data.pool, options)}
            )
    write_json(run_dir / QUALITY_FILE, out)
    return out


QUALITY_COLUMNS = (
    ("rows", "rows", "{:.0f}"),
    ("label fidelity %", "label_fidelity", "pct"),
    ("distinct-2", "distinct_2", "{:.3f}"),
    ("self-BLEU", "self_bleu", "{:.1f}"),
    ("cos same label", "cos_same_label", "{:.3f}"),
    ("cos other labels", "cos_other_labels", "{:.3f}"),
    ("gap", "cos_gap", "{:.3f}"),
    ("coverage %", "coverage", "pct"),
    ("extrapolated", "extrapolated_rows", "{:.0f}"),
    ("cos parent", "parent_child_cos", "{:.3f}"),
    ("edit / length", "parent_child_edit_norm", "{:.2f}"),
    ("kept %", "keep_rate", "pct"),
    ("tuning s", "tuning_s", "{:.0f}"),
    *TUNING_COLUMNS,
)
# Columns shown only when some set has a value (extrapolated: a count above 0): quality.json files older
# than them, and runs without extrapolated rows, keep the table they had.
OPTIONAL_COLUMNS = frozenset(
    {"self_bleu", "coverage", "extrapolated_rows", "parent_child_cos", "parent_child_edit_norm"}
    | {key for _, key, _ in TUNING_COLUMNS}
)
COLUMN_NOTES = {
    "self_bleu": "self-BLEU = mean sentence BLEU (0-100) of each of up to {self_bleu_rows} sampled rows against the "
    "other sampled rows, lower = more diverse",
    "coverage": "coverage = share of up to {coverage_rows} sampled real train rows with a synthetic row within γ in "
    "one joint {projection} map of equal-size samples (MiniLM), γ = {coverage_gamma:g} × the median "
    "nearest-neighbour distance among the real rows' points (two uniform samples: ≈ {ceiling:.0f}%)",
    "dev_acc_kept": TUNING_NOTE,
    "audit_kept": AUDIT_NOTE,
    "extrapolated_rows": "extrapolated = rows written from a real parent row (S3's error extrapolation, GoldGen); "
    "cos parent = mean cosine of parent and child; edit / length = word-level Levenshtein distance over the "
    "longer length (0 = a copy, ≈ 1 = all words changed)",
}


def _columns(sets: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    def shown(key: str) -> bool:
        values = [s.get(key) for s in sets]
        present = values if key == "extrapolated_rows" else [v is not None for v in values]
        return key not in OPTIONAL_COLUMNS or any(present)

    return [c for c in QUALITY_COLUMNS if shown(c[1])]


def quality_rows(quality: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per (task, shots, method): mean ± std over the seeds' sets."""
    groups: dict[tuple, list[dict]] = {}
    for s in quality.get("sets", []):
        groups.setdefault((s["task"], s.get("shots") or 0, s["method"]), []).append(s)
    columns = _columns(quality.get("sets", []))
    header = ["task", "method", "sets", *(title for title, _, _ in columns)]
    rows = []
    for (task, _, method), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], method_order(kv[0][2]))):
        cells = []
        for _, key, fmt in columns:
            values = [m[key] for m in members if m.get(key) is not None]
            cells.append(_cell(values, fmt))
        rows.append([task, method, str(len(members)), *cells])
    return header, rows


def auditor_note(quality: dict[str, Any]) -> str:
    parts = [
        f"{task}: {a['learner']} on {a['train_rows']} real train rows, {100 * a['test_accuracy']:.1f}% on the test rows"
        for task, a in quality.get("auditors", {}).items()
        if a.get("test_accuracy") is not None
    ]
    if not parts:
        return (
            "No label fidelity: these tasks have no labels (QA, text-to-text); "
            "'cos same label' is the mean cosine to the real rows' generated field."
        )
    return "Label fidelity = the share of rows the auditor labels as intended (" + "; ".join(parts) + ")."


def columns_note(quality: Mapping[str, Any]) -> str:
    """What the newer columns of the table mean, for those it shows ("" for none)."""
    shown = {key for _, key, _ in _columns(quality.get("sets", []))}
    options = {**asdict(QualityOptions()), **(quality.get("options") or {})}
    options["ceiling"] = 100 * (1 - 2 ** (-options["coverage_gamma"] ** 2))
    notes = [note.format(**options) for key, note in COLUMN_NOTES.items() if key in shown]
    references = [
        f"{task} {100 * r['coverage']:.1f}% ({r['coverage_rows']} + {r['coverage_rows']} rows)"
        for task, r in (quality.get("coverage_reference") or {}).items()
        if r and "coverage" in shown
    ]
    if references:
        notes.append("coverage of the real rows by other real rows, the same way: " + ", ".join(references))
    return ("; ".join(notes) + ".") if notes else ""


def _cell(values: list[float], fmt: str) -> str:
    if not values:
        return ""
    scale = 100.0 if fmt == "pct" else 1.0
    pattern = "{:.1f}" if fmt == "pct" else fmt
    mean = pattern.format(scale * statistics.fmean(values))
    if len(values) > 1 and fmt not in ("{:.0f}",):
        return f"{mean} ± {pattern.format(scale * statistics.stdev(values))}"
    return mean
