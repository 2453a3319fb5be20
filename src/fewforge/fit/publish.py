"""The output folder of a fit: the final model's files at the top level (where SetFit, transformers and
peft look for them), its Hugging Face model card with the estimate, the synthetic set beside it as a
`datasets` folder with its own card, and estimate.json.

The files are hard links to the finished model stage in run/model/ (copies where links cannot be made),
so publishing costs nothing and a stage is never edited: run/published.json lists what the last publish
put at the top level, and a rerun removes exactly those before publishing again.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from fewforge.files import read_json, write_json, write_text
from fewforge.fit.estimate import REAL, SYNTHETIC, describe_protocol, estimate_table
from fewforge.rundir import DONE, RunDir

PUBLISHED = "published.json"
SYNTHETIC_DIR = "synthetic"


def condition_labels(summary: dict[str, Any], method: str) -> dict[str, str]:
    """The estimate table's row names; auto's row says what it chose in the folds."""
    if method != "auto" or SYNTHETIC not in summary["conditions"]:
        return {REAL: "real rows only", SYNTHETIC: f"real + {method}"}
    counts = Counter(summary["conditions"][SYNTHETIC]["methods"])
    chosen = ", ".join(f"{m} in {n}" for m, n in counts.most_common())
    return {REAL: "real rows only", SYNTHETIC: f"real + auto's choice ({chosen} of {sum(counts.values())} folds)"}


def final_training(summary: dict[str, Any]) -> str:
    """What the final model trained on, and why."""
    n, method = summary.get("final_rows", 0), summary.get("final_method")
    if summary["final"] == REAL and method:
        return "the real rows only (the synthetic rows lowered the estimate: the whole paired interval is below zero)"
    if n:
        return f"the real rows + {n} synthetic rows ({method}, made from all rows)"
    if method == "none":
        return "the real rows only (auto, run on all rows, kept no synthetic set)"
    return "the real rows only"


def publish(output: Path, run: RunDir, plan: Any, model_dir: Path, final: Any, summary: dict[str, Any],
            report: dict[str, Any]) -> None:
    from fewforge.learners.base import FitReport
    from fewforge.learners.card import write_card

    manifest = run.root / PUBLISHED
    for name in read_json(manifest) if manifest.is_file() else []:
        _remove(output / name)
    names = []
    for item in sorted(model_dir.iterdir()):
        if item.name != DONE:
            _link(item, output / item.name)
            names.append(item.name)
    syn_stage = run.root / "synthetic"
    if (syn_stage / "data.jsonl").is_file() and (syn_stage / "data.jsonl").stat().st_size:
        _link(syn_stage, output / SYNTHETIC_DIR)
        names.append(SYNTHETIC_DIR)
    learner = plan.learner_cls.load(plan.task, output)  # what the user will load: proves the folder reads back
    fit_report = FitReport(
        best_dev_accuracy=report.get("train_accuracy", 0.0), best_step=report.get("best_step", 0),
        steps=report.get("steps", 0), seconds=report.get("seconds", 0.0), extra=report.get("extra", {}),
    )
    cfg = plan.cfg
    data = {
        "real": len(plan.rows.examples),
        "per_label": plan.rows.counts(),
        "examples_file": cfg.examples,
        "duplicates_dropped": len(plan.rows.duplicates),
        "synthetic": len(final.rows),
        "synthetic_method": final.method,
        "synthetic_source": f"{SYNTHETIC_DIR}/" if final.rows else None,
    }
    card = write_card(output, learner, fit_report, data=data,
                      extra={"estimate": summary, "fit": cfg.model_dump(mode="json")})
    write_text(output / "README.md", fit_readme(output, learner, card, plan, final, summary))
    write_json(output / "estimate.json", summary)
    names += ["README.md", "model_card.json", "task.yaml", "estimate.json"]
    write_json(manifest, sorted(set(names)))


def _link(source: Path, target: Path) -> None:
    """Hard-link `source` (a file, or a folder tree, without its done.json) to `target`; copy where the
    filesystem cannot link."""
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        for child in source.iterdir():
            if child.name != DONE:
                _link(child, target / child.name)
        return
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def fit_readme(output: Path, learner: Any, card: dict[str, Any], plan: Any, final: Any, summary: dict[str, Any]) -> str:
    """The Hugging Face model card of a fit: the estimate (YAML metrics and a table), the training data,
    how the synthetic rows were made, and how to load the model."""
    from fewforge.learners.card import readme

    cfg, rows, task = plan.cfg, plan.rows, plan.task
    labels = condition_labels(summary, cfg.method)
    used = summary["final"]
    chosen = summary["conditions"][used]
    dataset = f"{Path(cfg.examples).name} ({summary['folds']}-fold CV x{summary['repeats']})"
    metrics = [(f"k-fold estimate, {labels[used]}", summary["metric"], chosen["estimate"])]
    metrics += [(f"k-fold pooled {m}, {labels[used]}", m, v) for m, v in chosen["pooled"].items() if m != summary["metric"]]
    counts = rows.counts()
    real_line = f"{len(rows.examples)} real rows from `{Path(cfg.examples).name}`" + (
        " (" + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + ")" if counts else "")
    if rows.duplicates:
        real_line += f"; {len(rows.duplicates)} duplicate row(s) dropped"
    diff = summary.get("difference")
    decision = f"The final model trained on {final_training(summary)}."
    if used == SYNTHETIC and plan.method is not None:
        decision += f" Its procedure's estimate is the row \"{labels[SYNTHETIC]}\"."
    body = [
        "## Estimate without a test set\n",
        estimate_table(summary, labels) + "\n",
        describe_protocol(summary) + ".",
        (f"Synthetic data {'helped' if diff['low'] > 0 else 'hurt' if diff['high'] < 0 else 'made no clear difference'} "
         f"on these rows ({100 * diff['estimate']:+.1f} points, 95% CI [{100 * diff['low']:+.1f}, {100 * diff['high']:+.1f}]). "
         if diff else "") + decision + "\n",
        "## Training data\n",
        f"- {real_line}; task `{task.name}` ({task.kind}) from {rows.layout}; `task.yaml` holds it.",
        (f"- learner `{cfg.learner}` with options {cfg.learner_options or '{}'}, seed {cfg.seed}; the learner chose its "
         "settings on its own training rows (no row was spent on a dev set)."),
    ]
    body += _synthetic_lines(output, plan, final, summary)
    return readme(learner, output, card, metrics=metrics, body="\n".join(body) + "\n", dataset=dataset,
                  extra_tags=["fewforge-fit", *(["synthetic-data"] if final.rows else [])])


def _synthetic_lines(output: Path, plan: Any, final: Any, summary: dict[str, Any]) -> list[str]:
    cfg = plan.cfg
    if plan.method is None:
        return []
    lines = ["", "## How the synthetic rows were made", ""]
    set_card = output / "run" / "synthetic" / "card.json"  # the final set's stage (published only when not empty)
    card = read_json(set_card) if set_card.is_file() else {}
    auto = card.get("auto") or {}
    if cfg.method == "auto":
        tried = ", ".join(f"{r['id']} {r['score']:.3f}" if r.get("status") == "scored" else f"{r['id']} ({r['status']})"
                          for r in auto.get("candidates", []))
        lines.append(f"- method `auto` (candidates {', '.join(str(c.get('name') if isinstance(c, dict) else c) for c in cfg.method_options.get('candidates', []))}): "
                     f"chose `{summary.get('final_method')}` on all rows{f' (search scores: {tried})' if tried else ''}; "
                     "in the estimate, each fold ran auto again on its training rows only "
                     f"(choices: {', '.join(sorted(set(summary['conditions'][SYNTHETIC]['methods']))) or '-'}).")
    else:
        per_fold = ("each fold's set was made from that fold's training rows only" if plan.method.reads_fewshot else
                    "it reads no labeled row, so one set served every fold")
        lines.append(f"- method `{cfg.method}` with options {cfg.method_options or '{}'}; in the estimate, {per_fold}.")
    lines.append(f"- generator `{cfg.generator}`, up to {cfg.budget} rows per label; every row is generated, none is real.")
    if final.rows:
        per = card.get("per_label") or {}
        lines.append(f"- kept {len(final.rows)} rows ({', '.join(f'{k}: {v}' for k, v in per.items())}); filters, drop "
                     "counts and lineage: `synthetic/README.md` (a `datasets` folder: `datasets.load_from_disk"
                     "('synthetic/hf')`, or `synthetic/data.parquet`).")
    else:
        lines.append("- the final set is empty: the real rows alone were kept.")
    return lines
