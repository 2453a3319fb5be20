"""DAFTT's teacher, trained (its prompt format: teacher.py).

LoRA through peft (r 8, alpha 16, dropout 0.05 on the attention projections) on a deep copy of the
backend's model, so the backend's weights never change, trained by the loop every learner uses
(learners/loop.train_torch: strategy 'real', shuffled batches, AdamW with a cosine schedule and linear
warm-up — DAFTT: Adam, cosine —, gradient norm clipped at 1), on the output tokens (and EOS) only, the
LM head applied to those positions alone (learners/causal_lm.target_loss, the causal-lm learner's loss).
The teacher keeps its last state: it is evaluated once, at the end (its loss on its own rows).
`lora: false` is DAFTT's full fine-tuning of every linear layer of the transformer blocks (the tied
embedding / LM-head matrix and the norms stay frozen); it is saved as an exact full-rank LoRA adapter
(per layer r = min(in, out), one factor the identity, the other the weight change, alpha = r), so the
same backend path serves it, at the cost of a large adapter (~0.7 GB for SmolLM2).
`tune: false` or `epochs: 0` saves the freshly initialised LoRA (peft's B = 0: exactly the base model),
the untuned-teacher baseline through the same prompts and code path.

The adapter is saved in the method's work folder as `teacher-<fingerprint>/` (fingerprint of the model,
the encoded rows and every training option), with `teacher-<fingerprint>.json` beside it (summary and
the loss of every step); a rerun with the same fingerprint reuses it.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from fewforge.errors import ConfigError, DataError
from fewforge.files import read_json, write_json
from fewforge.fingerprint import fingerprint
from fewforge.generators.base import AdapterRequest, TrainableLM
from fewforge.learners.causal_lm import lora_config, target_loss
from fewforge.learners.loop import TorchConfig, TorchModel, train_torch
from fewforge.learners.runtime import seeded
from fewforge.synthesis.daftt.teacher import TEACHER_VERSION, Mode, TeacherOptions, TeacherRow

log = logging.getLogger(__name__)


@dataclass
class Teacher:
    """A fine-tuned (or untuned) teacher ready to send with requests."""

    path: Path
    adapter: AdapterRequest
    summary: dict[str, Any]


def rows_loss(model: Any, rows: Sequence[TeacherRow], pad_id: int) -> Any:
    """Mean cross-entropy of the rows' output tokens given their prompts (a tensor with its graph)."""
    return target_loss(model, [r.ids for r in rows], [r.target_start for r in rows], pad_id)


def mean_loss(model: Any, rows: Sequence[TeacherRow], pad_id: int, batch_size: int = 8) -> float:
    """Token-weighted mean output loss over `rows`, in eval mode, no gradient."""
    import torch

    was_training = model.training
    model.eval()
    total = tokens = 0.0
    with torch.no_grad():
        for s in range(0, len(rows), batch_size):
            batch = rows[s : s + batch_size]
            n = sum(len(r.ids) - r.target_start for r in batch)
            total += rows_loss(model, batch, pad_id).item() * n
            tokens += n
    model.train(was_training)
    return total / max(tokens, 1)


def _blocks_linear(model: Any) -> list[tuple[str, Any]]:
    """Full fine-tuning's weights: every linear layer inside the transformer body (not the LM head, which
    is tied to the input embeddings in SmolLM2 and most small LMs)."""
    import torch

    prefix = model.base_model_prefix
    body = getattr(model, prefix)
    return [(f"{prefix}.{n}", m) for n, m in body.named_modules() if isinstance(m, torch.nn.Linear)]


def loop_config(options: TeacherOptions) -> TorchConfig:
    """The teacher's options as the shared loop's: one source ('real'), `epochs` passes capped by
    `max_steps`, a cosine schedule, one evaluation at the last step (the last state is kept)."""
    unbounded = 10**9
    return TorchConfig(
        strategy="real",
        batch_size=options.batch_size,
        learning_rate=options.lr(),
        schedule="cosine",
        weight_decay=options.weight_decay,
        warmup_ratio=options.warmup_ratio,
        epochs=options.epochs,
        min_steps=1,
        max_steps=options.max_steps or unbounded,
        eval_every=unbounded,
        max_grad_norm=1.0,
    )


def fit(
    lm: TrainableLM,
    rows: Sequence[TeacherRow],
    options: TeacherOptions,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
    """Fine-tune a deep copy of `lm.model` on `rows`: (the tuned copy — a peft model with LoRA, the plain
    model for full fine-tuning —, the per-step history, facts for the summary). With `options.tunes`
    false the copy gets a fresh LoRA and no step is taken."""
    import torch
    from peft import get_peft_model

    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    with seeded(seed):
        model = copy.deepcopy(lm.model)  # the backend's model never changes
        for p in model.parameters():
            p.requires_grad_(False)
        if options.lora or not options.tunes:
            config = lora_config(model, options.lora_r, options.lora_alpha, options.lora_dropout, options.lora_targets)
            try:
                model = get_peft_model(model, config)  # LoRA B = 0: the base model at step 0
            except ValueError as exc:
                raise ConfigError(f"LoRA cannot adapt the teacher: {exc}".splitlines()[0],
                                  hint="set lora_targets to its module names") from exc
            base = model.get_base_model()
        else:
            if any(p.dtype in (torch.float16, torch.bfloat16) for p in model.parameters()):
                model.float()  # AdamW steps on half-precision weights lose most updates (a GPU backend loads bf16)
            for _, module in _blocks_linear(model):
                module.weight.requires_grad_(True)
            base = model
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        facts: dict[str, Any] = {"trainable_params": sum(p.numel() for _, p in params)}
        if not options.tunes:
            return model, [], {**facts, "steps": 0}
        facts["loss_before"] = round(mean_loss(base, rows, pad), 4)
        history: list[dict[str, Any]] = []
        clock = [time.perf_counter()]

        def loss(source: str, idx: list[int], smoothing: float, weights: Any = None) -> Any:
            batch = [rows[i] for i in idx]
            value = rows_loss(base, batch, pad)
            history.append({"loss": round(value.item(), 5), "tokens": sum(len(r.ids) for r in batch)})
            return value

        def stepped(step: int, total: int) -> None:
            now = time.perf_counter()
            history[-1].update(step=step, seconds=round(now - clock[0], 3))
            clock[0] = now
            if progress is not None:
                progress(step, total)

        def evaluate() -> tuple[float, float]:
            return 0.0, mean_loss(base, rows, pad)  # no accuracy to select by: the one evaluation is the last

        model.train()
        report = train_torch(
            loop_config(options),
            TorchModel(params, loss, evaluate, snapshot=lambda: None, restore=lambda state: None),
            len(rows), 0, seed, progress=stepped,
        )
        model.eval()
        facts["loss_after"] = round(report.history[-1]["dev_loss"], 4)
        facts["steps"] = report.steps
        return model, history, facts


def _save_lora(model: Any, directory: Path) -> None:
    from fewforge.hf import quiet_transformers

    with quiet_transformers():
        model.save_pretrained(str(directory))
    (directory / "README.md").unlink(missing_ok=True)  # peft's model card: not part of the adapter


def export_full(tuned: Any, base: Any, directory: Path) -> None:
    """A fully fine-tuned model's change to its blocks' linear layers as an exact LoRA adapter: per layer
    r = min(in, out), alpha = r (scale 1), A = I and B = W' - W (or B = I and A = W' - W when out < in)."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    base_weights = dict(base.named_parameters())
    layers = _blocks_linear(tuned)
    deltas = {name: m.weight.detach().float() - base_weights[f"{name}.weight"].detach().float() for name, m in layers}
    ranks = {name: min(m.in_features, m.out_features) for name, m in layers}
    patterns = {re.escape(name): r for name, r in ranks.items()}
    config = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=8,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=sorted(ranks),
        rank_pattern=patterns,
        alpha_pattern=patterns,
    )
    shell = get_peft_model(tuned, config)  # only the LoRA weights are saved: the tuned copy can carry them
    modules = dict(shell.get_base_model().named_modules())
    with torch.no_grad():
        for name, delta in deltas.items():
            module, r = modules[name], ranks[name]
            a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
            if module.scaling["default"] != 1.0 or a.shape != (r, delta.shape[1]) or b.shape != (delta.shape[0], r):
                raise AssertionError(f"full-rank export of {name}: unexpected LoRA shape")  # a peft change, a bug
            eye = torch.eye(r, dtype=a.dtype)
            if r == delta.shape[1]:
                a.copy_(eye)
                b.copy_(delta.to(b.dtype))
            else:
                a.copy_(delta.to(a.dtype))
                b.copy_(eye)
    _save_lora(shell, directory)


def teacher_key(generator: Any, mode: Mode, rows: Sequence[TeacherRow], options: TeacherOptions, seed: int) -> str:
    """What shapes a teacher. The untuned one is the base model whatever the rows: one per model."""
    if not options.tunes:
        lora = {k: getattr(options, k) for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_targets")}
        return fingerprint({"v": TEACHER_VERSION, "model": generator.model_id, "untuned": lora})
    return fingerprint(
        {
            "v": TEACHER_VERSION,
            "model": generator.model_id,
            "options": generator.output_options(),
            "mode": mode,
            "training": options.training(),
            "rows": [[list(r.ids), r.target_start] for r in rows],
            "seed": seed,
        }
    )


def build_teacher(
    generator: Any,
    lm: TrainableLM,
    mode: Mode,
    rows: Sequence[TeacherRow],
    options: TeacherOptions,
    seed: int,
    workdir: Path,
    name: str,
    progress: Callable[[int, int], None] | None = None,
    extra: dict[str, Any] | None = None,
) -> Teacher:
    """Train (or reuse) the teacher for `rows` and return it as an adapter request."""
    if options.tunes and not rows:
        raise DataError(f"{name}: no labelled rows to fine-tune the teacher on", hint="give a few-shot split, or tune: false")
    seed = seed if options.tunes else 0  # the untuned teacher is one per model (its LoRA A is never used)
    key = teacher_key(generator, mode, rows, options, seed)
    path, summary_path = workdir / f"teacher-{key}", workdir / f"teacher-{key}.json"
    if (path / "adapter_config.json").is_file() and summary_path.is_file():
        log.info("%s: reusing the teacher in %s", name, path)
        summary = {k: v for k, v in read_json(summary_path).items() if k != "history"}
        return Teacher(path, AdapterRequest(f"{name}:teacher", str(path), kind="lora"), {**summary, "reused": True})

    started = time.perf_counter()
    model, history, facts = fit(lm, rows, options, seed, progress)
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = workdir / f".teacher-{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    if options.lora or not options.tunes:
        _save_lora(model, tmp)
    else:
        export_full(model, lm.model, tmp)
    del model
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)  # a half-written teacher never looks complete (the summary is written last)
    seconds = [h["seconds"] for h in history]
    summary = {
        "mode": mode,
        "tuned": options.tunes,
        "lora": options.lora or not options.tunes,
        **options.training(),
        "rows": len(rows),
        "seed": seed,
        **facts,
        "seconds_per_step": round(sum(seconds) / len(seconds), 3) if seconds else None,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "folder": path.name,
        **(extra or {}),
    }
    write_json(summary_path, {**summary, "history": history})
    return Teacher(path, AdapterRequest(f"{name}:teacher", str(path), kind="lora"), {**summary, "reused": False})
