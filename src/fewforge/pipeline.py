"""An experiment grid, top to bottom: plan (validate everything) → few-shot splits → synthetic sets →
cells (train + score) → results.json, results.sqlite and the report. Cells run on the grid's executor
(executors/: local, processes:N, ray, slurm) as soon as their inputs exist; this process alone writes
the store, the generation cache, results.json and the report.

Every stage goes through `RunDir.stage` (rundir.py): finished work with the same fingerprint is reused,
changed work is redone with the old output moved to `_stale/`, interrupted work is moved aside and
redone. Generation resumes from the SQLite cache, so a killed run loses at most one chunk of prompts.
The run holds the directory's lock (lock.py) from before its first write to after its report, and a
disk failure anywhere is one line naming the file (storage.py); docs/run-directories.md says what is
guaranteed.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from rich.console import Console

from fewforge.cells import CellRunner, cell_seconds
from fewforge.cells import prepare as prepare_cell
from fewforge.config import RunConfig
from fewforge.data.schema import Example, FewShotSplit
from fewforge.errors import CellsFailed
from fewforge.evaluation.shortfall import short_set_warnings
from fewforge.executors import CellOutcome, Executor, get_executor
from fewforge.files import read_json, write_yaml
from fewforge.fingerprint import fingerprint
from fewforge.generators.accounting import costs, within_failure_budget
from fewforge.generators.urls import redact_text, redact_value
from fewforge.grid import Plan, SetKey, TaskData, plan_grid
from fewforge.lock import RunLock
from fewforge.progress import GridProgress
from fewforge.rundir import RunDir
from fewforge.set_plan import set_fingerprint, set_method, set_prompts, split_fingerprint
from fewforge.storage import closing, disk_errors
from fewforge.store import ResultsStore
from fewforge.tasks.base import Task

log = logging.getLogger("fewforge")

Until = Literal["sample", "synthesis", "train"]
# The whole-grid bar counts estimated seconds on 2 CPU cores, so its ETA weighs a fine-tuning cell
# against a generated prompt; each learner states its own estimate (`Learner.seconds_per_cell`).
SECONDS_PER_PROMPT = 0.4
SECONDS_PER_SPLIT = 0.1


# -- the run -----------------------------------------------------------------------------------------


def run_experiment(
    cfg: RunConfig,
    output: Path,
    *,
    console: Console | None = None,
    until: Until = "train",
    report: bool = True,
    command: str | None = None,
    submit_only: bool = False,
    executor: str | Executor | None = None,
) -> dict[str, Any]:
    """Run (or resume) the grid in `output`; returns the results.json content (after `until="train"`).
    `submit_only`: a Batch API backend submits its batches and the run stops there (PendingWork).
    `executor` (default: the grid's `executor:`) runs the cells; failed cells are recorded, the others
    finish, and after results.json and the report the run raises CellsFailed.
    The run holds `output`'s lock throughout: a second run on it stops at once, naming this one."""
    console = console or Console(stderr=True)
    started = time.time()
    cells_executor = get_executor(executor if executor is not None else cfg.executor)  # a missing extra: now
    plan = plan_grid(cfg)  # validates everything before a file is written
    if plan.generator is not None and plan.policy.budget_usd is not None and until != "sample":
        from fewforge.estimate import check_budget, estimate

        check_budget(estimate(plan, Path(output)), plan)
    if submit_only and plan.generator is not None:
        if not getattr(plan.generator, "is_batch", False):
            from fewforge.errors import ConfigError

            raise ConfigError("--submit-only needs the Batch API backend", hint="use --generator openai-batch:MODEL[@URL]")
        plan.generator.submit_only = True
    with RunLock(output, command), disk_errors(output):
        run = open_run(cfg, Path(output), console)
        describe(plan, console)
        records, failures = _run_grid(run, plan, console, until, cells_executor)
        if until != "train":
            return {}
        results = write_run_results(run, plan, records, time.time() - started, command, failures)
        for line in short_set_warnings(results["summary"]):
            console.print(f"[yellow]warning: {line}[/]", soft_wrap=True, highlight=False)
        if report:
            from fewforge.evaluation.report import write_report

            write_report(run.root)
    if failures:
        raise CellsFailed(
            f"{len(failures)} cell{'s' if len(failures) > 1 else ''} failed; rerun to retry them",
            hint=f"results.json and the report hold the {len(records)} finished cells; each failure's error and "
            f"log are in results.sqlite (status 'failed') and the report",
        )
    return results


def _run_grid(
    run: RunDir, plan: Plan, console: Console, until: Until, executor: Executor
) -> tuple[list[dict[str, Any]], list[CellOutcome]]:
    """Splits, then synthetic sets and their contamination checks, then cells; returns the records and
    the failed cells."""
    def warn(message: str) -> None:
        console.print(f"[yellow]warning: {message}[/]", soft_wrap=True, highlight=False)

    store = ResultsStore.open(run.store_path, run.finished_records, warn)
    with closing(store.close, f"closing {run.store_path}"):
        store.plan([c.axes() for c in plan.cells])
        total = len(plan.splits) * SECONDS_PER_SPLIT
        if until != "sample":
            total += sum(set_prompts(plan, key) for key in plan.synthetic_sets) * SECONDS_PER_PROMPT
        if until == "train":
            total += sum(cell_seconds(plan, cell) for cell in plan.cells)
        counts = {"sets": len(plan.synthetic_sets) if until != "sample" else 0,
                  "cells": len(plan.cells) if until == "train" else 0}
        with GridProgress(console, total, counts) as progress:
            splits = {key: split_stage(run, plan.data[key[0]], *key[1:]) for key in plan.splits}
            progress.advance(len(splits) * SECONDS_PER_SPLIT)
            cells = CellRunner(run, store, progress, console, executor)
            try:
                return _sets_and_cells(run, plan, console, until, splits, progress, cells)
            except BaseException as exc:
                cells.stop(exc)
                raise


def _sets_and_cells(
    run: RunDir, plan: Plan, console: Console, until: Until, splits: dict, progress: GridProgress, cells: CellRunner
) -> tuple[list[dict[str, Any]], list[CellOutcome]]:
    """Cells start when their inputs exist: real-only cells go to the executor before the synthetic sets
    generate (on the driver), the others once every set is generated and checked."""
    def warn(message: str) -> None:
        console.print(f"[yellow]warning: {message}[/]", soft_wrap=True, highlight=False)

    sets: dict[SetKey, tuple[list[Example], str]] = {}
    checks: dict[SetKey, dict[str, Any]] = {}
    early = [prepare_cell(run, plan, c, splits, sets, checks) for c in plan.cells if c.condition == "real"]
    if until == "train":
        cells.submit(early)
    if until != "sample" and plan.synthetic_sets:
        sets = synthesis_stages(run, plan, splits, progress, warn)
        checks = contamination_stages(run, plan, splits, sets, console)
    if until != "train":
        return [], []
    late = [prepare_cell(run, plan, c, splits, sets, checks) for c in plan.cells if c.condition != "real"]
    cells.submit(late)
    order = {c.id: i for i, c in enumerate(plan.cells)}
    return cells.collect(sorted([*early, *late], key=lambda job: order[job.cell.id]))


def open_run(cfg: RunConfig, output: Path, console: Console) -> RunDir:
    """Create the run directory, log to it, and write config.yaml. When the grid changed, the previous
    config, results and report move to _stale/ (cells and sets are kept and reused where they match)."""
    run = RunDir(output)
    run.root.mkdir(parents=True, exist_ok=True)
    _setup_log_file(run.log_path)
    run.sweep_temporaries()  # we hold the lock: any temporary here was left by a process that died
    if run.config_path.exists():
        try:
            previous = RunConfig.from_yaml(run.config_path).semantic()
        except Exception:  # an old or hand-edited config: keep it aside, never lose it
            previous = {"unreadable": True}
        changes = _changes(previous, cfg.semantic())
        if changes:
            console.print(
                f"[yellow]the grid changed since the last run in {output}: {changes}; finished cells and "
                "synthetic sets that still match are reused, changed ones are redone (old outputs move to _stale/)[/]",
                soft_wrap=True,
            )
            old = fingerprint(previous)
            for path in (run.config_path, run.results_path, run.root / "report.html", run.root / "report.md"):
                run.retire(path, old)
        else:
            console.print(f"resuming in {output}: finished work is reused", soft_wrap=True)
    write_yaml(run.config_path, cfg.model_dump(mode="json"))
    log.info("config: %s", cfg.model_dump(mode="json"))
    return run


def describe(plan: Plan, console: Console) -> None:
    cfg = plan.cfg
    tasks = ", ".join(f"{t.task.name} (pool {len(t.pool)}, test {len(t.test)})" for t in plan.data.values())
    console.print(
        f"grid: {tasks}; shots {cfg.shots}; seeds {cfg.seeds}; "
        + (
            f"{', '.join(plan.methods)} × "
            + (f"{cfg.num_synthetic} in all" if cfg.num_synthetic else f"{cfg.per_label}/label")
            + f" from {redact_text(cfg.generator)}; "
            if plan.methods
            else ""
        )
        + f"learners {', '.join(plan.learners)}; {len(plan.cells)} cells, {len(plan.synthetic_sets)} synthetic sets",
        soft_wrap=True,
        highlight=False,
    )


# -- stages ------------------------------------------------------------------------------------------


def split_stage(run: RunDir, data: TaskData, shots: int, seed: int) -> tuple[FewShotSplit, str]:
    from fewforge.data.fewshot import load_split, sample_fewshot, save_split

    directory = run.split_dir(data.task.name, shots, seed)
    fp = split_fingerprint(data, shots, seed)
    stage = run.stage(directory, fp, outputs=("train.jsonl", "dev.jsonl", "split.json"))
    if not stage.done:
        with stage:
            save_split(sample_fewshot(data.pool, [], data.task, shots, seed), directory.parent)
    return load_split(directory.parent, seed, data.task), fp


def synthesis_stages(
    run: RunDir,
    plan: Plan,
    splits: dict[tuple[str, int, int], tuple[FewShotSplit, str]],
    progress: GridProgress,
    warn: Callable[[str], None] = log.warning,
) -> dict[SetKey, tuple[list[Example], str]]:
    from fewforge.errors import PendingWork
    from fewforge.generators import CachedGenerator

    generator = CachedGenerator(plan.generator, run.cache_path, enabled=plan.cfg.cache)
    out: dict[SetKey, tuple[list[Example], str]] = {}
    pending: list[str] = []
    # SQLite never names its file: a disk failure in here is the generation cache's
    with closing(generator.close, "closing the generator"), disk_errors(run.cache_path):
        for key in plan.synthetic_sets:
            try:
                out[key] = synthesis_stage(run, plan, key, splits, generator, progress)
            except PendingWork as wait:  # submitted to the Batch API: the other sets go on meanwhile
                pending.append(f"{key.method} {key.task} seed {key.seed}: {wait.message}")
            if generator.damaged_copy is not None:  # said once, when the cache was first opened
                warn(f"{run.cache_path} was damaged: moved aside to {generator.damaged_copy.name}; the completions "
                     "it held are generated again")
                generator.damaged_copy = None
    if pending:
        raise PendingWork(
            f"{len(pending)} synthetic set(s) wait for their batches: " + "; ".join(pending),
            hint="run the same `fewforge generate` (or `run`) later to collect them; nothing is lost",
        )
    return out


def synthesis_stage(
    run: RunDir,
    plan: Plan,
    key: SetKey,
    splits: dict[tuple[str, int, int], tuple[FewShotSplit, str]],
    generator: Any,
    progress: GridProgress,
) -> tuple[list[Example], str]:
    from fewforge.data.io import read_jsonl
    from fewforge.learners import student_factory
    from fewforge.synthesis.base import SynthesisContext

    data = plan.data[key.task]
    method, curation, keep_per_label = set_method(plan, key)
    split = splits[(key.task, key.shots, key.seed)] if key.shots is not None else None
    directory = run.synthetic_dir(key.task, key.seed, key.method, key.shots)
    fp = set_fingerprint(plan, key, split[1] if split else None, generator)
    stage = run.stage(directory, fp, outputs=("data.jsonl",))
    prompts = set_prompts(plan, key)
    units = prompts * SECONDS_PER_PROMPT
    if stage.done:
        progress.advance(units, "sets")
        rows = directory / "data.jsonl"  # empty when auto found that no method beats the real rows alone
        return (read_jsonl(rows, data.task) if rows.stat().st_size else []), fp
    shots = f" k{key.shots}" if key.shots is not None else ""
    with stage, progress.stage(f"{key.method} {key.task}{shots} seed {key.seed}", prompts, units) as update:
        before = generator.stats()
        ctx = SynthesisContext(
            task=data.task,
            generator=generator,
            seed=key.seed,
            # a method that never reads the few-shot rows gets none, even in a set curated per split
            train=split[0].train if split and method.reads_fewshot else (),
            dev=split[0].dev if split and method.reads_fewshot else (),
            pool=data.pool,
            # outside the set's folder: an interrupted set is retired, its finished stages (tuning) stay
            workdir=run.work_dir(directory),
            run=run,
            progress=update,
            train_learner=student_factory(data.task, key.seed),
        )
        dataset = within_failure_budget(generator, directory / "failures.jsonl", plan.policy,
                                        lambda: method.synthesize(ctx))
        if curation is not None:  # the auditor learns from the train rows only, never dev or test
            from fewforge.synthesis.curation import AuditContext, curate

            audit = AuditContext(data.task, key.seed, split[0].train if split else (), generator,
                                 ctx.workdir / "curate" if ctx.workdir else None, update)
            dataset = curate(dataset, curation, audit, per_label=keep_per_label)
        dataset.card.update(
            generator_spec=redact_text(plan.cfg.generator), generator_options=redact_value(plan.cfg.generator_options)
        )
        dataset.card.update(costs(generator, before, plan.policy))
        dataset.save(directory, data.task)
        stage.info.update(examples=len(dataset.examples), cache=dataset.card["cache"])
    log.info("synthesis %s: %d examples, cache %s", directory, len(dataset.examples), dataset.card["cache"])
    progress.advance(0, "sets")
    return dataset.examples, fp


def contamination_stages(
    run: RunDir,
    plan: Plan,
    splits: dict[tuple[str, int, int], tuple[FewShotSplit, str]],
    sets: dict[SetKey, tuple[list[Example], str]],
    console: Console,
) -> dict[SetKey, dict[str, Any]]:
    """Check every synthetic set against its task's test rows (those the grid scores on) and the dev rows
    of every split it serves (evaluation/contamination.py). Stored beside the set, keyed by its own
    fingerprint: a finished set is checked on load, never redone."""
    from fewforge.evaluation.contamination import check_set, dev_reference, warnings

    out: dict[SetKey, dict[str, Any]] = {}
    for key, (examples, set_fp) in sets.items():
        data = plan.data[key.task]
        served = sorted({c.shots for c in plan.cells if c.condition != "real" and plan.set_key(c) == key})
        references = {"test": data.test}
        references.update({dev_reference(k): splits[(key.task, k, key.seed)][0].dev for k in served})
        directory = run.synthetic_dir(key.task, key.seed, key.method, key.shots)
        out[key] = check_set(directory, data.task, examples, references, plan.cfg.contamination, set_fp, run)
        log.info("contamination %s: %s", directory, out[key]["summary"]["references"])
        for line in warnings({str(directory.relative_to(run.root)): {"contamination": out[key]["summary"]}}):
            console.print(f"[yellow]warning: {line}[/]", soft_wrap=True, highlight=False)
    return out


def write_run_results(
    run: RunDir,
    plan: Plan,
    records: list[dict[str, Any]],
    seconds: float,
    command: str | None = None,
    failures: Sequence[CellOutcome] = (),
) -> dict[str, Any]:
    """results.json: every cell's record, the summaries over seeds, and what the numbers mean."""
    from fewforge.evaluation import primary_metric, summarize
    tasks: dict[str, Task] = {name: d.task for name, d in plan.data.items()}

    def scores(record: dict[str, Any]) -> Any:
        import numpy as np

        lines = (run.root / record["paths"]["predictions"]).read_text(encoding="utf-8").splitlines()
        values = [json.loads(line).get("score") for line in lines if line]
        return None if any(v is None for v in values) else np.asarray(values, dtype=float)

    baselines = {spec.label: spec.baseline for spec in plan.cfg.learners if spec.baseline}
    summary = summarize(
        records, scores=scores, primary=lambda name: primary_metric(tasks[name]), baselines=baselines
    )
    stage_dirs = [
        *(run.split_dir(*key) for key in plan.splits),
        *(run.synthetic_dir(k.task, k.seed, k.method, k.shots) for k in plan.synthetic_sets),
        *(run.cell_dir(c.id) for c in plan.cells),
    ]
    meta = {
        "description": plan.cfg.description,
        "command": command,
        "config": plan.cfg.model_dump(mode="json"),
        "wall_seconds": round(seconds, 1),  # this invocation (a resumed run reuses finished stages)
        # what the results cost, however many invocations made them: the stages' own recorded times
        "stage_seconds": round(sum(run.done_info(d).get("seconds", 0.0) for d in stage_dirs), 1),
        "test_size": {name: len(d.test) for name, d in plan.data.items()},
        "seeds_cover": "Each seed is its own few-shot split and its own synthetic set (sampling seeds derive "
        "from the split seed): the std over seeds covers both",
        "ci": "95% bootstrap interval over test examples of the primary metric's difference to real only "
        "(averaged over seeds, 2000 resamples)",
        "p": "paired t-test over seeds against real only (same task, shots and learner, or the learner "
        "named as its baseline)",
        # copies of test / dev rows in each set, and a warning line per set that holds test rows
        "contamination": _contamination_meta(run, plan),
        "synthetic_sets": {
            str(run.synthetic_dir(k.task, k.seed, k.method, k.shots).relative_to(run.root)): run.done_info(
                run.synthetic_dir(k.task, k.seed, k.method, k.shots)
            ).get("examples")
            for k in plan.synthetic_sets
        },
        # cells that failed in this invocation (the report lists them; a rerun retries exactly these)
        "failed_cells": [{"cell": f.cell, "error": f.error, "log": f.log} for f in failures],
    }
    from fewforge.evaluation import write_results

    write_results(run.results_path, records, summary, meta)
    return {"records": records, "summary": summary, "meta": meta}


def _contamination_meta(run: RunDir, plan: Plan) -> dict[str, Any]:
    from fewforge.evaluation.contamination import run_summary

    cards = {}
    for k in plan.synthetic_sets:
        directory = run.synthetic_dir(k.task, k.seed, k.method, k.shots)
        if (directory / "card.json").is_file():
            cards[str(directory.relative_to(run.root))] = read_json(directory / "card.json")
    return run_summary(cards)


# -- helpers -------------------------------------------------------------------------------------------


def _changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{k} {old.get(k)!r} → {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def _setup_log_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for handler in list(log.handlers):
        if isinstance(handler, logging.FileHandler):
            log.removeHandler(handler)
            handler.close()
    handler = _RunLog(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


class _RunLog(logging.FileHandler):
    """logs/run.log. A line that cannot be written (the disk that just filled up) is dropped quietly:
    logging's default prints a traceback over the one-line error the user must see."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass
