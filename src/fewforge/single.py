"""Single steps on user files, outside a grid: `fewforge train` (one learner on labeled files, saved with
its card) and `fewforge evaluate` (a saved model on a labeled test file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from fewforge.cells import training_log
from fewforge.files import write_json
from fewforge.progress import GridProgress


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
