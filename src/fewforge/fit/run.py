"""`fewforge fit`, top to bottom: check the user's rows (nothing is written before they pass) → the
synthetic set from all rows → the repeated k-fold estimate (per fold: synthesis from the training folds
only, then the learner on real rows and on real + synthetic rows) → the final model on every row → the
output folder, ready for the learner's own library, `fewforge predict` and the hub.

A fit is a run directory like any other (rundir.py): every unit of work is a `RunDir.stage` under
OUTPUT/run/, so a rerun of the same command reuses what finished and redoes only what changed or was
interrupted; generations come back from OUTPUT/run/cache/generations.sqlite. The model's files are then
published at OUTPUT's top level (fit/publish.py), where the libraries look for them.

Every fold's learner chooses its checkpoint or regularization on its own training rows (no row is spent
on a dev set); the k-fold estimate measures that whole procedure, so it stays honest.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console

from fewforge.data.io import read_jsonl, write_jsonl
from fewforge.data.schema import Example
from fewforge.errors import ConfigError, ResumeError
from fewforge.files import read_json, write_json, write_yaml
from fewforge.fingerprint import derive_seed, fingerprint
from fewforge.fit.config import FIT_LEARNER_DEFAULTS, FIT_METHOD_DEFAULTS, FitConfig
from fewforge.fit.estimate import REAL, SYNTHETIC, Fold, plan_folds, summarize, verdict
from fewforge.fit.examples import UserRows, load_user_rows
from fewforge.generators.accounting import costs, within_failure_budget
from fewforge.generators.urls import redact_text, redact_value
from fewforge.lock import RunLock
from fewforge.rundir import RunDir
from fewforge.storage import disk_errors
from fewforge.synthesis.auto import stratified_folds, synthesize_outside
from fewforge.tasks.base import Task

log = logging.getLogger("fewforge")

RUN_DIR = "run"  # OUTPUT/run/: the fit's run directory (stages, cache, logs); the model sits above it
VERSION = 1  # bump when a stage's output changes for the same inputs


@dataclass
class SyntheticSet:
    rows: list[Example]
    fingerprint: str  # "" for no set
    method: str | None  # what made it: the method, or what auto chose ("none": auto kept the real rows alone)


NO_SET = SyntheticSet([], "", None)


@dataclass
class Plan:
    """Everything a fit needs, validated before a file is written."""

    cfg: FitConfig
    rows: UserRows
    learner_cls: Any
    learner_config: Any
    method: Any  # a SynthesisMethod, or None for real rows only
    unlabeled: list[Example]
    generator: Any
    policy: Any = None  # failures allowed, prices (generators/policy.py), from generator_options

    @property
    def task(self) -> Task:
        return self.rows.task


def resolve(cfg: dict[str, Any] | FitConfig, generator: Any = None) -> Plan:
    """Read and check the rows, the task, the learner, the method and its generator (one-line errors)."""
    from pydantic import ValidationError

    from fewforge.config import config_error
    from fewforge.learners import get_learner
    from fewforge.tasks import load_task

    values = cfg.model_dump() if isinstance(cfg, FitConfig) else dict(cfg)
    if generator is not None:  # a Generator object (tests, the Python API): the config names what it is
        values["generator"] = f"{generator.backend}:{generator.model_id}"
    task = load_task(values["task"]) if values.get("task") else None
    rows = load_user_rows(Path(values["examples"]), task, values.get("description"))
    task = rows.task
    values["learner"] = values.get("learner") or task.spec.fit_learner
    if values["learner"] in FIT_LEARNER_DEFAULTS:
        values["learner_options"] = {**FIT_LEARNER_DEFAULTS[values["learner"]], **(values.get("learner_options") or {})}
    method_name = values.get("method") or "auto"
    if method_name in FIT_METHOD_DEFAULTS:
        values["method_options"] = {**FIT_METHOD_DEFAULTS[method_name], **(values.get("method_options") or {})}
    try:
        cfg = FitConfig(**values)
    except ValidationError as exc:
        raise config_error(exc, FitConfig, path="fit option") from None
    learner_cls = get_learner(cfg.learner)
    if task.kind not in learner_cls.kinds:
        raise ConfigError(
            f"learner {cfg.learner!r} cannot learn {task.kind} tasks",
            hint=f"use --learner {task.spec.fit_learner} (or leave --learner out)",
        )
    try:
        learner_config = learner_cls.Config(**cfg.learner_options)
    except ValidationError as exc:
        raise config_error(exc, learner_cls.Config, path="learner option") from None
    method = None
    if cfg.method != "none":
        from fewforge.synthesis import get_method

        method = get_method(cfg.method, {**cfg.method_options, "per_label": cfg.budget})
        if task.kind not in method.kinds:
            raise ConfigError(f"method {cfg.method!r} does not serve {task.kind} tasks", hint="pick another --method")
    from fewforge.generators.policy import split_options

    backend_options, policy = split_options(cfg.generator_options)
    if method is not None and generator is None:
        from fewforge.generators import get_generator

        generator = get_generator(cfg.generator, **backend_options)
    unlabeled = read_unlabeled(Path(cfg.unlabeled), task) if cfg.unlabeled else []
    return Plan(cfg, rows, learner_cls, learner_config, method, unlabeled, generator, policy)


def read_unlabeled(path: Path, task: Task) -> list[Example]:
    """Unlabeled inputs: a .txt file (one per line; pairs tab-separated) or any examples file with the
    task's input columns (a label column, if any, is not read)."""
    from fewforge.errors import DataError
    from fewforge.fit.layout import read_raw

    if path.suffix.lower() == ".txt" and path.is_file():
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        rows = [dict(zip(task.input_fields, line.split("\t"))) for line in lines]
        where = [f"{path}:{n}" for n in range(1, len(rows) + 1)]
    else:
        raw = read_raw(path)
        rows, where = raw.records, raw.where
    out = []
    for i, (row, here) in enumerate(zip(rows, where)):
        values = {f: row.get(task.columns.get(f, f)) or row.get(f) for f in task.input_fields}
        missing = [f for f, v in values.items() if not isinstance(v, str) or not v.strip()]
        if missing:
            raise DataError(f"{here}: no {', '.join(missing)}", hint=f"unlabeled rows need {', '.join(task.input_fields)}")
        out.append(Example(values, "", id=f"unlabeled-{i}"))
    if not out:
        raise DataError(f"{path}: no unlabeled rows", hint="one input per line")
    return out


def check_output(output: Path) -> None:
    """A fit writes at OUTPUT's top level: refuse a non-empty folder that holds no earlier fit."""
    if output.exists() and (not output.is_dir() or (any(output.iterdir()) and not (output / RUN_DIR / "config.yaml").is_file())):
        raise ResumeError(
            f"{output} exists and holds no earlier fit",
            hint="choose a new --output folder (a fit writes the model at its top level), or the folder of an earlier fit to resume",
        )


# -- the fit ---------------------------------------------------------------------------------------------


def fit(
    cfg: dict[str, Any] | FitConfig,
    output: Path,
    *,
    generator: Any = None,
    console: Console | None = None,
    push_to_hub: str | None = None,
    private: bool = False,
) -> dict[str, Any]:
    """Run (or resume) a fit into `output`, then push it to the hub if asked; returns the estimate summary
    (also in OUTPUT/estimate.json). `generator` overrides the config's spec (a scripted one in tests)."""
    console = console or Console(stderr=True)
    started = time.time()
    plan = resolve(cfg, generator)
    output = Path(output)
    check_output(output)
    if push_to_hub:
        from fewforge.fit.hub import check_repo

        check_repo(push_to_hub)
    _describe(plan, console)
    run = RunDir(output / RUN_DIR)
    with RunLock(run.root, " ".join(["fewforge", *sys.argv[1:]])), disk_errors(run.root):
        return _fit(run, plan, output, console, started, push_to_hub, private)


def _fit(run: RunDir, plan: Plan, output: Path, console: Console, started: float, push_to_hub: str | None,
         private: bool) -> dict[str, Any]:
    """The fit's stages, holding the run directory's lock (a fit is a run directory like any other)."""
    from fewforge.fit.publish import publish
    from fewforge.pipeline import _setup_log_file
    from fewforge.progress import GridProgress

    cfg, task, rows = plan.cfg, plan.task, plan.rows
    run.root.mkdir(parents=True, exist_ok=True)
    _setup_log_file(run.log_path)
    run.sweep_temporaries()  # we hold the lock: any temporary here was left by a process that died
    _write_config(run, cfg, console)
    folds = plan_folds(task, rows.examples, cfg.folds, cfg.repeats, cfg.seed)
    k = len(folds) // cfg.repeats
    per_fold_synthesis = plan.method is not None and plan.method.reads_fewshot
    trainings = len(folds) * (2 if plan.method else 1) + 1
    total = trainings * plan.learner_cls.seconds_per_cell + (len(folds) + 1) * 60 * bool(plan.method)
    cached = _cached(plan, run)
    try:
        with GridProgress(console, total) as progress:
            progress.bar.update(progress.grid, description="fit")
            examples_fp = _examples_stage(run, plan)
            final_set = _synthesis_stage(run, plan, cached, run.root / "synthetic", examples_fp, (), progress)
            records: dict[str, list[dict[str, Any]]] = {REAL: []}
            if plan.method is not None:
                records[SYNTHETIC] = []
            for fold in folds:
                fold_set = final_set
                if per_fold_synthesis:
                    folder = run.root / "folds" / fold.name / "synthetic"
                    fold_set = _synthesis_stage(run, plan, cached, folder, examples_fp, fold.held, progress)
                real = _fold_stage(run, plan, fold, REAL, NO_SET, progress)
                records[REAL].append(real)
                if plan.method is not None and not fold_set.rows:
                    # no synthetic rows (auto kept the real rows alone): the same learner on the same rows with
                    # the same seed, so the real-only predictions are this condition's too
                    records[SYNTHETIC].append({**real, "condition": SYNTHETIC, "method": fold_set.method})
                elif plan.method is not None:
                    records[SYNTHETIC].append(_fold_stage(run, plan, fold, SYNTHETIC, fold_set, progress))
            summary = summarize(task, records, k, len(rows.examples))
            summary["final"] = verdict(summary)
            summary["final_method"] = final_set.method
            final = final_set if summary["final"] == SYNTHETIC else NO_SET
            summary["final_rows"] = len(final.rows)
            model_dir, report = _model_stage(run, plan, final, progress)
    finally:
        if cached is not None:
            cached.close()
    summary["seconds"] = round(time.time() - started, 1)
    publish(output, run, plan, model_dir, final, summary, report)
    if push_to_hub:
        from fewforge.fit.hub import push

        summary["pushed"] = push(output, push_to_hub, private=private)
    return summary


def _describe(plan: Plan, console: Console) -> None:
    cfg, rows, task = plan.cfg, plan.rows, plan.task
    counts = rows.counts()
    per = f" ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})" if counts else ""
    console.print(
        f"{cfg.examples}: {len(rows.examples)} rows{per}; task {task.name!r} ({task.kind}, from {rows.layout})",
        soft_wrap=True, highlight=False,
    )
    if rows.duplicates:
        shown = ", ".join(w for w, _ in rows.duplicates[:3]) + (" ..." if len(rows.duplicates) > 3 else "")
        console.print(f"dropped {len(rows.duplicates)} duplicate row(s) that repeat an earlier row: {shown}",
                      soft_wrap=True, highlight=False)
    for note in rows.notes:
        console.print(f"note: {note}", soft_wrap=True, highlight=False)
    method = f"{cfg.method} ({cfg.budget}/label from {cfg.generator})" if plan.method else "none (real rows only)"
    console.print(
        f"learner {cfg.learner} {cfg.learner_options or ''}; synthetic data: {method}; estimate: "
        f"{cfg.folds}-fold × {cfg.repeats} repeats",
        soft_wrap=True, highlight=False,
    )


def _write_config(run: RunDir, cfg: FitConfig, console: Console) -> None:
    """config.yaml holds the resolved options; a changed fit keeps the old one in _stale/."""
    path = run.config_path
    if path.is_file():
        import yaml

        try:
            previous = FitConfig(**yaml.safe_load(path.read_text(encoding="utf-8"))).model_dump()
        except Exception:  # an old or hand-edited config: keep it aside, never lose it
            previous = {"unreadable": True}
        if previous != cfg.model_dump():
            console.print("the fit changed since the last run here: finished work that still matches is reused")
            run.retire(path, fingerprint(previous))
        else:
            console.print("resuming: finished work is reused", highlight=False)
    write_yaml(path, cfg.model_dump(mode="json"))


def _cached(plan: Plan, run: RunDir) -> Any:
    if plan.method is None:
        return None
    from fewforge.generators import CachedGenerator

    return CachedGenerator(plan.generator, run.cache_path)


def _examples_stage(run: RunDir, plan: Plan) -> str:
    """The checked rows and the task as the fit read them (what every later stage depends on)."""
    from fewforge.tasks.from_file import task_to_spec, write_task_file

    rows = plan.rows.examples
    fp = fingerprint({"v": VERSION, "task": task_to_spec(plan.task), "rows": [e.to_record() for e in rows]})
    stage = run.stage(run.root / "examples", fp)
    if not stage.done:
        with stage:
            write_jsonl(stage.path / "examples.jsonl", rows)
            write_task_file(plan.task, stage.path / "task.yaml")
            stage.info["rows"] = len(rows)
    return fp


def fewshot_view(task: Task, rows: Sequence[Example], seed: int) -> tuple[list[Example], list[Example]]:
    """The user's rows as a method expects few-shot rows: a train half and a dev half, stratified by label
    (GoldGen and S3 extrapolate the dev rows; DAFTT tunes its teacher on train)."""
    train, dev = stratified_folds(task, rows, 2, derive_seed(seed, "fit-view"))
    return train, dev


def _synthesis_stage(
    run: RunDir, plan: Plan, generator: Any, folder: Path, examples_fp: str, held: Sequence[Example], progress: Any
) -> SyntheticSet:
    """A synthetic set made from every row outside `held` (all rows for the final set)."""
    from fewforge.learners import student_factory
    from fewforge.synthesis.base import SynthesisContext

    if plan.method is None:
        return NO_SET
    cfg, task, method = plan.cfg, plan.task, plan.method
    fp = fingerprint({
        "v": VERSION, "rows": examples_fp, "held": sorted(e.id for e in held), "method": method.name,
        "config": method.config.identity(), "backend": generator.cache_namespace, "model": generator.model_id,
        "options": generator.output_options(), "seed": cfg.seed, "unlabeled": [e.inputs for e in plan.unlabeled],
    })
    stage = run.stage(folder, fp)
    where = "all rows" if not held else f"the rows outside fold {folder.parent.name}"
    if not stage.done:
        with stage, progress.stage(f"synthesis ({method.name}) from {where}", 1, 60) as update:
            train, dev = fewshot_view(task, plan.rows.examples, cfg.seed) if method.reads_fewshot else ([], [])
            ctx = SynthesisContext(
                task=task, generator=generator, seed=cfg.seed, train=train, dev=dev, pool=plan.unlabeled,
                workdir=run.root / "work" / folder.relative_to(run.root), progress=update,
                train_learner=student_factory(task, cfg.seed),
            )
            before = generator.stats()
            dataset = within_failure_budget(
                generator, stage.path / "failures.jsonl", plan.policy,
                lambda: synthesize_outside(method, ctx, ctx.workdir, held) if held else method.synthesize(ctx),
            )
            dataset.card.update(costs(generator, before, plan.policy), generator_spec=redact_text(cfg.generator),
                                generator_options=redact_value(cfg.generator_options), seed=cfg.seed)
            dataset.save(stage.path, task)
            stage.info["examples"] = len(dataset.examples)
    log.info("synthesis %s: %s rows", folder, run.done_info(folder).get("examples"))
    path = folder / "data.jsonl"
    card = read_json(folder / "card.json")
    chosen = card.get("chosen_method") or ("none" if card.get("method") == "auto" else card.get("method"))
    return SyntheticSet(read_jsonl(path, task) if path.stat().st_size else [], fp, chosen)


def _learner(plan: Plan, synthetic: Sequence[Example]) -> Any:
    config = plan.learner_config
    if not synthetic and config.strategy not in ("real", "syn"):
        config = config.model_copy(update={"strategy": "real"})
    return plan.learner_cls(plan.task, config, seed=plan.cfg.seed)


def _fold_stage(run: RunDir, plan: Plan, fold: Fold, condition: str, synthetic: SyntheticSet, progress: Any) -> dict[str, Any]:
    """One fold, one condition: train on the fold's training rows (+ synthetic), predict its held rows."""
    from fewforge.evaluation.metrics import per_example, primary_metric, score

    task = plan.task
    folder = run.root / "folds" / fold.name / ("real" if condition == REAL else "synthetic-learner")
    fp = fingerprint({
        "v": VERSION, "learner": plan.cfg.learner, "config": plan.learner_config.model_dump(mode="json"),
        "seed": plan.cfg.seed, "train": [e.to_record() for e in fold.train], "held": [e.id for e in fold.held],
        "synthetic": synthetic.fingerprint,
    })
    stage = run.stage(folder, fp)
    if not stage.done:
        label = "real rows" if condition == REAL else "real + synthetic rows"
        with stage, progress.stage(f"fold {fold.name}: {plan.cfg.learner} on {label}", 1,
                                   plan.learner_cls.seconds_per_cell) as update:
            learner = _learner(plan, synthetic.rows)
            learner.fit(fold.train, fold.train, synthetic=synthetic.rows, progress=update)
            predicted = learner.predict(fold.held)
            gold = [task.spec.gold(e) for e in fold.held]
            scores = per_example(task, gold, predicted)
            if scores is None:  # a corpus-level metric: the fold's value for each row
                scores = [score(task, gold, predicted)[primary_metric(task)]] * len(gold)
            record = {"fold": fold.name, "condition": condition, "ids": [e.id for e in fold.held], "gold": gold,
                      "predicted": predicted, "scores": scores, "synthetic_rows": len(synthetic.rows),
                      "method": synthetic.method}
            write_json(stage.path / "record.json", record)
    return read_json(folder / "record.json")


def _model_stage(run: RunDir, plan: Plan, synthetic: SyntheticSet, progress: Any) -> tuple[Path, dict[str, Any]]:
    """The final model: the learner on every row (+ the chosen synthetic set), saved with its card."""
    from fewforge.cells import training_log

    rows = plan.rows.examples
    folder = run.root / "model"
    fp = fingerprint({
        "v": VERSION, "learner": plan.cfg.learner, "config": plan.learner_config.model_dump(mode="json"),
        "seed": plan.cfg.seed, "rows": [e.to_record() for e in rows], "synthetic": synthetic.fingerprint,
    })
    stage = run.stage(folder, fp)
    if not stage.done:
        with stage, progress.stage(f"final model: {plan.cfg.learner} on all {len(rows)} rows", 1,
                                   plan.learner_cls.seconds_per_cell) as update:
            learner = _learner(plan, synthetic.rows)
            report = learner.fit(rows, rows, synthetic=synthetic.rows, progress=update)
            learner.save(stage.path)
            write_json(stage.path / "training.json", training_log(report, synthetic.rows))
            stage.info["report"] = {
                "steps": report.steps, "best_step": report.best_step, "seconds": round(report.seconds, 1),
                "train_accuracy": report.best_dev_accuracy, "synthetic": len(synthetic.rows),
                "extra": {k: v for k, v in report.extra.items() if isinstance(v, (int, float, str, bool, type(None)))},
            }
    return folder, run.done_info(folder).get("report", {})


__all__ = ["RUN_DIR", "Plan", "SyntheticSet", "check_output", "fewshot_view", "fit", "resolve"]
