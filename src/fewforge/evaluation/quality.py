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
- the keep rate of post-processing and, for tuned generators, the tuning wall time (from the set's card).
"""

from __future__ import annotations

import random
import statistics
from pathlib import Path
from typing import Any, Callable, Sequence

from fewforge.data.schema import Example
from fewforge.errors import ConfigError
from fewforge.tasks.base import Task

QUALITY_FILE = "quality.json"
AUDITOR_DEV_SHARE = 0.1


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique n-grams / all n-grams over `texts` (lower-cased whitespace words); 0 for no n-grams."""
    grams = [tuple(words[i : i + n]) for t in texts for words in [t.lower().split()] for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


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
    task: Task, examples: Sequence[Example], card: dict[str, Any], auditor: "Auditor | None", real: Sequence[Example]
) -> dict[str, Any]:
    """Quality of one set; kinds without labels get no auditor, and their "same label" cosine is the
    similarity to the real rows (there is no other label)."""
    texts = [_generated(task, e) for e in examples]
    same, other = class_similarity(task, examples, real)
    generated = card.get("generated") or 0
    return {
        "rows": len(examples),
        "label_fidelity": auditor.agreement(examples) if auditor is not None else None,
        "label_fidelity_per_label": auditor.per_label(examples) if auditor is not None else None,
        **{f"distinct_{n}": distinct_n(texts, n) for n in (1, 2, 3)},
        "cos_same_label": same,
        "cos_other_labels": other if task.is_classification else None,
        "cos_gap": same - other if task.is_classification else None,
        "keep_rate": (card.get("kept_after_filters", 0) / generated) if generated else None,
        "tuning_s": (card.get("tuning") or {}).get("wall_time_s"),
        "tuning_reused": (card.get("tuning") or {}).get("reused"),
    }


def assess_run(run_dir: Path, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Quality of every finished synthetic set of the run, by task; written to RUN_DIR/quality.json."""
    import yaml

    from fewforge.config import RunConfig
    from fewforge.data.io import read_jsonl
    from fewforge.evaluation.report import synthetic_sets
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
    out: dict[str, Any] = {"auditors": {}, "sets": []}
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
        for s in mine:
            if progress:
                progress(f"{name}: {s['path']}")
            examples = read_jsonl(run_dir / s["path"] / "data.jsonl", task)
            card = s["card"]
            shots = next((int(p[1:]) for p in Path(s["path"]).parts if p[:1] == "k" and p[1:].isdigit()), None)
            out["sets"].append(
                {"path": s["path"], "task": name, "method": card.get("method"), "seed": card.get("split_seed"),
                 "shots": shots, **assess_set(task, examples, card, auditor, data.pool)}
            )
    write_json(run_dir / QUALITY_FILE, out)
    return out


QUALITY_COLUMNS = (
    ("rows", "rows", "{:.0f}"),
    ("label fidelity %", "label_fidelity", "pct"),
    ("distinct-2", "distinct_2", "{:.3f}"),
    ("cos same label", "cos_same_label", "{:.3f}"),
    ("cos other labels", "cos_other_labels", "{:.3f}"),
    ("gap", "cos_gap", "{:.3f}"),
    ("kept %", "keep_rate", "pct"),
    ("tuning s", "tuning_s", "{:.0f}"),
)


def quality_rows(quality: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per (task, shots, method): mean ± std over the seeds' sets."""
    groups: dict[tuple, list[dict]] = {}
    for s in quality.get("sets", []):
        groups.setdefault((s["task"], s.get("shots") or 0, s["method"]), []).append(s)
    header = ["task", "method", "sets", *(title for title, _, _ in QUALITY_COLUMNS)]
    rows = []
    for (task, _, method), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], _method_order(kv[0][2]))):
        cells = []
        for _, key, fmt in QUALITY_COLUMNS:
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


def _method_order(method: str) -> tuple[int, str]:
    order = ["zerogen", "fewgen", "dawgen"]
    return (order.index(method) if method in order else len(order), method)


def _cell(values: list[float], fmt: str) -> str:
    if not values:
        return ""
    scale = 100.0 if fmt == "pct" else 1.0
    pattern = "{:.1f}" if fmt == "pct" else fmt
    mean = pattern.format(scale * statistics.fmean(values))
    if len(values) > 1 and fmt not in ("{:.0f}",):
        return f"{mean} ± {pattern.format(scale * statistics.stdev(values))}"
    return mean
