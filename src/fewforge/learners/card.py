"""Model cards: beside every saved model, what it is (learner, base model, labels), what it was trained on
(real and synthetic rows, strategy) and how it scored — as `model_card.json` for `load_model` /
`fewforge predict`, as a README.md in the Hugging Face model-card format (YAML header: library, base
model, labels, metrics as a model-index) for people and the hub, and as `task.yaml`, so a model of a
task that is not built in (a task file, or one `fewforge fit` inferred) loads without it.

Each saved model also loads with its learner's own library (`usage` says how, and the README shows it):
SetFit folders with `SetFitModel.from_pretrained`, encoders with transformers' pipeline, soft prompts and
LoRA adapters with peft's `PeftModel`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from fewforge.errors import ConfigError
from fewforge.files import write_json, write_text
from fewforge.learners.base import FitReport, Learner
from fewforge.tasks.base import Task

CARD_FILE = "model_card.json"
TASK_FILE = "task.yaml"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_PROMPT_LEARNERS = ("prompt-tuning", "zero-shot", "icl", "pft", "pft+pt")

def base_model(learner: Learner) -> str:
    """The pretrained model under the learner, as the user would name it."""
    model = getattr(learner.config, "model", None) or getattr(learner.config, "embedder", None)
    if model:
        return str(model)
    return {
        "linear-probe": f"{MINILM_HUB_ID} (packaged, frozen)",
        "encoder": f"{MINILM_HUB_ID} (packaged)",
        "setfit": f"{MINILM_HUB_ID} (packaged)",
        "qa-encoder": f"{MINILM_HUB_ID} (packaged)",
    }.get(learner.name, f"{SMOLLM2_HUB_ID} (packaged GGUF, dequantized)")


def base_model_id(learner: Learner) -> str | None:
    """The hub id of the base model when it is a packaged one (the card's `base_model`), else None."""
    if getattr(learner.config, "model", None) or getattr(learner.config, "embedder", None):
        return None
    if learner.name in ("linear-probe", "encoder", "setfit", "qa-encoder"):
        return MINILM_HUB_ID
    return SMOLLM2_HUB_ID if learner.name != "generator-zero-shot" else None


def usage(learner: Learner, directory: Path) -> tuple[str | None, str]:
    """(library, Python lines) that load the saved model with its learner's own library."""
    d, name, task = str(directory), learner.name, learner.task
    pair = " (a pair: 'first text [SEP] second text')" if len(task.input_fields) > 1 else ""
    if name == "setfit" or (name == "linear-probe" and len(task.input_fields) == 1):
        return "setfit", (
            f"from setfit import SetFitModel\n\nmodel = SetFitModel.from_pretrained({d!r})\n"
            f"model.predict([\"an example text\"])  # label names{pair}"
        )
    if name in ("encoder", "lm-ft"):
        return "transformers", (
            "from transformers import pipeline\n\n# the mean-pooled (or last-token) head is fewforge's own class, shipped in "
            "modeling_fewforge.py\n"
            f"classifier = pipeline(\"text-classification\", model={d!r}, trust_remote_code=True)\n"
            "classifier([\"an example text\"])  # [{'label': <label name>, 'score': ...}]"
        )
    if name == "qa-encoder":  # transformers 5 removed the question-answering pipeline: the model and the span
        return "transformers", (
            "from transformers import AutoModelForQuestionAnswering, AutoTokenizer\n\n"
            f"model = AutoModelForQuestionAnswering.from_pretrained({d!r})\n"
            f"tokenizer = AutoTokenizer.from_pretrained({d!r})\n"
            "out = model(**tokenizer(\"question\", \"context\", return_tensors=\"pt\"))  # the answer: the span "
            "between out.start_logits.argmax() and out.end_logits.argmax()"
        )
    base = base_model_id(learner) or base_model(learner)
    if name in _PROMPT_LEARNERS:
        cfg = learner.config
        prefix = getattr(learner, "prefix", "")
        words = ", ".join(f"{label}: {word!r}" for label, word in task.labels.items())
        if cfg.train in ("model", "both"):
            load = f"model = AutoModelForCausalLM.from_pretrained({d + '/lm'!r})\n"
            lib = "transformers"
        else:
            load = f"model = AutoModelForCausalLM.from_pretrained({base!r})\n"
            lib = "transformers"
        if cfg.train in ("prompt", "both"):
            load += f"model = PeftModel.from_pretrained(model, {d + '/prompt'!r})  # the trained soft prompt\n"
            lib = "peft"
        return lib, (
            "from transformers import AutoModelForCausalLM\nfrom peft import PeftModel\n\n" + load
            + f"# classify: fill {prefix!r} and take the label whose word comes likeliest next ({words})"
        )
    if name in ("seq2seq", "causal-lm"):
        auto = "AutoModelForSeq2SeqLM" if name == "seq2seq" else "AutoModelForCausalLM"
        if getattr(learner.config, "lora", False):
            return "peft", (
                f"from transformers import {auto}\nfrom peft import PeftModel\n\n"
                f"model = PeftModel.from_pretrained({auto}.from_pretrained({base!r}), {d + '/adapter'!r})"
            )
        return "transformers", f"from transformers import {auto}\n\nmodel = {auto}.from_pretrained({d + '/model'!r})"
    if name == "linear-probe":  # a pair task: [u, v, |u - v|, u * v] features, which SetFit cannot compute
        return None, (f"from fewforge.learners.card import load_model\n\nmodel = load_model({d!r})  # head.json: "
                      "a logistic head over sentence-pair features\nmodel.predict([(\"first text\", \"second text\")])")
    return None, "(no trained weights: the learner reads its generator at prediction time)"


def write_card(
    directory: Path,
    learner: Learner,
    report: FitReport,
    *,
    data: Mapping[str, Any],
    test: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """model_card.json + README.md + task.yaml in `directory` (which holds the saved model); `extra` adds
    top-level entries to model_card.json (a fit's estimate)."""
    from fewforge.tasks.from_file import write_task_file

    task = learner.task
    directory = Path(directory)
    library, _ = usage(learner, directory)
    card = {
        "learner": learner.name,
        "task": task.name,
        "kind": task.kind,
        "labels": task.label_names,
        "verbalizer": dict(task.labels),
        "base_model": base_model(learner),
        "library": library,
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
        **dict(extra or {}),
    }
    write_json(directory / CARD_FILE, card)
    write_task_file(task, directory / TASK_FILE)
    metrics = [("few-shot dev accuracy (chose the checkpoint: optimistic)", "accuracy", report.best_dev_accuracy)]
    if test:
        metrics += [(f"test {k}", k, v) for k, v in test.items() if isinstance(v, float)]
    write_text(directory / "README.md", readme(learner, directory, card, metrics=metrics, body=_train_body(card)))
    return card


def _train_body(card: Mapping[str, Any]) -> str:
    training, results = card["training"], card["results"]
    rows = [
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
        f"## Training\n\n| | |\n|---|---|\n{table}\n\n"
        "The dev set is the few-shot dev split (LM-BFF: as many rows per class as the train split); it chose "
        "the checkpoint, so its accuracy is optimistic.\n"
    )


def readme(
    learner: Learner,
    directory: Path,
    card: Mapping[str, Any],
    *,
    metrics: Sequence[tuple[str, str, float]] = (),
    body: str = "",
    dataset: str | None = None,
    extra_tags: Sequence[str] = (),
) -> str:
    """A Hugging Face model card: YAML metadata (library, base model, labels, metrics as a model-index)
    and the Markdown body: what the model is, `body` (training and results), how to load it, limits."""
    from huggingface_hub import EvalResult, ModelCardData

    task = learner.task
    library, snippet = usage(learner, directory)
    tag = task.spec.pipeline_tag or None
    results = [
        EvalResult(task_type=tag or task.kind, dataset_type=dataset or task.name, dataset_name=dataset or task.name,
                   metric_type=metric, metric_value=round(float(value), 4), metric_name=name)
        for name, metric, value in metrics
    ]
    data = ModelCardData(
        base_model=base_model_id(learner),
        library_name=library,
        pipeline_tag=tag,
        tags=["fewforge", learner.name, "few-shot", *extra_tags],
        model_name=f"{task.name}-{learner.name}",
        eval_results=results or None,
        labels=task.label_names or None,
    )
    labels = ", ".join(f"`{label}`" for label in task.label_names) or "-"
    return (
        f"---\n{data.to_yaml()}\n---\n\n"
        f"# {card['learner']} for {task.name}\n\n"
        f"A {task.spec.card_words or task.kind} model trained by fewforge (few-shot learning with LLM-synthesized data): learner "
        f"`{card['learner']}` on {card['base_model']}. Task: {task.description}; inputs {', '.join(task.input_fields)}; "
        f"labels {labels}.\n\n"
        f"{body}\n"
        "## Use\n\n"
        f"```python\n{snippet}\n```\n\n"
        "With fewforge:\n\n"
        f"```\nfewforge predict --model {directory} --input texts.txt   # one text per line (pairs: tab-separated)\n```\n\n"
        "## Intended use and limits\n\n"
        f"Labeling {task.description} inputs like the training rows, with the labels above and no others. It "
        "learned from a handful of real rows (and, where listed, rows a small LLM wrote): expect errors on inputs "
        "unlike them, check a sample of its predictions on your own data before relying on it, and do not use it "
        "for decisions about people.\n"
    )


def read_card(directory: Path) -> dict[str, Any]:
    path = Path(directory) / CARD_FILE
    if not path.is_file():
        raise ConfigError(
            f"{path} not found",
            hint="pass a model directory written by `fewforge train` or `fewforge fit` (or by a grid with save_models: true)",
        )
    return json.loads(path.read_text(encoding="utf-8"))


def load_model(directory: str | Path, task: Task | None = None) -> Learner:
    """The learner saved in `directory`, with its task: `task`, else the task.yaml saved beside it, else the
    built-in task the card names."""
    from fewforge.learners import get_learner
    from fewforge.tasks import load_task

    directory = Path(directory)
    card = read_card(directory)
    if task is None:
        task_file = directory / TASK_FILE
        task = load_task(task_file) if task_file.is_file() else load_task(card["task"])
    return get_learner(card["learner"]).load(task, directory)
