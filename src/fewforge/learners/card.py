"""Model cards: beside every saved model, what it is (learner, base model, labels), what it was trained on
(real and synthetic rows, strategy) and how it scored (few-shot dev, test when known) — as
`model_card.json` for `load_model` / `fewforge predict`, and as a README.md for people.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from fewforge.errors import ConfigError
from fewforge.files import write_json, write_text
from fewforge.learners.base import FitReport, Learner
from fewforge.tasks.base import Task

CARD_FILE = "model_card.json"


def base_model(learner: Learner) -> str:
    """The pretrained model under the learner, as the user would name it."""
    model = getattr(learner.config, "model", None)
    if model:
        return str(model)
    return {
        "linear-probe": "sentence-transformers/all-MiniLM-L6-v2 (packaged, frozen)",
        "encoder": "sentence-transformers/all-MiniLM-L6-v2 (packaged)",
        "prompt-tuning": "HuggingFaceTB/SmolLM2-135M-Instruct (packaged GGUF, dequantized)",
        "setfit": "sentence-transformers/all-MiniLM-L6-v2 (packaged)",
    }.get(learner.name, "the learner's default")


def write_card(
    directory: Path,
    learner: Learner,
    report: FitReport,
    *,
    data: Mapping[str, Any],
    test: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """model_card.json + README.md in `directory` (which holds the saved model)."""
    task = learner.task
    card = {
        "learner": learner.name,
        "task": task.name,
        "labels": task.label_names,
        "verbalizer": dict(task.labels),
        "base_model": base_model(learner),
        "seed": learner.seed,
        "config": learner.config.model_dump(mode="json"),
        "training": {
            **dict(data),
            "strategy": getattr(learner.config, "strategy", None),
            "steps": report.steps,
            "best_step": report.best_step,
            "seconds": round(report.seconds, 1),
            **{k: v for k, v in report.extra.items() if k != "strategy"},
        },
        "results": {"dev_accuracy": report.best_dev_accuracy, "test": dict(test) if test else None},
    }
    directory = Path(directory)
    write_json(directory / CARD_FILE, card)
    write_text(directory / "README.md", _markdown(card, directory))
    return card


def _markdown(card: Mapping[str, Any], directory: Path) -> str:
    training, results = card["training"], card["results"]
    rows = [
        ("task", f"{card['task']} ({', '.join(card['labels'])})"),
        ("learner", card["learner"]),
        ("base model", card["base_model"]),
        ("real training rows", training.get("real")),
        ("synthetic rows", training.get("synthetic", 0)),
        ("synthetic data", training.get("synthetic_source") or "-"),
        ("strategy", training.get("strategy") or "-"),
        ("trainable parameters", training.get("trainable_parameters", "-")),
        ("optimizer steps (best)", f"{training['steps']} ({training['best_step']})"),
        ("gradient conflict rate", training.get("conflict_rate", "-")),
        ("few-shot dev accuracy", f"{100 * results['dev_accuracy']:.1f}"),
    ]
    if results.get("test"):
        rows += [(f"test {k}", f"{100 * v:.1f}") for k, v in results["test"].items() if isinstance(v, float)]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return (
        f"# {card['learner']} for {card['task']}\n\n"
        "Trained by fewforge (few-shot learning with synthetic data).\n\n"
        f"| | |\n|---|---|\n{table}\n\n"
        "The dev set is the few-shot dev split (LM-BFF: as many rows per class as the train split); it chose "
        "the checkpoint, so its accuracy is optimistic.\n\n"
        "## Use\n\n"
        f"```\nfewforge predict --model {directory} --input texts.txt   # one text per line (pairs: tab-separated)\n```\n\n"
        f"```python\nfrom fewforge.learners.card import load_model\nmodel = load_model({str(directory)!r})\n"
        "model.predict([\"an example text\"])\n```\n"
    )


def read_card(directory: Path) -> dict[str, Any]:
    path = Path(directory) / CARD_FILE
    if not path.is_file():
        raise ConfigError(
            f"{path} not found", hint="pass a model directory written by `fewforge train` (or by a grid with save_models: true)"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def load_model(directory: str | Path, task: Task | None = None) -> Learner:
    """The learner saved in `directory`, with its task (from the card unless given)."""
    from fewforge.learners import get_learner
    from fewforge.tasks import load_task

    card = read_card(Path(directory))
    return get_learner(card["learner"]).load(task or load_task(card["task"]), Path(directory))
