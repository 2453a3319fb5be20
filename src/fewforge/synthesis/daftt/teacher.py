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

Training, saving and reuse: training.py.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from pydantic import Field

from fewforge.data.schema import Example
from fewforge.generators.base import TrainableLM
from fewforge.learners.causal_lm import eos_id
from fewforge.synthesis.base import MethodConfig
from fewforge.tasks.base import Task, field_title
from fewforge.tasks.kinds.base import Fields
from fewforge.tasks.kinds.base import TeacherMode as Mode

log = logging.getLogger(__name__)

# bump when training or formatting changes what a teacher is for the same inputs; 2: trained through
# learners/loop.train_torch (its step budget, batch plan and warm-up rounding)
TEACHER_VERSION = 2
# LoRA on SmolLM2: 5e-4 (the causal-lm learner's, which barely moved at 1e-4 in 40 steps); full fine-tuning
# keeps the usual 5e-5.
LORA_LR, FULL_LR = 5e-4, 5e-5


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
    eos = eos_id(lm.model, lm.tokenizer)
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
