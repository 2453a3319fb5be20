"""DAFTT's teacher: the generator fine-tuned on a little labelled data in an instruction format, saved as a
peft adapter the backend loads per request (`AdapterRequest(kind="lora")`).

Format. DAFTT fine-tunes on Super-NaturalInstructions prompts (definition, examples, input, output):

    Definition: Classify the movie review. Answer with one of: terrible (negative), great (positive).

    Input: a stirring, funny and finally transporting re-imagining ...
    Output:

then the output and the end-of-sequence token. The backend sends a prompt with an adapter as raw text (no
chat template added, no start-of-sequence token), so the teacher's rows are tokenised the same way
(`TrainableLM.encode(text, False)`) and the prompt text itself decides the format: by default
(`chat_template: None`) the SNI text is the user turn of the generator's own chat template, rendered with
`TrainableLM.render`, and the output opens the assistant turn ("great<|im_end|>"); `chat_template: false`
sends the bare SNI text, the output after "Output: " (DAFTT's base-model format). Why the default: after
a bare "...\nOutput:" SmolLM2-Instruct puts 0.96 of its next-token probability on <|im_end|> (QA prompts,
measured), so the untuned teacher wrote nothing and a briefly tuned one mostly nothing; inside its
template it answers (p(EOS) < 0.01).

`demonstrations: k` inserts k teacher rows as "Example i -" blocks before "Now complete the following
example -" (SNI's layout; 0 by default: every demonstration lengthens every prompt on 2 CPU cores).
A teacher learns one direction (`Mode`): `annotate` reads a row's inputs and writes its target (the
label's verbalizer, a QA answer span given context and question, a text-to-text target); `generate`
reads the target and writes the inputs (label -> text; label + first sentence -> second sentence, so the
first sentence can come from the pool as in ZeroGen; context + answer -> question; a text-to-text task's
given fields -> the rest, later fields as "Title: value" lines, as `split_fields` reads them).

Training. LoRA through peft (r 8, alpha 16, dropout 0.05 on the attention projections) on a deep copy of
the backend's model, so the backend's weights never change; AdamW with a cosine schedule and linear
warm-up (transformers' `get_cosine_schedule_with_warmup`; DAFTT: Adam, cosine), gradient norm clipped
at 1, the loss on the output tokens (and EOS) only, the LM head applied to those positions alone.
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

import contextlib
import copy
import logging
import math
import os
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

from pydantic import Field

from fewforge.data.schema import Example
from fewforge.errors import ConfigError, DataError
from fewforge.files import read_json, write_json
from fewforge.fingerprint import fingerprint
from fewforge.generators.base import AdapterRequest, TrainableLM
from fewforge.synthesis.base import MethodConfig
from fewforge.tasks.base import Task, field_title
from fewforge.tasks.kinds.base import Fields
from fewforge.tasks.kinds.base import TeacherMode as Mode

log = logging.getLogger(__name__)

TEACHER_VERSION = 1  # bump when training or formatting changes what a teacher is for the same inputs
# LoRA on SmolLM2: 5e-4 (the causal-lm learner's, which barely moved at 1e-4 in 40 steps); full fine-tuning
# keeps the usual 5e-5.
LORA_LR, FULL_LR = 5e-4, 5e-5
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj", "out_proj", "q", "k", "v", "o")


class TeacherOptions(MethodConfig):
    """How the teacher is fine-tuned, and on what (shared by daftt-annotate and daftt-generate)."""

    tune: bool = Field(True, description="false: the untuned teacher (a zero LoRA: exactly the base model)")
    lora: bool = Field(True, description="LoRA (default) or false: full fine-tuning of the blocks' linear layers "
                       "(DAFTT's), saved as an exact full-rank LoRA adapter")
    lora_r: int = Field(8, ge=1, description="LoRA rank")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling alpha")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA input")
    lora_targets: tuple[str, ...] | None = Field(
        None, description="module names LoRA adapts (default: the attention projections q/k/v/o_proj)"
    )
    epochs: int = Field(5, ge=0, description="passes over the teacher rows (0: the untuned teacher)")
    batch_size: int = Field(4, ge=1, description="rows per optimizer step")
    learning_rate: float | None = Field(
        None, gt=0, description=f"peak AdamW learning rate; default {LORA_LR:g} with LoRA, {FULL_LR:g} full"
    )
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="linear warm-up share of the cosine schedule")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_steps: int | None = Field(None, ge=1, description="cap on optimizer steps (None: epochs decide)")
    max_prompt_tokens: int = Field(
        384, ge=16, description="a longer prompt loses the end of its longest input field (a QA context)"
    )
    max_target_tokens: int = Field(64, ge=1, description="tokens of a training output (EOS added)")
    demonstrations: int = Field(0, ge=0, description="SNI-style examples in every prompt (teacher rows)")
    chat_template: bool | None = Field(
        None, description="the SNI text as the user turn of the generator's chat template (None: when it has one); "
        "false: the raw SNI text, DAFTT's base-model format"
    )
    teacher_data: Literal["fewshot", "share"] = Field(
        "fewshot", description="fewshot: the split's train + dev rows; share: teacher_share of the pool "
        "(DAFTT's 1-10% of the train split; reads pool labels)"
    )
    teacher_share: float = Field(0.05, gt=0, le=1, description="share of the pool the teacher learns from")

    def lr(self) -> float:
        return self.learning_rate or (LORA_LR if self.lora else FULL_LR)

    @property
    def tunes(self) -> bool:
        return self.tune and self.epochs > 0

    def training(self) -> dict[str, Any]:
        """The options that shape a trained teacher (its fingerprint)."""
        keys = ("lora", "lora_r", "lora_alpha", "lora_dropout", "lora_targets", "epochs", "batch_size",
                "warmup_ratio", "weight_decay", "max_steps", "max_target_tokens")
        return {**{k: getattr(self, k) for k in keys}, "learning_rate": self.lr()}


# ----------------------------------------------------------------------------------------- formatting

def _titles(task: Task, fields: Sequence[str]) -> list[str]:
    return [field_title(task.target if f == "label" else f) for f in fields]


def definition(task: Task, mode: Mode) -> str:
    """SNI's task definition: what the teacher is asked to do, in one or two sentences (the kind's words)."""
    return task.spec.teacher_definition(task, mode)


def input_fields(task: Task, mode: Mode, example: Example | None = None, label: str = "") -> Fields:
    """The "Input:" lines: a row's inputs (annotate), or the label / the given fields (generate)."""
    return task.spec.teacher_inputs(task, mode, example, label)


def output_text(task: Task, mode: Mode, example: Example) -> str:
    """What the teacher writes for a labelled row: its target (annotate) or its generated fields (generate;
    the first field's value, then "Title: value" lines for the others)."""
    if mode == "annotate":
        return task.labels[example.label] if task.is_classification else example.label
    fields = task.generated_fields
    values = [example.label if f == "label" else example.inputs[f] for f in fields]
    lines = [values[0].strip()] + [f"{title}: {v.strip()}" for title, v in zip(_titles(task, fields)[1:], values[1:])]
    return "\n".join(lines)


def _render_fields(fields: Fields) -> str:
    if len(fields) == 1 and not fields[0][0]:
        return fields[0][1].strip()
    return "\n".join(f"{t}: {v.strip()}" if t else v.strip() for t, v in fields)


@dataclass(frozen=True)
class Demo:
    fields: Fields
    output: str


class Formatter:
    """Builds the teacher's prompts for one (task, mode), token budget included: the SNI text, inside the
    generator's chat template (`chat`) or raw. `sep` goes between a prompt and its output: a space after a
    raw "Output:", nothing at the start of the chat template's assistant turn."""

    def __init__(
        self,
        task: Task,
        mode: Mode,
        lm: TrainableLM,
        max_prompt_tokens: int,
        demos: Sequence[Demo] = (),
        chat: bool | None = None,
    ):
        self.task, self.mode, self.lm, self.limit = task, mode, lm, max_prompt_tokens
        self.demos = list(demos)
        self.definition = definition(task, mode)
        self.chat = has_chat_template(lm) if chat is None else chat
        self.sep = "" if self.chat else " "

    def text(self, fields: Fields, demos: Sequence[Demo] | None = None) -> str:
        demos = self.demos if demos is None else demos
        head = f"Definition: {self.definition}\n\n"
        if not demos:
            sni = f"{head}Input: {_render_fields(fields)}\nOutput:"
        else:
            blocks = "".join(
                f"Example {i} -\nInput: {_render_fields(d.fields)}\nOutput: {d.output.strip()}\n\n"
                for i, d in enumerate(demos, 1)
            )
            sni = f"{head}{blocks}Now complete the following example -\nInput: {_render_fields(fields)}\nOutput:"
        return self.lm.render(sni) if self.chat else sni

    def prompt(self, fields: Fields, demos: Sequence[Demo] | None = None) -> tuple[str, list[int]]:
        """(prompt text, its ids) within `max_prompt_tokens`: the longest input field loses its end (a
        couple of retries, since cut tokens can re-tokenise differently)."""
        text = self.text(fields, demos)
        ids = self.lm.encode(text, False)
        if len(ids) <= self.limit:
            return text, ids
        fields = list(fields)
        longest = max(range(len(fields)), key=lambda i: len(fields[i][1]))
        value_ids = self.lm.encode(fields[longest][1], False)
        keep = len(value_ids)
        for _ in range(4):
            keep = max(0, keep - (len(ids) - self.limit))
            fields[longest] = (fields[longest][0], self.lm.tokenizer.decode(value_ids[:keep]).rstrip())
            text = self.text(fields, demos)
            ids = self.lm.encode(text, False)
            if len(ids) <= self.limit or keep == 0:
                break
        return text, ids

    def request(self, example: Example | None = None, label: str = "") -> str:
        """The prompt sent to the generator for one pool row (annotate) or one label + condition (generate)."""
        return self.prompt(input_fields(self.task, self.mode, example, label))[0]


@dataclass(frozen=True)
class TeacherRow:
    """One labelled row as the teacher learns it: prompt ids, then output ids + EOS from `target_start`."""

    ids: tuple[int, ...]
    target_start: int
    source_id: str = ""


def has_chat_template(lm: TrainableLM) -> bool:
    """Whether the backend wraps a prompt in a chat template (what `TrainableLM.render` does)."""
    probe = "fewforge-probe"
    return lm.render(probe) != probe


def eos_id(lm: TrainableLM) -> int:
    eos = lm.model.generation_config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    if eos is None:
        eos = lm.tokenizer.eos_token_id
    if eos is None:
        raise ConfigError("the generator has no end-of-sequence token to end a teacher output with")
    return int(eos)


def choose_demos(task: Task, rows: Sequence[Example], k: int, seed: int) -> list[Example]:
    """k (+1 spare, for when a training row is itself a demonstration) teacher rows, a seeded round-robin
    over the groups so every label shows."""
    if k == 0 or not rows:
        return []
    order = list(rows)
    random.Random(seed).shuffle(order)
    by_group: dict[str, list[Example]] = {}
    for e in order:
        by_group.setdefault(task.group(e), []).append(e)
    out: list[Example] = []
    while len(out) < k + 1 and any(by_group.values()):
        for group in list(by_group):
            if by_group[group] and len(out) < k + 1:
                out.append(by_group[group].pop(0))
    return out


def demo_of(task: Task, mode: Mode, e: Example) -> Demo:
    label = e.label if task.is_classification else ""
    return Demo(input_fields(task, mode, e, label), output_text(task, mode, e))


def teacher_rows(
    task: Task, mode: Mode, rows: Sequence[Example], lm: TrainableLM, options: TeacherOptions, demo_rows: Sequence[Example]
) -> list[TeacherRow]:
    """The labelled rows as token ids (`TrainableLM.encode`, as the backend encodes a prompt sent with an
    adapter): a row that is one of the demonstrations sees the spare one instead of itself."""
    k = options.demonstrations
    formatter = Formatter(task, mode, lm, options.max_prompt_tokens, chat=options.chat_template)
    eos = eos_id(lm)
    out = []
    for e in rows:
        chosen = [d for d in demo_rows if d is not e][:k]
        label = e.label if task.is_classification else ""
        _, prompt_ids = formatter.prompt(input_fields(task, mode, e, label), [demo_of(task, mode, d) for d in chosen])
        target = output_text(task, mode, e).strip()
        if not target:
            continue
        target_ids = lm.encode(formatter.sep + target, False)[: options.max_target_tokens - 1] + [eos]
        out.append(TeacherRow(tuple(prompt_ids + target_ids), len(prompt_ids), e.id))
    return out


# ------------------------------------------------------------------------------------------- training

@dataclass
class Teacher:
    """A fine-tuned (or untuned) teacher ready to send with requests."""

    path: Path
    adapter: AdapterRequest
    summary: dict[str, Any]


def _attention_modules(model: Any) -> list[str] | None:
    import torch

    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    found = [n for n in ATTENTION if n in names]
    return found or None


def _lora_config(model: Any, options: TeacherOptions) -> Any:
    from peft import LoraConfig, TaskType

    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules=list(options.lora_targets) if options.lora_targets else _attention_modules(model),
    )


def _pad(rows: Sequence[Sequence[int]], value: int) -> list[list[int]]:
    width = max(len(r) for r in rows)
    return [list(r) + [value] * (width - len(r)) for r in rows]


def target_loss(model: Any, rows: Sequence[TeacherRow], pad_id: int) -> "Any":
    """Mean cross-entropy of the output tokens given their prompts; the LM head runs on those positions only.
    `model` is a transformers causal LM (LoRA layers may be injected into it)."""
    import torch

    device = next(model.parameters()).device
    ids = torch.tensor(_pad([r.ids for r in rows], pad_id), device=device)
    mask = torch.tensor(_pad([[1] * len(r.ids) for r in rows], 0), device=device)
    row_idx, pos_idx, gold = [], [], []
    for b, r in enumerate(rows):
        n = len(r.ids) - r.target_start
        row_idx += [b] * n
        pos_idx += range(r.target_start - 1, len(r.ids) - 1)  # position t predicts token t + 1
        gold += r.ids[r.target_start :]
    body = getattr(model, model.base_model_prefix)
    hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state
    picked = hidden[torch.tensor(row_idx, device=device), torch.tensor(pos_idx, device=device)]
    logits = model.get_output_embeddings()(picked).float()
    return torch.nn.functional.cross_entropy(logits, torch.tensor(gold, device=device))


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
            total += target_loss(model, batch, pad_id).item() * n
            tokens += n
    model.train(was_training)
    return total / max(tokens, 1)


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _blocks_linear(model: Any) -> list[tuple[str, Any]]:
    """Full fine-tuning's weights: every linear layer inside the transformer body (not the LM head, which
    is tied to the input embeddings in SmolLM2 and most small LMs)."""
    import torch

    prefix = model.base_model_prefix
    body = getattr(model, prefix)
    return [(f"{prefix}.{n}", m) for n, m in body.named_modules() if isinstance(m, torch.nn.Linear)]


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
    from transformers import get_cosine_schedule_with_warmup

    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    with _seeded(seed):
        model = copy.deepcopy(lm.model)  # the backend's model never changes
        for p in model.parameters():
            p.requires_grad_(False)
        if options.lora or not options.tunes:
            try:
                model = get_peft_model(model, _lora_config(model, options))  # LoRA B = 0: the base model at step 0
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
        params = [p for p in model.parameters() if p.requires_grad]
        facts: dict[str, Any] = {"trainable_params": sum(p.numel() for p in params)}
        if not options.tunes:
            return model, [], {**facts, "steps": 0}
        steps_per_epoch = math.ceil(len(rows) / options.batch_size)
        total = options.epochs * steps_per_epoch
        if options.max_steps is not None:
            total = min(total, options.max_steps)
        optimizer = torch.optim.AdamW(params, lr=options.lr(), weight_decay=options.weight_decay)
        # warm-up rounds down: HF's warm-up starts at lr 0, so a run of a few steps would waste one of them
        schedule = get_cosine_schedule_with_warmup(optimizer, int(options.warmup_ratio * total), total)
        facts["loss_before"] = round(mean_loss(base, rows, pad), 4)
        rng = random.Random(seed)
        history: list[dict[str, Any]] = []
        model.train()
        step = 0
        for epoch in range(options.epochs):
            order = list(range(len(rows)))
            rng.shuffle(order)
            for s in range(0, len(order), options.batch_size):
                if step >= total:
                    break
                t0 = time.perf_counter()
                batch = [rows[i] for i in order[s : s + options.batch_size]]
                loss = target_loss(base, batch, pad)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                lr = schedule.get_last_lr()[0]
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                history.append({"step": step, "epoch": epoch + 1, "loss": round(loss.item(), 5), "lr": lr,
                                "tokens": sum(len(r.ids) for r in batch), "seconds": round(time.perf_counter() - t0, 3)})
                if progress is not None:
                    progress(step, total)
        model.eval()
        facts["loss_after"] = round(mean_loss(base, rows, pad), 4)
        facts["steps"] = step
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
