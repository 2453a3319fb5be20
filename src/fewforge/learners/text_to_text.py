"""Text-to-text students: a seq2seq model fine-tuned end to end (`seq2seq`), or a causal LM trained on
"source, then the target's title, then the target" with LoRA (`causal-lm`). Both predict texts.

* `seq2seq` — DAFTT's student is BART-Large fine-tuned on the real + synthetic rows; any
  `AutoModelForSeq2SeqLM` works (`model: facebook/bart-large`, `google/flan-t5-base`, or a local
  directory). No seq2seq weights ship with fewforge and nothing is downloaded offline, so `model` must be
  given. The encoder reads `task.source(e)` (squad-qg: "Context: ...\\nAnswer: ..."), the decoder is
  teacher-forced on the label + EOS. Full fine-tuning by default, as in DAFTT (`lora: true` also works).
* `causal-lm` — the packaged SmolLM2-135M-Instruct (or `model`): the prompt is
  `f"{task.source(e)}\\n{Title}:"` ("...\\nQuestion:"), the target `" " + label + EOS`, the loss only on
  the target tokens (the LM head is applied to those positions alone, not the 49k-word softmax of every
  prompt position). LoRA (r 8, alpha 16, dropout 0.05, on the attention projections q/k/v/o) is the
  default; `lora: false` fine-tunes every weight. LoRA instead of full fine-tuning is a CPU deviation:
  ~0.9M trainable weights instead of 135M (cheaper optimizer state and snapshots; a step of 4 x 200
  tokens costs ~5 s on 2 cores either way, the backward pass through the frozen layers dominates). The
  LoRA learning rate is 5e-4, higher than the usual 1e-4, because 40 steps at 1e-4 barely moved it.
  Generation is greedy and stops at a newline or EOS; the output is stripped.

Both train through `loop.train_torch`, so every strategy of strategies.py ("paired", "real+syn",
"paired+gs", ...) works: the loss of a batch half is the mean token cross-entropy of its targets, with
`TorchConfig.smoothing(source)` as label smoothing.

Source length: `max_source_length` tokens (the causal prompt with its "\\nQuestion:" line). A longer
source is shortened where it is longest: the longest input field (squad-qg: the context) loses its end,
so short fields such as the answer and the template's labels stay; a plain right cut is the last resort.

Model selection (the loop's "accuracy" slot) is the mean ROUGE-L of greedy generations on the first
`dev_rows` dev rows (default 16), ties broken by their teacher-forced loss. Generation is what costs on
CPU (SmolLM2, 2 cores: ~1.1 s a row trained, ~1.7 s untrained, whose outputs run to `max_new_tokens`),
so only `dev_evaluations` (default 4) evaluations run, on a 16-row slice of dev; `dev_metric: loss`
skips generation and keeps the lowest dev loss (the accuracy slot is then 0).

Step budget: batch 4, 5 epochs, 32..64 steps: a 32-example train set gets 40 steps (causal-lm with LoRA
on 2 cores: ~7 min with the four evaluations; squad-qg seed 13, 50 test rows: ROUGE-L 0.154 -> 0.258,
BLEU 0.013 -> 0.044).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal, Sequence

from pydantic import Field, model_validator

from fewforge.data.schema import Example
from fewforge.errors import ConfigError
from fewforge.files import write_json
from fewforge.hf import offline as hub_offline
from fewforge.hf import quiet_transformers
from fewforge.learners.base import FitReport, LearnerConfig, SeededLearner, require_fitted
from fewforge.learners.causal_lm import lora_config, pad, target_loss
from fewforge.learners.loop import TorchConfig, TorchModel, train_torch
from fewforge.learners.runtime import torch_threads
from fewforge.tasks.base import Task, field_title
from fewforge.tasks.kinds.text_to_text import TextToTextKind

if TYPE_CHECKING:
    import torch

ADAPTER_DIR = "adapter"  # LoRA: the PEFT adapter (the base model is re-read from `model`)
MODEL_DIR = "model"  # full fine-tuning: the whole model and its tokenizer
# LoRA on SmolLM2, squad-qg 32-shot seed 13, 40 steps: lr 5e-4 reached dev ROUGE-L 0.207 / dev loss 2.21
# against 0.157 / 2.46 at 1e-4 (still degenerate "What is the answer to the question: ..." outputs).
# Full fine-tuning keeps the usual 5e-5 (not tuned here).
LORA_LR, FULL_LR = 5e-4, 5e-5
# Attention projections by architecture family: Llama/Qwen/Mistral/Gemma (q/k/v/o_proj), BART (out_proj),
# T5 (q/k/v/o). A model with none of them falls back to PEFT's per-architecture default.


class TextToTextConfig(TorchConfig):
    """Options shared by the text-to-text learners; each learner sets its own defaults."""

    reads_weights: ClassVar[bool] = False  # its loss takes no per-row weights: no 'paired+reweight'

    model: str | None = Field(None, description="The model: a local Hugging Face directory or a hub id.")
    lora: bool = Field(False, description="Train LoRA adapters (PEFT) instead of every weight.")
    lora_r: int = Field(8, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling alpha.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    lora_targets: tuple[str, ...] | None = Field(
        None,
        description="Module names LoRA adapts (default: the attention projections, q/k/v/o_proj or BART's and "
        "T5's names; PEFT's default for other architectures).",
    )
    max_source_length: int = Field(
        256, ge=8, description="Tokens of the source (causal: of the prompt); a longer one loses the end of its "
        "longest input field (squad-qg: the context)."
    )
    max_target_length: int = Field(64, ge=1, description="Tokens of a training target (with EOS); the rest is cut.")
    max_new_tokens: int = Field(32, ge=1, description="Most tokens generated per prediction.")
    num_beams: int = Field(1, ge=1, description="Beam width when generating (1: greedy, the CPU default).")
    predict_batch: int = Field(8, ge=1, description="Rows per generation batch (rows of similar length together).")
    batch_size: int = Field(4, ge=1, description="Training examples per optimizer step (per source for 'paired').")
    learning_rate: float | None = Field(
        None, gt=0, description=f"Peak AdamW learning rate; default {LORA_LR:g} with LoRA, {FULL_LR:g} for full "
        "fine-tuning."
    )
    epochs: float = Field(5.0, gt=0, description="Passes over the real rows, before the min/max step clamp.")
    min_steps: int = Field(32, ge=1, description="Least optimizer steps (a 32-example set gets 40 at batch 4).")
    max_steps: int = Field(64, ge=1, description="Most optimizer steps.")
    dev_rows: int = Field(
        16, ge=1, description="Dev rows each evaluation generates for (and scores the loss of): generation costs "
        "~1 s a row on 2 CPU cores."
    )
    dev_metric: Literal["rouge_l", "loss"] = Field(
        "rouge_l", description="Model selection: dev ROUGE-L of generations (ties: lower dev loss), or dev loss "
        "alone (no generation; the reported dev accuracy is then 0)."
    )
    dev_evaluations: int = Field(
        4, ge=1, description="Dev evaluations per run when eval_every is unset (each generates dev_rows outputs)."
    )

    def eval_interval(self, total_steps: int) -> int:
        return self.eval_every or max(1, total_steps // self.dev_evaluations)

    def lr(self) -> float:
        return self.learning_rate or (LORA_LR if self.lora else FULL_LR)


class Seq2SeqConfig(TextToTextConfig):
    model: str | None = Field(
        None,
        description="Seq2seq model: a hub id (DAFTT: facebook/bart-large; google/flan-t5-base; needs a network "
        "or the hub cache) or a local directory. Required: no seq2seq weights ship with fewforge.",
    )

    @model_validator(mode="after")
    def _needs_model(self) -> "Seq2SeqConfig":
        if not self.model:
            raise ConfigError(
                "the seq2seq learner needs a `model` (no seq2seq weights ship with fewforge)",
                hint="pass model: facebook/bart-base (or a local directory; a hub id needs a network or the hub cache)",
            )
        return self


class CausalLMConfig(TextToTextConfig):
    model: str | None = Field(
        None,
        description="Causal LM: a local directory, a .gguf file (dequantized once into ~/.cache/fewforge/models) or "
        "a hub id (needs a network); default: the packaged SmolLM2-135M-Instruct.",
    )
    lora: bool = Field(True, description="Train LoRA adapters (default) instead of every weight (false).")


class _TextToTextLearner(SeededLearner):
    """What both learners share: encoding with source shortening, the training loop, dev evaluation by
    generation, batched prediction, LoRA, save and load. A subclass brings its model class, its rows
    (`_encode`), its loss and its generation."""

    kinds: ClassVar[tuple[str, ...]] = (TextToTextKind.name,)
    config: TextToTextConfig
    auto_class: ClassVar[str]
    add_special: ClassVar[bool]  # whether the tokenizer's own special tokens go around the source

    def __init__(self, task: Task, config: TextToTextConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(task, config, seed=seed)
        if task.kind not in self.kinds:
            raise ConfigError(
                f"the {self.name} learner learns text-to-text tasks, not {task.kind} task {task.name!r}",
                hint="use a classification learner (e.g. encoder) for this task",
            )
        self.model: Any = None  # the PEFT model with LoRA, else the model itself
        self.tokenizer: Any = None

    # -- model ---------------------------------------------------------------------------------------

    def _source(self) -> str:
        """Where the pretrained weights are (a directory or a hub id)."""
        raise NotImplementedError

    @property
    def lm(self) -> Any:
        """The model without its PEFT wrapper (LoRA layers are injected into it in place)."""
        return self.model.get_base_model() if self.config.lora else self.model

    def _load(self, source: str, adapter: Path | None = None) -> None:
        import torch
        import transformers

        offline = hub_offline()
        auto = getattr(transformers, self.auto_class)
        try:
            with quiet_transformers():
                self.tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=offline)
                lm = auto.from_pretrained(source, local_files_only=offline, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            where = " (HF_HUB_OFFLINE is set: a hub id must be in the local cache)" if offline else ""
            raise ConfigError(
                f"cannot load {self.auto_class} from {source!r}{where}: {exc}".splitlines()[0],
                hint=f"pass a local Hugging Face directory of a {'seq2seq' if self.add_special else 'causal'} LM",
            ) from exc
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        lm.to("cuda" if torch.cuda.is_available() else "cpu")
        if not self.config.lora:
            self.model = lm
            return
        from peft import PeftModel, get_peft_model

        if adapter is not None:
            self.model = PeftModel.from_pretrained(lm, str(adapter))
            return
        cfg = self.config
        peft_config = lora_config(lm, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets,
                                  seq2seq=self.add_special)
        try:
            self.model = get_peft_model(lm, peft_config)  # LoRA B starts at 0: the model is unchanged at step 0
        except ValueError as exc:
            raise ConfigError(
                f"LoRA cannot adapt {source!r}: {exc}".splitlines()[0], hint="set lora_targets to its module names"
            ) from exc

    # -- rows ----------------------------------------------------------------------------------------

    def _render(self, example: Example) -> str:
        """The text the model reads."""
        return self.task.source(example)

    def _source_ids(self, example: Example) -> list[int]:
        """Token ids of the rendered source within `max_source_length`: too long, the longest input field
        loses its end (a couple of retries, since cut tokens can re-tokenize differently), then a plain cut
        that keeps the last (special) token."""
        tok, limit = self.tokenizer, self.config.max_source_length
        ids = tok(self._render(example), add_special_tokens=self.add_special)["input_ids"]
        if len(ids) <= limit:
            return ids
        inputs = dict(example.inputs)
        longest = max(self.task.input_fields, key=lambda f: len(inputs.get(f, "")))
        field_ids = tok(inputs[longest], add_special_tokens=False)["input_ids"]
        keep = len(field_ids)
        for _ in range(3):
            keep = max(0, keep - (len(ids) - limit))
            inputs[longest] = tok.decode(field_ids[:keep]).rstrip()
            ids = tok(self._render(dataclasses.replace(example, inputs=inputs)), add_special_tokens=self.add_special)[
                "input_ids"
            ]
            if len(ids) <= limit or keep == 0:
                break
        if len(ids) > limit:
            ids = ids[: limit - 1] + ids[-1:] if self.add_special else ids[:limit]
        return ids

    def _target_ids(self, label: str) -> list[int]:
        """Training target: the label's tokens + EOS, at most `max_target_length`."""
        raise NotImplementedError

    def _encode(self, examples: Sequence[Example], targets: bool = True) -> list[dict[str, list[int]]]:
        return [
            {"source": self._source_ids(e), "target": self._target_ids(e.label) if targets else []} for e in examples
        ]

    # -- loss and generation (per model family) ------------------------------------------------------

    def _loss(self, rows: Sequence[dict[str, list[int]]], smoothing: float) -> "torch.Tensor":
        """Mean token cross-entropy of the targets given the sources."""
        raise NotImplementedError

    def _generate_batch(self, rows: Sequence[dict[str, list[int]]]) -> list[str]:
        """Generated texts for one batch of encoded sources."""
        raise NotImplementedError

    def _generate(self, rows: Sequence[dict[str, list[int]]]) -> list[str]:
        """Texts in input order; rows sorted by length so a batch pads little."""
        import torch

        was_training = self.model.training
        self.model.eval()
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]["source"]))
        out = [""] * len(rows)
        step = self.config.predict_batch
        with torch.inference_mode():
            for s in range(0, len(order), step):
                idx = order[s : s + step]
                for i, text in zip(idx, self._generate_batch([rows[i] for i in idx])):
                    out[i] = text
        self.model.train(was_training)
        return out

    def _dev_loss(self, rows: Sequence[dict[str, list[int]]]) -> float:
        import torch

        was_training = self.model.training
        self.model.eval()
        total, tokens = 0.0, 0
        with torch.inference_mode():
            for s in range(0, len(rows), self.config.predict_batch):
                batch = rows[s : s + self.config.predict_batch]
                n = sum(len(r["target"]) for r in batch)
                total += self._loss(batch, 0.0).item() * n
                tokens += n
        self.model.train(was_training)
        return total / max(tokens, 1)

    def evaluate(
        self, dev: Sequence[Example], rows: Sequence[dict[str, list[int]]] | None = None
    ) -> tuple[float, float]:
        """(mean ROUGE-L of generations on the first `dev_rows` dev rows, their teacher-forced loss); with
        `dev_metric: loss` no generation runs and the first value is 0."""
        from fewforge.evaluation.metrics import rouge_l_scores

        require_fitted(self, self.model)
        dev = list(dev)[: self.config.dev_rows]
        rows = list(rows)[: self.config.dev_rows] if rows is not None else self._encode(dev)
        loss = self._dev_loss(rows)
        if self.config.dev_metric == "loss":
            return 0.0, loss
        scores = rouge_l_scores([self.task.spec.gold(e) for e in dev], self._generate(rows))
        return sum(scores) / len(scores), loss

    # -- training ------------------------------------------------------------------------------------

    def _train(
        self,
        train: list[Example],
        dev: list[Example],
        synthetic: list[Example],
        progress: Callable[[int, int], None] | None,
    ) -> FitReport:

        cfg = self.config
        self._load(self._source())  # inside seeded(): LoRA's A matrices draw from torch's RNG
        rows = {"real": self._encode(train), "syn": self._encode(synthetic)}
        dev = dev[: cfg.dev_rows]
        dev_rows = self._encode(dev)
        def loss(source: str, idx: list[int], smoothing: float) -> torch.Tensor:
            return self._loss([rows[source][i] for i in idx], smoothing)

        def lengths(source: str) -> list[int]:
            return [len(r["source"]) + len(r["target"]) for r in rows[source]]

        self.model.train()  # dropout (LoRA's, T5's) while training; evaluation switches it off
        report = train_torch(
            cfg.model_copy(update={"learning_rate": cfg.lr()}),
            TorchModel.trainable(self.model, loss, lambda: self.evaluate(dev, dev_rows)),
            len(train),
            len(synthetic),
            self.seed,
            real_lengths=lengths("real"),
            syn_lengths=lengths("syn"),
            progress=progress,
        )
        self.model.eval()
        report.extra["dev_metric"] = cfg.dev_metric
        report.extra["dev_rows"] = len(dev)
        return report

    # -- inference and persistence -------------------------------------------------------------------

    def predict(self, examples: Sequence[Example] | Sequence[str]) -> list[str]:
        """Generated output texts, one per input (Examples, a datasets.Dataset, or plain strings / tuples
        of the task's input fields)."""
        require_fitted(self, self.model)
        rows = self._inputs(examples)
        if not rows:
            return []
        with torch_threads(self.config.threads):
            return self._generate(self._encode(rows, targets=False))

    def predict_proba(self, examples: Sequence[Example]) -> Any:
        raise ConfigError(
            f"the {self.name} learner predicts texts, not class probabilities",
            hint="text-to-text learners predict texts: call predict()",
        )

    def save(self, directory: Path) -> None:
        """LoRA: the PEFT adapter (a few MB) in adapter/, the base re-read from `model` on load; full
        fine-tuning: the whole model and tokenizer in model/. Plus fewforge.json."""
        require_fitted(self, self.model)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            if self.config.lora:
                self.model.save_pretrained(directory / ADAPTER_DIR)
            else:
                self.model.save_pretrained(directory / MODEL_DIR)
                self.tokenizer.save_pretrained(directory / MODEL_DIR)
        write_json(directory / self.META_FILE, self._meta(base=self._source()))

    @classmethod
    def load(cls, task: Task, directory: Path) -> "_TextToTextLearner":
        directory = Path(directory)
        meta = cls._read_meta(task, directory)
        learner = cls(task, cls.Config(**meta["config"]), seed=meta.get("seed", 0))
        if learner.config.lora:
            learner._load(learner._source(), adapter=directory / ADAPTER_DIR)
        else:
            learner._load(str(directory / MODEL_DIR))
        learner.model.eval()
        return learner


class Seq2SeqLearner(_TextToTextLearner):
    """Fine-tunes an AutoModelForSeq2SeqLM (DAFTT: BART-Large): source -> label, teacher-forced."""

    name: ClassVar[str] = "seq2seq"
    Config: ClassVar[type[LearnerConfig]] = Seq2SeqConfig
    config: Seq2SeqConfig
    auto_class: ClassVar[str] = "AutoModelForSeq2SeqLM"
    add_special: ClassVar[bool] = True
    # a guess, not measured (no seq2seq weights offline): BART-base is ~1x SmolLM2's size, BART-large ~3x
    seconds_per_cell: ClassVar[float] = 900.0

    def _source(self) -> str:
        model = self.config.model or ""
        path = Path(model).expanduser()
        return str(path.resolve()) if path.is_dir() else model

    def _target_ids(self, label: str) -> list[int]:
        tok, limit = self.tokenizer, self.config.max_target_length
        ids = tok(label, add_special_tokens=True)["input_ids"]
        eos = tok.eos_token_id
        if eos is not None and (not ids or ids[-1] != eos):  # a tokenizer that adds no EOS (word-level, GPT-style)
            ids = ids + [eos]
        return ids if len(ids) <= limit else ids[: limit - 1] + ids[-1:]

    def _tensors(self, rows: Sequence[dict[str, list[int]]]) -> dict[str, "torch.Tensor"]:
        import torch

        device = self.lm.device
        sources = [r["source"] for r in rows]
        return {
            "input_ids": torch.tensor(pad(sources, self.tokenizer.pad_token_id), device=device),
            "attention_mask": torch.tensor(pad([[1] * len(s) for s in sources], 0), device=device),
        }

    def _loss(self, rows: Sequence[dict[str, list[int]]], smoothing: float) -> "torch.Tensor":
        import torch

        labels = torch.tensor(pad([r["target"] for r in rows], -100), device=self.lm.device)
        decoder_input_ids = self.lm.prepare_decoder_input_ids_from_labels(labels=labels)
        logits = self.model(**self._tensors(rows), decoder_input_ids=decoder_input_ids).logits
        return torch.nn.functional.cross_entropy(
            logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, label_smoothing=smoothing
        )

    def _generate_batch(self, rows: Sequence[dict[str, list[int]]]) -> list[str]:
        cfg = self.config
        out = self.lm.generate(
            **self._tensors(rows), max_new_tokens=cfg.max_new_tokens, num_beams=cfg.num_beams, do_sample=False
        )
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]


class CausalLMLearner(_TextToTextLearner):
    """A causal LM (default: the packaged SmolLM2-135M-Instruct) trained on "source\\nTitle: target" with
    LoRA (default) or full fine-tuning; the loss covers the target tokens only."""

    name: ClassVar[str] = "causal-lm"
    Config: ClassVar[type[LearnerConfig]] = CausalLMConfig
    config: CausalLMConfig
    auto_class: ClassVar[str] = "AutoModelForCausalLM"
    add_special: ClassVar[bool] = False
    # SmolLM2 + LoRA on 2 CPU cores, squad-qg 32-shot: ~400-480 s for 40 steps with 4 dev evaluations,
    # then ~1.1 s per generated test row (a few hundred rows)
    seconds_per_cell: ClassVar[float] = 720.0

    def _source(self) -> str:
        from fewforge.packaged import lm_source

        return lm_source(self.config.model)

    def _render(self, example: Example) -> str:
        return f"{self.task.source(example)}\n{field_title(self.task.target)}:"

    def _target_ids(self, label: str) -> list[int]:
        ids = self.tokenizer(" " + label.strip(), add_special_tokens=False)["input_ids"]
        return ids[: self.config.max_target_length - 1] + [self.tokenizer.eos_token_id]

    def _loss(self, rows: Sequence[dict[str, list[int]]], smoothing: float) -> "torch.Tensor":
        # the target tokens only, predicted from the source (LoRA layers are inside self.lm)
        seqs = [r["source"] + r["target"] for r in rows]
        starts = [len(r["source"]) for r in rows]
        return target_loss(self.lm, seqs, starts, self.tokenizer.pad_token_id, smoothing)

    def _generate_batch(self, rows: Sequence[dict[str, list[int]]]) -> list[str]:
        import torch

        cfg, tok = self.config, self.tokenizer
        device = self.lm.device
        sources = [r["source"] for r in rows]
        ids = torch.tensor(pad(sources, tok.pad_token_id, left=True), device=device)
        mask = torch.tensor(pad([[1] * len(s) for s in sources], 0, left=True), device=device)
        out = self.lm.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=cfg.max_new_tokens,
            num_beams=cfg.num_beams,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            stop_strings=["\n"],
            tokenizer=tok,
        )
        texts = tok.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
        return [t.split("\n", 1)[0].strip() for t in texts]
