"""One experiment, top to bottom: data → few-shot splits → synthesis → training → evaluation.

Every stage checks its fingerprint in the run directory first, so a rerun (or a run resumed after an
interruption) only does the work whose inputs changed; see `rundir.py`.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fewforge.config import RunConfig
from fewforge.data.schema import Example, FewShotSplit
from fewforge.fingerprint import fingerprint
from fewforge.rundir import RunDir, write_json_atomic
from fewforge.tasks.base import Task

log = logging.getLogger("fewforge")


@dataclasses.dataclass
class Experiment:
    """What every stage needs: the config, where to write, the task and its real data."""

    cfg: RunConfig
    run: RunDir
    task: Task
    pool: list[Example]
    test: list[Example]
    console: Console

    @property
    def data_fingerprint(self) -> str:
        return fingerprint(
            {
                "task": dataclasses.asdict(self.task),
                "pool": [e.to_record() for e in self.pool],
                "test": [e.to_record() for e in self.test],
            }
        )

    def progress(self, description: str, total: int):
        return progress_bar(self.console, description, total)


@contextmanager
def progress_bar(console: Console, description: str, total: int) -> Iterator[Any]:
    """A rich progress bar with ETA; yields `advance(done, total=None)` for progress callbacks."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task_id = bar.add_task(description, total=total)

        def advance(done: int, new_total: int | None = None) -> None:
            bar.update(task_id, completed=done, total=new_total or total)

        yield advance


# -- stages ------------------------------------------------------------------------------------


def prepare(cfg: RunConfig, output: Path, console: Console) -> Experiment:
    """Load task and data, and write the resolved config (moving an outdated one to _stale/)."""
    from fewforge.data.sources import load_task_data
    from fewforge.tasks import load_task

    run = RunDir(output)
    run.root.mkdir(parents=True, exist_ok=True)
    _setup_log_file(run.log_path)
    if run.config_path.exists():
        previous = RunConfig.from_yaml(run.config_path)
        changes = _changes(previous.semantic(), cfg.semantic())
        if changes:
            console.print(f"[yellow]config changed since the last run in {output}: {changes}; "
                          "stages whose inputs changed are redone, old outputs move to _stale/[/]", soft_wrap=True)
            run.retire(run.config_path, fingerprint(previous.semantic()))
            run.retire(run.results_path, fingerprint(previous.semantic()))
        else:
            console.print(f"resuming in {output}: finished stages are reused", soft_wrap=True)
    run.config_path.write_text(cfg.to_yaml())
    log.info("config: %s", cfg.model_dump(mode="json"))

    task = load_task(cfg.task)
    pool, test = load_task_data(task, Path(cfg.data) if cfg.data else None)
    if cfg.max_test and len(test) > cfg.max_test:
        # A deterministic subset, in original order, so every condition sees the same rows.
        keep = sorted(random.Random(0).sample(range(len(test)), cfg.max_test))
        test = [test[i] for i in keep]
    return Experiment(cfg, run, task, pool, test, console)


def sample_stage(exp: Experiment, seed: int) -> tuple[FewShotSplit, str]:
    from fewforge.data.fewshot import load_split, sample_fewshot, save_split

    directory = exp.run.split_dir(seed)
    fp = fingerprint({"data": exp.data_fingerprint, "shots": exp.cfg.shots, "seed": seed, "v": 1})
    if exp.run.is_done(directory, fp):
        return load_split(directory.parent, seed, exp.task, test=exp.test), fp
    exp.run.retire(directory, exp.run.done_fingerprint(directory))
    split = sample_fewshot(exp.pool, exp.test, exp.task, exp.cfg.shots, seed)
    save_split(split, directory.parent)
    exp.run.mark_done(directory, fp)
    return split, fp


def open_generator(exp: Experiment):
    from fewforge.generators import CachedGenerator, get_generator

    inner = get_generator(exp.cfg.generator)
    return CachedGenerator(inner, exp.run.cache_path, enabled=exp.cfg.cache)


def synthesis_stage(exp: Experiment, split: FewShotSplit, split_fp: str, generator) -> tuple[list[Example], str]:
    from fewforge.data.io import read_jsonl
    from fewforge.synthesis import get_method

    options = {"per_label": exp.cfg.per_label, "seed": exp.cfg.synthesis_seed, **exp.cfg.method_options}
    method = get_method(exp.cfg.method, options)
    directory = exp.run.synthetic_dir(split.seed)
    fp = fingerprint(
        {
            "split": split_fp,
            "method": exp.cfg.method,
            "config": method.config.model_dump(mode="json"),
            "backend": generator.backend,
            "model": generator.model_id,
        }
    )
    path = directory / f"{exp.cfg.method}.jsonl"
    if exp.run.is_done(directory, fp):
        return read_jsonl(path, exp.task), fp
    exp.run.retire(directory, exp.run.done_fingerprint(directory))
    started, counts_before = time.time(), generator.stats()
    with exp.progress(f"synthesis seed {split.seed}", exp.cfg.per_label * len(exp.task.labels)) as advance:
        dataset = method.synthesize(exp.task, split.train, generator, pool=exp.pool, progress=advance)
    dataset.card.setdefault("generator_spec", exp.cfg.generator)
    dataset.card["cache"] = cache_counts = generator.stats(since=counts_before)
    dataset.save(directory, exp.cfg.method)
    exp.run.mark_done(directory, fp, examples=len(dataset.examples), seconds=round(time.time() - started, 1))
    log.info("synthesis seed %s: %d examples, cache %s", split.seed, len(dataset.examples), cache_counts)
    return dataset.examples, fp


def train_stage(
    exp: Experiment,
    split: FewShotSplit,
    split_fp: str,
    condition: str,
    synthetic: Sequence[Example],
    synthetic_fp: str | None,
) -> dict[str, Any]:
    from fewforge.evaluation import score
    from fewforge.learners import get_learner

    learner_cls = get_learner(exp.cfg.learner)
    learner_config = learner_cls.Config(**exp.cfg.learner_options)
    record_path = exp.run.record_path(condition, split.seed)
    fp = fingerprint(
        {
            "split": split_fp,
            "synthetic": synthetic_fp if condition != "real" else None,
            "learner": exp.cfg.learner,
            "config": learner_config.model_dump(mode="json"),
            "condition": condition,
            "test": [e.id for e in exp.test],
        }
    )
    if record_path.exists():
        import json

        record = json.loads(record_path.read_text())
        if record.get("fingerprint") == fp:
            return record
        exp.run.retire(record_path, record.get("fingerprint"))

    train, extra = {
        "real": (split.train, []),
        "real+synthetic": (split.train, list(synthetic)),
        "synthetic": (list(synthetic), []),
    }[condition]
    learner = learner_cls(exp.task, learner_config, seed=split.seed)
    with exp.progress(f"train {condition} seed {split.seed}", 1) as advance:
        report = learner.fit(train, split.dev, synthetic=extra, progress=advance)
    if exp.cfg.save_models:
        learner.save(exp.run.model_dir(condition, split.seed))
    predicted = learner.predict(exp.test)
    metrics = score(exp.task, [e.label for e in exp.test], predicted)
    record = {
        "condition": condition,
        "seed": split.seed,
        **metrics,
        "best_dev_accuracy": report.best_dev_accuracy,
        "train_real": len(split.train) if condition != "synthetic" else 0,
        "train_synthetic": len(synthetic) if condition != "real" else 0,
        "test_size": len(exp.test),
        "train_seconds": round(report.seconds, 1),
        "fingerprint": fp,
    }
    write_json_atomic(record_path, record)
    log.info("trained %s seed %s: %s", condition, split.seed, metrics)
    return record


def run_experiment(cfg: RunConfig, output: Path, *, console: Console | None = None) -> dict[str, Any]:
    """Run (or resume) the whole experiment in `output`; returns the results.json content."""
    from fewforge.evaluation import aggregate, write_results

    console = console or Console(stderr=True)
    started = time.time()
    exp = prepare(cfg, output, console)
    console.print(
        f"task [bold]{exp.task.name}[/] ({exp.task.kind}, {len(exp.task.labels)} labels): pool {len(exp.pool)}, "
        f"test {len(exp.test)}; {cfg.shots}-shot, seeds {cfg.seeds}; generator {cfg.generator}; "
        f"{cfg.method} × {cfg.per_label}/label; learner {cfg.learner}"
    )
    splits = {seed: sample_stage(exp, seed) for seed in cfg.seeds}

    synthetic: dict[int, tuple[list[Example], str | None]] = {seed: ([], None) for seed in cfg.seeds}
    if any(c != "real" for c in cfg.conditions):
        generator = open_generator(exp)
        try:
            for seed, (split, split_fp) in splits.items():
                synthetic[seed] = synthesis_stage(exp, split, split_fp, generator)
        finally:
            generator.close()

    records = [
        train_stage(exp, split, split_fp, condition, *synthetic[seed])
        for seed, (split, split_fp) in splits.items()
        for condition in cfg.conditions
    ]
    summary = aggregate(records, metrics=exp.task.metrics)
    meta = {
        "task": exp.task.name,
        "config": cfg.model_dump(mode="json"),
        "wall_seconds": round(time.time() - started, 1),
        "test_size": len(exp.test),
    }
    write_results(exp.run.results_path, records, summary, meta)
    return {"records": records, "summary": summary, "meta": meta}


# -- single steps on user files (fewforge train / evaluate) ------------------------------------


def train_model(
    task_name: str,
    train_path: Path,
    dev_path: Path,
    synthetic_path: Path | None,
    learner_name: str,
    seed: int,
    output: Path,
    *,
    console: Console | None = None,
):
    """Train one learner on labeled files and save it to `output`; returns its FitReport."""
    from fewforge.data.io import read_examples
    from fewforge.learners import get_learner
    from fewforge.tasks import load_task

    task = load_task(task_name)
    train = read_examples(train_path, task)
    dev = read_examples(dev_path, task)
    synthetic = read_examples(synthetic_path, task) if synthetic_path else []
    learner_cls = get_learner(learner_name)
    learner = learner_cls(task, seed=seed)
    with progress_bar(console or Console(stderr=True), f"train {learner_name}", 1) as advance:
        report = learner.fit(train, dev, synthetic=synthetic, progress=advance)
    learner.save(output)
    return report


def evaluate_model(
    task_name: str, model_dir: Path, test_path: Path | None, data: str | None, learner_name: str
) -> dict[str, Any]:
    """Metrics of a saved model on a labeled test file (default: the task's test split)."""
    from fewforge.data.io import read_examples
    from fewforge.data.sources import load_task_data
    from fewforge.evaluation import score
    from fewforge.learners import get_learner
    from fewforge.tasks import load_task

    task = load_task(task_name)
    test = read_examples(test_path, task) if test_path else load_task_data(task, Path(data) if data else None)[1]
    learner = get_learner(learner_name).load(task, model_dir)
    metrics = score(task, [e.label for e in test], learner.predict(test))
    return {"task": task.name, "model": str(model_dir), "test_size": len(test), **metrics}


# -- helpers -------------------------------------------------------------------------------------


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
