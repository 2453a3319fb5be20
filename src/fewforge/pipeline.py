"""An experiment grid, top to bottom: plan (validate everything) → few-shot splits → synthetic sets →
cells (train + score) → results.json, results.sqlite and the report.

Every stage goes through `RunDir.stage` (rundir.py): finished work with the same fingerprint is reused,
changed work is redone with the old output moved to `_stale/`, interrupted work is moved aside and
redone. Generation resumes from the SQLite cache, so a killed run loses at most one chunk of prompts.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fewforge.config import RunConfig
from fewforge.data.schema import Example, FewShotSplit
from fewforge.files import read_json, write_json, write_lines, write_yaml
from fewforge.fingerprint import fingerprint
from fewforge.grid import Cell, Plan, SetKey, TaskData, plan_grid
from fewforge.rundir import RunDir
from fewforge.store import ResultsStore
from fewforge.tasks.base import Task

log = logging.getLogger("fewforge")

Until = Literal["sample", "synthesis", "train"]
# The whole-grid bar counts estimated seconds on 2 CPU cores, so its ETA weighs a fine-tuning cell
# against a generated prompt; each learner states its own estimate (`Learner.seconds_per_cell`).
SECONDS_PER_PROMPT = 0.4
SECONDS_PER_SPLIT = 0.1


# -- progress ---------------------------------------------------------------------------------------


class GridProgress:
    """Two rich bars with ETAs: the whole grid (in estimated seconds of work, shown as a percentage),
    and the stage running now (prompts generated, training steps)."""

    def __init__(self, console: Console, total: float) -> None:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        )
        self.bar = Progress(*columns, console=console)
        self.grid = self.bar.add_task("grid", total=max(total, 1e-9), count="")

    def __enter__(self) -> "GridProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def advance(self, units: float) -> None:
        self.bar.advance(self.grid, units)
        task = self.bar.tasks[self.grid]
        self.bar.update(self.grid, count=f"{100 * task.completed / task.total:3.0f}%")

    @contextmanager
    def stage(self, description: str, total: int, units: float) -> Iterator[Any]:
        """A sub-bar; yields `update(done, total)`. The grid bar moves by `units` over the stage."""
        sub = self.bar.add_task(description, total=max(total, 1), count=f"0/{total}")
        moved = [0.0]

        def update(done: int, new_total: int | None = None) -> None:
            new_total = new_total or total
            self.bar.update(sub, completed=done, total=max(new_total, 1), count=f"{done}/{new_total}")
            share = min(units, units * done / max(new_total, 1))
            self.advance(share - moved[0])
            moved[0] = share

        try:
            yield update
        finally:
            self.advance(units - moved[0])
            self.bar.remove_task(sub)


# -- the run -----------------------------------------------------------------------------------------


def run_experiment(
    cfg: RunConfig,
    output: Path,
    *,
    console: Console | None = None,
    until: Until = "train",
    report: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) the grid in `output`; returns the results.json content (after `until="train"`)."""
    console = console or Console(stderr=True)
    started = time.time()
    plan = plan_grid(cfg)  # validates everything before a file is written
    run = open_run(cfg, Path(output), console)
    describe(plan, console)
    store = ResultsStore(run.store_path)
    try:
        store.plan([c.axes() for c in plan.cells])
        total = len(plan.splits) * SECONDS_PER_SPLIT
        if until != "sample":
            total += sum(_set_prompts(plan, key) for key in plan.synthetic_sets) * SECONDS_PER_PROMPT
        if until == "train":
            total += sum(_cell_seconds(plan, cell) for cell in plan.cells)
        with GridProgress(console, total) as progress:
            splits = {key: split_stage(run, plan.data[key[0]], *key[1:]) for key in plan.splits}
            progress.advance(len(splits) * SECONDS_PER_SPLIT)
            sets: dict[SetKey, tuple[list[Example], str]] = {}
            checks: dict[SetKey, dict[str, Any]] = {}
            if until != "sample" and plan.synthetic_sets:
                sets = synthesis_stages(run, plan, splits, progress)
                checks = contamination_stages(run, plan, splits, sets, console)
            if until != "train":
                return {}
            records = [cell_stage(run, plan, cell, splits, sets, store, progress, checks) for cell in plan.cells]
    finally:
        store.close()
    results = write_run_results(run, plan, records, time.time() - started, command)
    if report:
        from fewforge.evaluation.report import write_report

        write_report(run.root)
    return results


def open_run(cfg: RunConfig, output: Path, console: Console) -> RunDir:
    """Create the run directory, log to it, and write config.yaml. When the grid changed, the previous
    config, results and report move to _stale/ (cells and sets are kept and reused where they match)."""
    run = RunDir(output)
    run.root.mkdir(parents=True, exist_ok=True)
    _setup_log_file(run.log_path)
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
            + f" from {cfg.generator}; "
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
    fp = fingerprint({"pool": data.pool_fingerprint, "shots": shots, "seed": seed, "v": 2})
    stage = run.stage(directory, fp)
    if not stage.done:
        with stage:
            save_split(sample_fewshot(data.pool, [], data.task, shots, seed), directory.parent)
    return load_split(directory.parent, seed, data.task), fp


def _set_prompts(plan: Plan, key: SetKey) -> int:
    """Prompts a set will need (for the grid bar's ETA; top-up rounds are not foreseen)."""
    method, curation = plan.method(key), plan.curation.get(key.method)
    n_labels = len(plan.data[key.task].task.groups)
    over = getattr(method.config, "oversample", 1.0) * (curation.overgenerate if curation is not None else 1.0)
    return int(getattr(method.config, "per_label", 0) * over * n_labels)


def synthesis_stages(
    run: RunDir, plan: Plan, splits: dict[tuple[str, int, int], tuple[FewShotSplit, str]], progress: GridProgress
) -> dict[SetKey, tuple[list[Example], str]]:
    from fewforge.generators import CachedGenerator

    generator = CachedGenerator(plan.generator, run.cache_path, enabled=plan.cfg.cache)
    out: dict[SetKey, tuple[list[Example], str]] = {}
    try:
        for key in plan.synthetic_sets:
            out[key] = synthesis_stage(run, plan, key, splits, generator, progress)
    finally:
        generator.close()
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

    data, method = plan.data[key.task], plan.method(key)
    split = splits[(key.task, key.shots, key.seed)] if key.shots is not None else None
    curation = plan.curation.get(key.method)  # a label audit of the set (synthesis/curation), or None
    keep_per_label = None
    if curation is not None and curation.overgenerate > 1:  # generate more, keep each label's best per_label
        keep_per_label = method.config.per_label
        method = type(method)(method.config.model_copy(
            update={"per_label": math.ceil(keep_per_label * curation.overgenerate)}))
    directory = run.synthetic_dir(key.task, key.seed, key.method, key.shots)
    fp = fingerprint(
        {
            "source": split[1] if split else data.pool_fingerprint,
            "seed": key.seed,
            "method": method.name,
            "config": method.config.model_dump(mode="json"),
            "backend": generator.backend,
            "model": generator.model_id,
            "options": generator.output_options(),
            # only when set: sets without curation keep the fingerprints their finished runs hold
            **({"curate": _curation_semantic(curation)} if curation is not None else {}),
        }
    )
    stage = run.stage(directory, fp)
    prompts = _set_prompts(plan, key)
    units = prompts * SECONDS_PER_PROMPT
    if stage.done:
        progress.advance(units)
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
            workdir=run.root / "work" / directory.relative_to(run.root),
            progress=update,
            train_learner=student_factory(data.task, key.seed),
        )
        dataset = method.synthesize(ctx)
        if curation is not None:  # the auditor learns from the train rows only, never dev or test
            from fewforge.synthesis.curation import AuditContext, curate

            audit = AuditContext(data.task, key.seed, split[0].train if split else (), generator,
                                 ctx.workdir / "curate" if ctx.workdir else None, update)
            dataset = curate(dataset, curation, audit, per_label=keep_per_label)
        dataset.card.update(generator_spec=plan.cfg.generator, generator_options=plan.cfg.generator_options)
        dataset.card["cache"] = counts = generator.stats(since=before)
        dataset.save(directory, data.task)
        stage.info.update(examples=len(dataset.examples), cache=counts)
    log.info("synthesis %s: %d examples, cache %s", directory, len(dataset.examples), counts)
    return dataset.examples, fp


def _curation_semantic(curation: Any) -> dict[str, Any]:
    from fewforge.synthesis.curation import semantic

    return semantic(curation)


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
        out[key] = check_set(directory, data.task, examples, references, plan.cfg.contamination, set_fp)
        log.info("contamination %s: %s", directory, out[key]["summary"]["references"])
        for line in warnings({str(directory.relative_to(run.root)): {"contamination": out[key]["summary"]}}):
            console.print(f"[yellow]warning: {line}[/]", soft_wrap=True, highlight=False)
    return out


def _cell_seconds(plan: Plan, cell: Cell) -> float:
    learner_cls, _ = plan.learners[cell.learner]
    return learner_cls.seconds_per_cell * (2 if cell.condition == "real+synthetic" else 1)


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


def cell_stage(
    run: RunDir,
    plan: Plan,
    cell: Cell,
    splits: dict[tuple[str, int, int], tuple[FewShotSplit, str]],
    sets: dict[SetKey, tuple[list[Example], str]],
    store: ResultsStore,
    progress: GridProgress,
    checks: dict[SetKey, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    data = plan.data[cell.task]
    split, split_fp = splits[(cell.task, cell.shots, cell.seed)]
    synthetic: list[Example] = []
    set_fp = None
    contaminated: list[dict[str, Any]] | None = None  # rows dropped as copies of test / this split's dev rows
    if cell.condition != "real":
        examples, set_fp = sets[plan.set_key(cell)]
        if plan.cfg.contamination.drop:
            from fewforge.evaluation.contamination import dev_reference, drop_contaminated

            references = ("test", dev_reference(cell.shots))
            examples, contaminated = drop_contaminated(examples, (checks or {})[plan.set_key(cell)], references)
        synthetic = first_per_label(examples, cell.per_label or 0, data.task)
    learner_cls, _ = plan.learners[cell.learner]
    config = plan.learner_config(cell)
    directory = run.cell_dir(cell.id)
    fp = fingerprint(
        {
            "split": split_fp,
            "synthetic": set_fp,
            "per_label": cell.per_label,
            "learner": learner_cls.name,
            "config": config.model_dump(mode="json"),
            "condition": cell.condition,
            "test": data.test_fingerprint,
            "v": 1,
            # only when rows are dropped: the default check leaves finished cells' fingerprints as they were
            **({"contamination": plan.cfg.contamination.semantic()} if contaminated is not None else {}),
        }
    )
    stage = run.stage(directory, fp)
    if stage.done:
        record = read_json(directory / "record.json")
        store.finish(record, record["paths"])
        progress.advance(_cell_seconds(plan, cell))
        return record
    store.start(cell.id, fp)
    try:
        with stage, progress.stage(f"{cell.id}", 1, _cell_seconds(plan, cell)) as update:
            record = train_and_score(
                run,
                data,
                split,
                synthetic,
                learner_cls(data.task, config, seed=cell.seed),
                cell,
                directory,
                update,
                save_model=plan.cfg.save_models,
            )
            if contaminated is not None:
                record["train"]["contamination_dropped"] = len(contaminated)
                write_lines(directory / "dropped.jsonl", contaminated)
            record["fingerprint"] = fp
            write_json(directory / "record.json", record)
            stage.info["metrics"] = record["metrics"]
    except BaseException as exc:
        store.fail(cell.id, f"{type(exc).__name__}: {exc}")
        raise
    store.finish(record, record["paths"])
    log.info("cell %s: %s", cell.id, record["metrics"])
    return record


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


def write_run_results(
    run: RunDir, plan: Plan, records: list[dict[str, Any]], seconds: float, command: str | None = None
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


# -- single steps on user files (fewforge train / evaluate) ------------------------------------------


def train_model(
    task_name: str,
    train_path: Path,
    dev_path: Path,
    synthetic_path: Path | None,
    learner_name: str,
    seed: int,
    output: Path,
    *,
    options: dict[str, Any] | None = None,
    console: Console | None = None,
):
    """Train one learner on labeled files and save it to `output`; returns its FitReport."""
    from pydantic import ValidationError

    from fewforge.config import config_error
    from fewforge.data.io import read_examples
    from fewforge.learners import get_learner
    from fewforge.learners.card import write_card
    from fewforge.tasks import load_task

    task = load_task(task_name)
    learner_cls = get_learner(learner_name)
    try:
        config = learner_cls.Config(**(options or {}))
    except ValidationError as exc:
        raise config_error(exc, learner_cls.Config, path="learner option") from None
    train = read_examples(train_path, task)
    dev = read_examples(dev_path, task)
    synthetic = read_examples(synthetic_path, task) if synthetic_path else []
    if not synthetic and config.strategy not in ("real", "syn"):
        config = config.model_copy(update={"strategy": "real"})
    learner = learner_cls(task, config, seed=seed)
    progress = GridProgress(console or Console(stderr=True), 1)
    with progress, progress.stage(f"train {learner_name}", 1, 1) as update:
        report = learner.fit(train, dev, synthetic=synthetic, progress=update)
    learner.save(output)
    data_facts = {
        "real": len(train),
        "train_file": str(train_path),
        "dev_file": str(dev_path),
        "synthetic": len(synthetic),
        "synthetic_source": str(synthetic_path) if synthetic_path else None,
    }
    write_json(Path(output) / "training.json", training_log(report, synthetic))
    write_card(Path(output), learner, report, data=data_facts)
    return report


def evaluate_model(
    task_name: str | None, model_dir: Path, test_path: Path | None, data: str | None, learner_name: str | None
) -> dict[str, Any]:
    """Metrics of a saved model on a labeled test file (default: the task's test split); the task and
    learner default to the model card's."""
    from fewforge.data.io import read_examples
    from fewforge.data.sources import load_task_data
    from fewforge.evaluation import score
    from fewforge.learners import get_learner
    from fewforge.tasks import load_task

    if task_name is None or learner_name is None:
        from fewforge.learners.card import TASK_FILE, read_card

        card = read_card(model_dir)
        saved = Path(model_dir) / TASK_FILE  # a task that is not built in (a task file, a fit's inferred task)
        task_name = task_name or (str(saved) if saved.is_file() else card["task"])
        learner_name = learner_name or card["learner"]
    task = load_task(task_name)
    test = read_examples(test_path, task) if test_path else load_task_data(task, Path(data) if data else None)[1]
    learner = get_learner(learner_name).load(task, model_dir)
    metrics = score(task, [task.spec.gold(e) for e in test], learner.predict(test))
    return {"task": task.name, "model": str(model_dir), "test_size": len(test), **metrics}


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
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
