"""Grid cells: one learner trained on one split (+ synthetic rows) and scored on the task's test rows.

A cell is a function of the run directory and its job (`run_cell(job)`; the job carries the cell's id,
fingerprint and resolved rows): it reuses its finished folder when done.json carries the same fingerprint
and record.json / predictions.jsonl still match it, and otherwise trains, scores and writes into its own
folder only, through `RunDir.stage`. The driver (`CellRunner`) alone writes results.sqlite, says why
finished cells rerun, and never lets a bookkeeping failure hide the error that stopped a cell. Where
cells run is the executor's choice (executors/): in this process, a process pool, Ray tasks or SLURM
array jobs; a failed cell is recorded and the others go on.

The fingerprint names its parts (`inputs`): the split, the synthetic set, the learner and its options,
the scored test rows in full, and the contamination settings when rows are dropped; a rerun says which
part changed ("sst2: 4 finished cells rerun because the test rows changed").
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.console import Console

from fewforge.data.schema import Example, FewShotSplit
from fewforge.executors.base import CellOutcome, Executor, Submitted
from fewforge.files import read_json, write_json, write_lines
from fewforge.fingerprint import fingerprint
from fewforge.grid import Cell, Plan, SetKey
from fewforge.learners.base import Learner, LearnerConfig, Resources
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
    """Everything a cell needs, resolved by the driver so that a worker needs no data source, generator or
    plan: its folder, fingerprint, training rows, test rows and learner. Picklable (process pools, Ray,
    submitit); its checked stage stays with the process that checked it."""

    cell: Cell
    root: Path  # the run directory: on a cluster, the same path on every node
    directory: Path
    fingerprint: str
    inputs: dict[str, Any]
    split: FewShotSplit
    synthetic: list[Example]
    requested: int | None  # synthetic rows the cell asks for (None: real only)
    contaminated: list[dict[str, Any]] | None  # rows dropped as copies of test / this split's dev rows
    task: Task
    test: list[Example]
    learner: type[Learner]
    config: LearnerConfig
    resources: Resources
    save_model: bool
    seconds: float  # the grid bar's estimate of its work
    _stage: Stage | None = field(default=None, repr=False)

    def stage(self, run: RunDir | None = None) -> Stage:
        """The cell's stage, checked once (done.json and the outputs' sha256) and kept for the job's life."""
        if self._stage is None:
            run = run or RunDir(self.root)
            self._stage = run.stage(self.directory, self.fingerprint, outputs=OUTPUTS, inputs=self.inputs)
        return self._stage

    def __getstate__(self) -> dict[str, Any]:
        # a worker checks done.json again itself: a duplicate or retried execution finds the finished folder
        return {**self.__dict__, "_stage": None}

    def run(self, progress: Callable[..., None] | None = None) -> dict[str, Any]:
        """The cell's record (`run_cell`): what an executor calls, so executors never import this module."""
        return run_cell(self, progress)


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
    learner_config = plan.learner_config(cell)
    config = learner_config.model_dump(mode="json")
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
    spec = next(s for s in plan.cfg.learners if s.label == cell.learner)
    return CellJob(
        cell, run.root, run.cell_dir(cell.id), fp, inputs, split, synthetic, requested, contaminated,
        data.task, data.test, learner_cls, learner_config, learner_cls.resources.updated(spec.resources),
        plan.cfg.save_models, cell_seconds(plan, cell),
    )


def run_cell(job: CellJob, progress: Callable[..., None] | None = None) -> dict[str, Any]:
    """The cell's record: its finished folder's, or trained and scored now into its own folder only. A
    function of the run directory and the job alone: any process (a pool, a Ray task, a SLURM array
    task) may run it, and running it twice is harmless."""
    stage = job.stage()
    if stage.done:
        return read_json(job.directory / "record.json")
    with stage:
        learner = job.learner(job.task, job.config, seed=job.cell.seed)
        record = train_and_score(job, learner, progress)
        if job.requested is not None:  # what was asked beside what was trained on (report.md flags the gap)
            record["train"]["synthetic_requested"] = job.requested
        if job.contaminated is not None:
            record["train"]["contamination_dropped"] = len(job.contaminated)
            write_lines(job.directory / "dropped.jsonl", job.contaminated)
        record["fingerprint"] = job.fingerprint
        write_json(job.directory / "record.json", record)
        stage.info["metrics"] = record["metrics"]
    return record


class CellRunner:
    """The driver's side of the cells. `submit` hands jobs to the executor as soon as their inputs exist
    (real-only cells while the synthetic sets still generate), cells of learners that run on the driver
    to the local executor, and reads finished cells back; `collect` records every outcome: the store
    follows each cell (running → done, or failed with its error line and log), and a failed cell never
    stops the others. A disk failure stops the run: every other cell would meet it too."""

    def __init__(self, run: RunDir, store: Any, progress: Any, console: Console, executor: Executor) -> None:
        self.run, self.store, self.progress, self.console, self.executor = run, store, progress, console, executor
        self.records: dict[str, dict[str, Any]] = {}
        self.failures: list[CellOutcome] = []
        self.running: dict[str, CellJob] = {}
        self.batches: list[Submitted] = []

    def submit(self, jobs: Sequence[CellJob]) -> None:
        from fewforge.executors import LocalExecutor

        explain_reruns(self.run, jobs, self.console)
        todo = []
        for job in jobs:
            if job.stage(self.run).done:
                record = run_cell(job)
                self.store.finish(record, record["paths"])
                self.progress.advance(job.seconds, "cells")
                self.records[job.cell.id] = record
            else:
                todo.append(job)
        remote = [job for job in todo if not job.learner.runs_on_driver]
        here = [job for job in todo if job.learner.runs_on_driver]
        if remote:
            self.batches.append(self.executor.map_cells(remote, self._started, self.progress))
        if here:
            self.batches.append(LocalExecutor().map_cells(here, self._started, self.progress))

    def _started(self, job: CellJob) -> None:
        self.store.start(job.cell.id, job.fingerprint)
        self.running[job.cell.id] = job

    def collect(self, jobs: Sequence[CellJob]) -> tuple[list[dict[str, Any]], list[CellOutcome]]:
        """Every submitted cell's outcome recorded; returns the records in the order of `jobs`, and the failures."""
        for outcome in itertools.chain.from_iterable(self.batches):
            job = self.running[outcome.cell]
            self.progress.advance(job.seconds, "cells")
            if outcome.fatal is not None:
                raise outcome.fatal
            del self.running[outcome.cell]
            if outcome.record is not None:
                self.store.finish(outcome.record, outcome.record["paths"])
                log.info("cell %s: %s", outcome.cell, outcome.record["metrics"])
                self.records[outcome.cell] = outcome.record
            else:
                self._failed(outcome)
        return [self.records[job.cell.id] for job in jobs if job.cell.id in self.records], self.failures

    def _failed(self, outcome: CellOutcome) -> None:
        self.failures.append(outcome)
        quietly(lambda: self.store.fail(outcome.cell, outcome.error or "", outcome.log), f"recording {outcome.cell} as failed")
        log.error("cell %s failed: %s (log: %s)", outcome.cell, outcome.error, outcome.log)
        where = f" (log: {outcome.log})" if outcome.log else ""
        self.console.print(f"cell {outcome.cell} failed: {outcome.error}{where}", style="red", soft_wrap=True,
                           highlight=False, markup=False)

    def stop(self, exc: BaseException) -> None:
        """The run stops (a disk failure, Ctrl-C, a set that failed): cells not collected say why, and the
        engine gives up on them (a rerun reuses any that finished)."""
        for cell in self.running:
            quietly(lambda c=cell: self.store.fail(c, f"{type(exc).__name__}: {exc}"), f"recording {cell} as failed")
        for batch in self.batches:
            quietly(batch.close, "stopping the cells in flight")


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


def train_and_score(job: CellJob, learner: Any, progress: Any) -> dict[str, Any]:
    """Fit one learner, predict the test set, write predictions.jsonl; returns the cell's record."""
    from fewforge.evaluation import per_example, score
    from fewforge.evaluation.stats import confusion, per_class_f1

    task, test, split, synthetic, directory, cell = job.task, job.test, job.split, job.synthetic, job.directory, job.cell
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
    if job.save_model:
        from fewforge.learners.card import write_card

        learner.save(directory / "model")
        data_facts = {"real": len(split.train), "synthetic": len(synthetic), "split_seed": cell.seed, "shots": cell.shots}
        write_card(directory / "model", learner, report, data=data_facts, test={**metrics, "size": len(test)})
        model_path = str((directory / "model").relative_to(job.root))
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
            "record": str((directory / "record.json").relative_to(job.root)),
            "predictions": str((directory / "predictions.jsonl").relative_to(job.root)),
            "model": model_path,
        },
    }
