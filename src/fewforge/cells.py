"""Grid cells: one learner trained on one split (+ synthetic rows) and scored on the task's test rows.

A cell is a function of the run directory and its job (`run_cell`): it reuses its finished folder when
done.json carries the same fingerprint and record.json / predictions.jsonl still match it, and otherwise
trains, scores and writes into its own folder only, through `RunDir.stage`. The driver (`run_cells`)
alone writes results.sqlite, says why finished cells rerun, and never lets a bookkeeping failure hide the
error that stopped a cell. This is the shape issue 27's executors take over (`executor.map_cells`).

The fingerprint names its parts (`inputs`): the split, the synthetic set, the learner and its options,
the scored test rows in full, and the contamination settings when rows are dropped; a rerun says which
part changed ("sst2: 4 finished cells rerun because the test rows changed").
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.console import Console

from fewforge.data.schema import Example, FewShotSplit
from fewforge.files import read_json, write_json, write_lines
from fewforge.fingerprint import fingerprint
from fewforge.grid import Cell, Plan, SetKey, TaskData
from fewforge.rundir import RunDir, Stage
from fewforge.storage import quietly
from fewforge.tasks.base import Task

log = logging.getLogger("fewforge")

# What a reader of a finished cell relies on: its record, and the per-example predictions (the bootstrap)
OUTPUTS = ("record.json", "predictions.jsonl")
REASONS = {
    "split": "the few-shot split changed",
    "synthetic": "the synthetic set changed",
    "learner": "the learner or its options changed",
    "test": "the test rows changed",
    "contamination": "the contamination settings changed",
    "format": "fewforge's cell format changed",
}
Splits = dict[tuple[str, int, int], tuple[FewShotSplit, str]]
Sets = dict[SetKey, tuple[list[Example], str]]


@dataclass
class CellJob:
    """Everything a cell needs, resolved by the driver: its folder, fingerprint and training rows."""

    cell: Cell
    directory: Path
    fingerprint: str
    inputs: dict[str, Any]
    split: FewShotSplit
    synthetic: list[Example]
    requested: int | None  # synthetic rows the cell asks for (None: real only)
    contaminated: list[dict[str, Any]] | None  # rows dropped as copies of test / this split's dev rows
    _stage: Stage | None = field(default=None, repr=False)

    def stage(self, run: RunDir) -> Stage:
        """The cell's stage, checked once (done.json and the outputs' sha256) and kept for the job's life."""
        if self._stage is None:
            self._stage = run.stage(self.directory, self.fingerprint, outputs=OUTPUTS, inputs=self.inputs)
        return self._stage


def first_per_label(examples: Sequence[Example], n: int, task: Task | None = None) -> list[Example]:
    """The first n examples of each label (of the whole set for kinds without labels), in the set's
    order: a smaller set of the same generation."""
    taken: dict[str, int] = {}
    out = []
    for e in examples:
        group = task.group(e) if task is not None else e.label
        if taken.get(group, 0) < n:
            taken[group] = taken.get(group, 0) + 1
            out.append(e)
    return out


def prepare(run: RunDir, plan: Plan, cell: Cell, splits: Splits, sets: Sets, checks: dict[SetKey, Any]) -> CellJob:
    data = plan.data[cell.task]
    split, split_fp = splits[(cell.task, cell.shots, cell.seed)]
    synthetic: list[Example] = []
    set_fp, requested, contaminated = None, None, None
    if cell.condition != "real":
        examples, set_fp = sets[plan.set_key(cell)]
        if plan.cfg.contamination.drop:
            from fewforge.evaluation.contamination import dev_reference, drop_contaminated

            references = ("test", dev_reference(cell.shots))
            examples, contaminated = drop_contaminated(examples, checks[plan.set_key(cell)], references)
        synthetic = first_per_label(examples, cell.per_label or 0, data.task)
        requested = (cell.per_label or 0) * len(data.task.groups)
    learner_cls, _ = plan.learners[cell.learner]
    config = plan.learner_config(cell).model_dump(mode="json")
    # only when rows are dropped: the default check leaves finished cells' fingerprints as they were
    dropping = {"contamination": plan.cfg.contamination.semantic()} if contaminated is not None else {}
    fp = fingerprint(
        {
            "split": split_fp,
            "synthetic": set_fp,
            "per_label": cell.per_label,
            "learner": learner_cls.name,
            "config": config,
            "condition": cell.condition,
            "test": data.test_fingerprint,
            "v": 1,
            **dropping,
        }
    )
    inputs = {
        "split": split_fp,
        "synthetic": set_fp,
        "learner": fingerprint([learner_cls.name, config, cell.condition, cell.per_label]),
        "test": data.test_fingerprint,
        "contamination": fingerprint(dropping) if dropping else None,
        "format": 1,
    }
    return CellJob(cell, run.cell_dir(cell.id), fp, inputs, split, synthetic, requested, contaminated)


def run_cell(run: RunDir, plan: Plan, job: CellJob, progress: Callable[..., None] | None = None) -> dict[str, Any]:
    """The cell's record: its finished folder's, or trained and scored now into its own folder only."""
    stage = job.stage(run)
    if stage.done:
        return read_json(job.directory / "record.json")
    cell, data = job.cell, plan.data[job.cell.task]
    learner_cls, _ = plan.learners[cell.learner]
    with stage:
        learner = learner_cls(data.task, plan.learner_config(cell), seed=cell.seed)
        record = train_and_score(
            run, data, job.split, job.synthetic, learner, cell, job.directory, progress, save_model=plan.cfg.save_models
        )
        if job.requested is not None:  # what was asked beside what was trained on (report.md flags the gap)
            record["train"]["synthetic_requested"] = job.requested
        if job.contaminated is not None:
            record["train"]["contamination_dropped"] = len(job.contaminated)
            write_lines(job.directory / "dropped.jsonl", job.contaminated)
        record["fingerprint"] = job.fingerprint
        write_json(job.directory / "record.json", record)
        stage.info["metrics"] = record["metrics"]
    return record


def run_cells(
    run: RunDir, plan: Plan, jobs: Sequence[CellJob], store: Any, progress: Any, console: Console
) -> list[dict[str, Any]]:
    """Every cell in order, as the driver: the store follows each cell (running → done, or failed with
    the error), and a failure while recording a failure never replaces the error that stopped the cell."""
    explain_reruns(run, jobs, console)
    records = []
    for job in jobs:
        cell = job.cell
        seconds = cell_seconds(plan, cell)
        if job.stage(run).done:
            record = run_cell(run, plan, job)
            store.finish(record, record["paths"])
            progress.advance(seconds)
            records.append(record)
            continue
        store.start(cell.id, job.fingerprint)
        try:
            with progress.stage(cell.id, 1, seconds) as update:
                record = run_cell(run, plan, job, update)
        except BaseException as exc:
            quietly(lambda e=exc: store.fail(cell.id, f"{type(e).__name__}: {e}"), f"recording {cell.id} as failed")
            raise
        store.finish(record, record["paths"])
        log.info("cell %s: %s", cell.id, record["metrics"])
        records.append(record)
    return records


def explain_reruns(run: RunDir, jobs: Sequence[CellJob], console: Console) -> None:
    """One line per reason for finished cells that rerun: which input changed, per task; and one line per
    damaged cell folder (its record no longer matches its done.json)."""
    groups: dict[tuple[str, str], int] = {}
    for job in jobs:
        stage = job.stage(run)
        if stage.damaged:
            console.print(f"[yellow]warning: {job.directory.relative_to(run.root)}: {stage.damaged}; the cell "
                          "reruns (the damaged folder moves to _stale/)[/]", soft_wrap=True, highlight=False)
        elif stage.replaces_finished:
            why = (" and ".join(REASONS.get(k, k) for k in stage.changed) if stage.changed
                   else "their fingerprint changed (finished before fewforge recorded its parts)")
            key = (job.cell.task, why)
            groups[key] = groups.get(key, 0) + 1
    for (task, why), n in groups.items():
        cells = "cell reruns" if n == 1 else "cells rerun"
        console.print(f"{task}: {n} finished {cells} because {why} (the old results move to _stale/)",
                      soft_wrap=True, highlight=False)
        log.info("%s: %d finished cells rerun because %s", task, n, why)


def cell_seconds(plan: Plan, cell: Cell) -> float:
    learner_cls, _ = plan.learners[cell.learner]
    return learner_cls.seconds_per_cell * (2 if cell.condition == "real+synthetic" else 1)


def training_log(report: Any, synthetic: Sequence[Example]) -> dict[str, Any]:
    """training.json: the dev history, gradient surgery's per-step record, and under `paired+reweight`
    every synthetic row's mean learned weight (None: never drawn)."""
    log = {"history": report.history, "surgery": report.surgery}
    if report.row_weights:
        log["row_weights"] = [
            {"id": e.id, "label": e.label, "weight": None if w is None else round(w, 4)}
            for e, w in zip(synthetic, report.row_weights)
        ]
    return log


def train_and_score(
    run: RunDir,
    data: TaskData,
    split: FewShotSplit,
    synthetic: list[Example],
    learner: Any,
    cell: Cell,
    directory: Path,
    progress: Any,
    *,
    save_model: bool,
) -> dict[str, Any]:
    """Fit one learner, predict the test set, write predictions.jsonl; returns the cell's record."""
    from fewforge.evaluation import per_example, score
    from fewforge.evaluation.stats import confusion, per_class_f1

    task, test = data.task, data.test
    report = learner.fit(split.train, split.dev, synthetic=synthetic, progress=progress)
    t0 = time.perf_counter()
    labels = task.label_names
    if task.is_classification:
        proba = learner.predict_proba(test)
        predicted = [labels[int(i)] for i in proba.argmax(axis=1)]
        probabilities = [[round(float(v), 5) for v in row] for row in proba]
    else:  # answer spans or output texts
        predicted, probabilities = learner.predict(test), [None] * len(test)
    predict_seconds = time.perf_counter() - t0
    gold = [task.spec.gold(e) for e in test]
    scores = per_example(task, gold, predicted)
    write_lines(
        directory / "predictions.jsonl",
        (
            {"id": e.id, "gold": g, "pred": p, **({"proba": row} if row is not None else {}), "score": s}
            for e, g, p, row, s in zip(test, gold, predicted, probabilities, scores or [None] * len(test))
        ),
    )
    write_json(directory / "training.json", training_log(report, synthetic))
    metrics = score(task, gold, predicted)
    classes = (
        {"per_class_f1": per_class_f1(gold, predicted, labels), "confusion": confusion(gold, predicted, labels)}
        if task.is_classification
        else {}
    )
    model_path = None
    if save_model:
        from fewforge.learners.card import write_card

        learner.save(directory / "model")
        data_facts = {"real": len(split.train), "synthetic": len(synthetic), "split_seed": cell.seed, "shots": cell.shots}
        write_card(directory / "model", learner, report, data=data_facts, test={**metrics, "size": len(test)})
        model_path = str((directory / "model").relative_to(run.root))
    return {
        **cell.axes(),
        "metrics": metrics,
        **classes,
        "labels": labels,
        "dev": {"best_accuracy": report.best_dev_accuracy, "best_step": report.best_step, "steps": report.steps},
        "train": {"real": len(split.train), "synthetic": len(synthetic), "steps": report.steps, **report.extra},
        "test_size": len(test),
        "seconds": {"train": round(report.seconds, 2), "predict": round(predict_seconds, 2)},
        "paths": {
            "record": str((directory / "record.json").relative_to(run.root)),
            "predictions": str((directory / "predictions.jsonl").relative_to(run.root)),
            "model": model_path,
        },
    }
