"""Prompt tuning of a frozen language model (Lester et al. 2021; DawGen §3.3, §4.2), and the cloze baselines
that share its model: prompt-based fine-tuning (PFT), PFT + soft prompt, zero-shot prompting.

The input is the task's cloze template with the text before `{mask}` kept: "<S> It was". `prompt_tokens`
trainable vectors (PEFT's prompt-tuning embedding, initialised from sampled vocabulary embeddings) are
prepended to its input embeddings; the label is read from the verbalizer words' scores at the answer
position — for a causal LM the next token after the prefix, for a seq2seq LM (T5, Flan-T5) the first
decoder token, the soft prompt on the encoder input only (Lester et al.; PEFT's seq2seq default,
`num_transformer_submodules=2`, would put a copy on the decoder side too). The loss is cross-entropy over
the verbalizer words (LM-BFF), so the probabilities are a softmax over those words.

Only the hidden state at the answer position meets the output embedding rows of the verbalizer words:
a causal step never computes the 49k-word softmax over every position that a plain forward would.
The base model's weights are frozen (`train="prompt"`): no gradient is kept for them, and gradient
surgery works on the prompt's vectors alone.

Defaults are the paper's (100 tokens, lr 0.3, cosine schedule, 1000 steps, dev every 4 steps, batch 4);
docs/fidelity.md lists what the committed 2-core grids reduce.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal, Sequence

from pydantic import Field

from fewforge.data.schema import Example
from fewforge.errors import ConfigError, TaskError
from fewforge.files import write_json
from fewforge.hf import quiet_transformers, second_order_attention
from fewforge.learners.base import FitReport, LearnerConfig, TorchLearner, label_ids, require_fitted, sample_weights
from fewforge.learners.loop import TorchConfig, TorchModel, train_torch, weighted_cross_entropy
from fewforge.learners.strategies import uses_reweight
from fewforge.packaged import lm_source
from fewforge.tasks.base import Task

if TYPE_CHECKING:
    import torch

PREDICT_BATCH = 16
CAUSAL_PROMPT_LR = 0.01  # measured on SmolLM2 (see PromptTuningConfig.learning_rate)
# Templates for a model that reads left to right, used when the task's cloze template has text after
# {mask} (MLM-style, e.g. LM-BFF's "{text_a} ? {mask} , {text_b}"): the answer must come last.


class PromptTuningConfig(TorchConfig):
    model: str | None = Field(
        None,
        description="A local Hugging Face causal or seq2seq LM directory, a .gguf file (converted once into "
        "~/.cache/fewforge/models), or a hub id (needs a network); default: the packaged SmolLM2-135M-Instruct.",
    )
    train: Literal["prompt", "model", "both", "none"] = Field(
        "prompt",
        description="What trains: 'prompt' (prompt tuning, the LM frozen), 'model' (prompt-based fine-tuning, "
        "no soft prompt), 'both' (PFT + soft prompt), 'none' (zero-shot prompting with the template).",
    )
    prompt_tokens: int = Field(100, ge=1, description="Soft-prompt vectors prepended to the input (paper: 100).")
    init: str = Field(
        "vocab", description="Soft-prompt initialisation: 'vocab' (embeddings of randomly sampled vocabulary words), "
        "'random', or the folder of a saved prompt to start from (a prompt-tuning model saved by fewforge, or its "
        "prompt/ adapter folder): DawGen's prompt-transfer baselines start from a prompt tuned elsewhere.",
    )

    template: str | None = Field(
        None,
        description="Cloze template with the task's fields and {mask} last (default: the task's cloze template "
        "when {mask} ends it, else a question-style one).",
    )
    demonstrations: int = Field(
        0,
        ge=0,
        description="In-context learning: this many training rows per class, filled in with their label word "
        "and shuffled by the seed, precede every input (GPT-3 / LM-BFF ICL; usually with train='none').",
    )
    max_length: int = Field(
        256, ge=8, description="Tokens of the filled template (with demonstrations); longer inputs lose their start."
    )
    batch_size: int = Field(4, ge=1, description="Examples per step and source (paper: 4 paraphrase, 6 NLI).")
    learning_rate: float | None = Field(
        None,
        gt=0,
        description="Peak learning rate; default: the paper's 0.3 for a seq2seq (T5) target, 0.01 for a causal LM "
        "(SmolLM2's embeddings are ~7x smaller than T5's: at 0.3 AdamW moves each prompt coordinate by twice its "
        "scale per step; SST-2 16-shot, 32 steps: 54.3 at 0.3 vs ~68.5 at 0.01).",
    )
    schedule: Literal["linear", "cosine"] = Field("cosine", description="Decay after warmup (paper: cosine).")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="Fraction of steps warming up (the paper names none).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    min_steps: int = Field(1000, ge=1, description="Least optimizer steps (paper: up to 1000 steps).")
    max_steps: int = Field(1000, ge=1, description="Most optimizer steps (paper: 1000).")
    eval_every: int | None = Field(4, ge=1, description="Dev accuracy every this many steps (paper: 4), best kept.")


def answer_prefix(template: str, kind: str) -> tuple[str, str]:
    """(the template up to {mask}, the separator before the verbalizer word): "{text} It was {mask}."
    gives ("{text} It was", " "). A template with more than punctuation after {mask} gives way to
    the kind's `causal_cloze`, because the answer must be the last thing a left-to-right model reads."""
    before, found, after = template.partition("{mask}")
    fields = {f for _, f, _, _ in string.Formatter().parse(after) if f}
    if not found or fields or after.strip(" .?!,:;\n"):
        from fewforge.tasks.kinds import get_kind

        before, _, _ = get_kind(kind).causal_cloze.partition("{mask}")
    stripped = before.rstrip(" ")
    return stripped, " " if stripped != before else ""


class PromptTuning(TorchLearner):
    """A frozen LM read through a cloze template and verbalizer, with a trained soft prompt."""

    name: ClassVar[str] = "prompt-tuning"
    Config: ClassVar[type[LearnerConfig]] = PromptTuningConfig
    config: PromptTuningConfig
    seconds_per_cell: ClassVar[float] = 600.0

    def __init__(self, task: Task, config: PromptTuningConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(task, config, seed=seed)
        self.labels = task.label_names
        self.model: Any = None  # the PEFT model when a soft prompt is used, else the LM itself
        self.tokenizer: Any = None
        self.seq2seq = False
        self.verbalizer: list[int] = []
        self.prefix, self.separator = answer_prefix(self.config.template or task.cloze_template, task.kind)
        self.context = ""  # in-context demonstrations, chosen from the training rows in fit()

    @property
    def uses_prompt(self) -> bool:
        return self.config.train in ("prompt", "both")

    # -- model -----------------------------------------------------------------------------------

    def _load(self, source: str, adapter: Path | None = None) -> None:
        import os

        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
        try:
            with quiet_transformers():
                self.seq2seq = bool(AutoConfig.from_pretrained(source, local_files_only=offline).is_encoder_decoder)
                auto = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
                self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
                lm = auto.from_pretrained(source, local_files_only=offline, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load language model from {source!r}: {exc}".splitlines()[0],
                hint="pass a local Hugging Face causal or seq2seq LM directory, or a .gguf file",
            ) from exc
        lm.to("cuda" if torch.cuda.is_available() else "cpu")
        self.verbalizer = self._verbalizer_ids()
        if not self.uses_prompt:
            self.model = lm
            return
        from peft import PeftModel, PromptTuningInit, TaskType, get_peft_model
        from peft import PromptTuningConfig as PeftPromptConfig

        if adapter is not None:
            self.model = PeftModel.from_pretrained(lm, str(adapter))
            return
        peft_config = PeftPromptConfig(
            task_type=TaskType.SEQ_2_SEQ_LM if self.seq2seq else TaskType.CAUSAL_LM,
            num_virtual_tokens=self.config.prompt_tokens,
            num_transformer_submodules=1,  # the encoder side only for seq2seq (Lester et al.)
            prompt_tuning_init=PromptTuningInit.SAMPLE_VOCAB if self.config.init == "vocab" else PromptTuningInit.RANDOM,
        )
        self.model = get_peft_model(lm, peft_config)  # draws the init from torch's RNG: call inside seeded()
        if self.config.init not in ("vocab", "random"):  # a prompt tuned elsewhere (prompt transfer), trained on
            self._start_from(self.config.init)

    def _start_from(self, path: str) -> None:
        """Copy a saved prompt's vectors into the fresh soft prompt (PEFT will not train a loaded one)."""
        import torch
        from safetensors.torch import load_file

        folder = saved_prompt(path)
        if folder is None or not (folder / "adapter_model.safetensors").is_file():
            raise ConfigError(
                f"init {path!r} is neither 'vocab', 'random' nor a folder holding a saved prompt",
                hint="pass a prompt-tuning model folder saved by fewforge (save_models: true), or its prompt/ folder",
            )
        saved = load_file(str(folder / "adapter_model.safetensors")).get("prompt_embeddings")
        embedding = self.model.prompt_encoder["default"].embedding.weight
        if saved is None or saved.shape != embedding.shape:
            shape = None if saved is None else tuple(saved.shape)
            raise ConfigError(
                f"the saved prompt in {folder} has shape {shape}, this learner's is {tuple(embedding.shape)}",
                hint=f"set prompt_tokens: {shape[0]}" if shape else "save the prompt with fewforge's prompt-tuning learner",
            )
        with torch.no_grad():
            embedding.copy_(saved.to(embedding.dtype))

    @property
    def lm(self) -> Any:
        """The language model without its adapter."""
        return self.model.get_base_model() if self.uses_prompt else self.model

    def _verbalizer_ids(self) -> list[int]:
        """The first token of each label's word as it follows the prefix; two labels sharing it is an error."""
        ids = []
        for label in self.labels:
            word = self.separator + self.task.labels[label]
            if self.seq2seq:
                word = word.strip()
            tokens = self.tokenizer(word, add_special_tokens=False)["input_ids"]
            if not tokens:
                raise TaskError(f"verbalizer word {self.task.labels[label]!r} of label {label!r} has no tokens")
            ids.append(tokens[0])
        if len(set(ids)) != len(ids):
            words = [self.task.labels[label] for label in self.labels]
            raise TaskError(
                f"task {self.task.name!r}: verbalizer words {words} share a first token for this model",
                hint="give the labels words that start differently",
            )
        return ids

    def _fill(self, example: Example) -> str:
        return self.prefix.format(**example.inputs, description=self.task.description)

    def _demonstrations(self, train: Sequence[Example]) -> str:
        """`demonstrations` rows per class with their label words, in a seeded random order."""
        import random

        k = self.config.demonstrations
        if not k:
            return ""
        rng = random.Random(self.seed)
        chosen = []
        for label in self.labels:
            rows = [e for e in train if e.label == label]
            chosen += rng.sample(rows, min(k, len(rows)))
        rng.shuffle(chosen)
        return "".join(f"{self._fill(e)}{self.separator}{self.task.labels[e.label]}\n\n" for e in chosen)

    def _encode(self, examples: Sequence[Example]) -> list[list[int]]:
        """Token ids of each filled prefix (after the demonstrations); too long keeps the end, where the
        question and the answer slot are."""
        out = []
        limit = self.config.max_length
        for e in examples:
            ids = self.tokenizer(self.context + self._fill(e), add_special_tokens=self.seq2seq)["input_ids"]
            out.append(ids[-limit:])
        return out

    def _scores(self, rows: Sequence[list[int]]) -> "torch.Tensor":
        """Verbalizer logits (batch, labels) for token rows, through the soft prompt when there is one."""
        import torch

        device = self.lm.device
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
        embeds = self.lm.get_input_embeddings()(ids)
        n_prompt = 0
        if self.uses_prompt:
            prompt = self.model.get_prompt(batch_size=len(rows)).to(embeds.dtype)
            n_prompt = prompt.shape[1]
            embeds = torch.cat([prompt, embeds], dim=1)
            mask = torch.cat([torch.ones(len(rows), n_prompt, dtype=mask.dtype, device=device), mask], dim=1)
        verbalizer = torch.tensor(self.verbalizer, device=device)
        if self.seq2seq:
            start = self.lm.config.decoder_start_token_id or 0
            decoder = torch.full((len(rows), 1), start, dtype=torch.long, device=device)
            logits = self.lm(inputs_embeds=embeds, attention_mask=mask, decoder_input_ids=decoder).logits
            return logits[:, 0, verbalizer]
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        body = getattr(self.lm, self.lm.base_model_prefix)
        hidden = body(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).last_hidden_state
        last = torch.tensor([n_prompt + len(r) - 1 for r in rows], device=device)
        answer = hidden[torch.arange(len(rows), device=device), last]
        head = self.lm.get_output_embeddings()
        logits = answer @ head.weight[verbalizer].T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[verbalizer]
        cap = getattr(self.lm.config, "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits

    def _trainable(self) -> list[tuple[str, Any]]:
        if self.config.train in ("model", "both"):
            for p in self.lm.parameters():
                p.requires_grad_(True)
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    # -- training --------------------------------------------------------------------------------

    def _train(
        self,
        train: Sequence[Example],
        dev: Sequence[Example],
        synthetic: Sequence[Example],
        progress: Callable[[int, int], None] | None,
    ) -> FitReport:
        import torch

        cfg = self.config
        self._load(lm_source(cfg.model))
        self.context = self._demonstrations(train)
        rows = {"real": self._encode(train), "syn": self._encode(synthetic)}
        ys = {"real": label_ids(self.task, train, "train"), "syn": label_ids(self.task, synthetic, "synthetic")}
        dev_rows, dev_y = self._encode(dev), label_ids(self.task, dev, "dev")
        if cfg.train == "none":  # zero-shot: the template and verbalizer alone
            accuracy, _ = self._evaluate(dev_rows, dev_y)
            return FitReport(best_dev_accuracy=accuracy, best_step=0, steps=0, seconds=0.0,
                             extra={"strategy": "none", "trainable_parameters": 0})
        params = self._trainable()
        if cfg.learning_rate is None:
            cfg = cfg.model_copy(update={"learning_rate": 0.3 if self.seq2seq else CAUSAL_PROMPT_LR})

        def loss(source: str, idx: list[int], smoothing: float, w: list[float] | None = None) -> torch.Tensor:
            labels = torch.tensor([ys[source][i] for i in idx], device=self.lm.device)
            scores = self._scores([rows[source][i] for i in idx])
            return weighted_cross_entropy(scores, labels, smoothing, w)

        def snapshot() -> dict[str, torch.Tensor]:
            return {n: p.detach().clone() for n, p in params}

        def restore(state: dict[str, torch.Tensor]) -> None:
            with torch.no_grad():
                for n, p in params:
                    p.copy_(state[n])

        # Dropout off throughout: a frozen LM is read, not regularised (and predictions stay deterministic).
        self.model.eval()
        with second_order_attention(self.lm, uses_reweight(cfg.strategy)):  # the look-ahead differentiates twice
            report = train_torch(
                cfg,
                TorchModel(parameters=params, loss=loss, evaluate=lambda: self._evaluate(dev_rows, dev_y),
                           snapshot=snapshot, restore=restore),
                len(train),
                len(synthetic),
                self.seed,
                real_lengths=[len(r) for r in rows["real"]],
                syn_lengths=[len(r) for r in rows["syn"]],
                syn_weights=sample_weights(synthetic),  # lineage["weight"] (curation), None when no row has one
                syn_labels=ys["syn"],
                progress=progress,
            )
        return report

    def _logits(self, rows: Sequence[list[int]]) -> "torch.Tensor":
        import torch

        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        out = torch.empty(len(rows), len(self.labels))
        with torch.inference_mode():
            for s in range(0, len(order), PREDICT_BATCH):
                idx = order[s : s + PREDICT_BATCH]
                out[idx] = self._scores([rows[i] for i in idx]).float().cpu()
        return out

    def _evaluate(self, rows: Sequence[list[int]], y: Sequence[int]) -> tuple[float, float]:
        import torch

        logits = self._logits(rows)
        gold = torch.tensor(list(y))
        return (logits.argmax(-1) == gold).float().mean().item(), torch.nn.functional.cross_entropy(logits, gold).item()

    # -- inference and persistence ---------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """The soft prompt as a PEFT adapter (adapter_config.json + adapter_model.safetensors, a few hundred
        kB), the whole LM when its weights trained, and fewforge.json naming the base model."""
        require_fitted(self, self.model)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            if self.uses_prompt:
                self.model.save_pretrained(directory / "prompt")
            if self.config.train in ("model", "both"):
                self.lm.save_pretrained(directory / "lm")
                self.tokenizer.save_pretrained(directory / "lm")
        meta = self._meta(template_prefix=self.prefix, context=self.context, verbalizer_token_ids=self.verbalizer)
        write_json(directory / self.META_FILE, meta)

    @classmethod
    def load(cls, task: Task, directory: Path) -> "PromptTuning":
        directory = Path(directory)
        meta = cls._read_meta(task, directory)
        config = cls.Config(**meta["config"])
        learner = cls(task, config, seed=meta.get("seed", 0))
        source = str(directory / "lm") if config.train in ("model", "both") else lm_source(config.model)
        learner._load(source, adapter=directory / "prompt" if learner.uses_prompt else None)
        learner.context = meta.get("context", "")
        learner.model.eval()
        return learner


def saved_prompt(path: str) -> Path | None:
    """The PEFT adapter folder of a saved prompt at `path` (the folder itself or its prompt/), or None."""
    folder = Path(path).expanduser()
    for candidate in (folder, folder / "prompt"):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    return None


# -- the baselines of DawGen §4.2 on the same model, template and verbalizer: one config default each --

_MODES = Literal["prompt", "model", "both", "none"]


class ZeroShotConfig(PromptTuningConfig):
    train: _MODES = Field("none", description="Nothing trains: the template and verbalizer alone.")


class ZeroShot(PromptTuning):
    """Zero-shot prompting (no training; the dev rows are only scored)."""

    name: ClassVar[str] = "zero-shot"
    Config: ClassVar[type[LearnerConfig]] = ZeroShotConfig
    seconds_per_cell: ClassVar[float] = 60.0


class InContextConfig(PromptTuningConfig):
    train: _MODES = Field("none", description="Nothing trains: demonstrations in the context instead.")
    demonstrations: int = Field(
        4, ge=1, description="Training rows per class shown before each input, in a seeded random order "
        "(LM-BFF fits as many as the context holds; 4 per class keeps a 2-core run affordable)."
    )
    max_length: int = Field(1024, ge=8, description="Tokens of the context plus the input.")


class InContext(PromptTuning):
    """In-context learning: k demonstrations per class in a random order drawn from the seed."""

    name: ClassVar[str] = "icl"
    Config: ClassVar[type[LearnerConfig]] = InContextConfig
    seconds_per_cell: ClassVar[float] = 300.0


class PromptFineTuningConfig(PromptTuningConfig):
    """Prompt-based fine-tuning (LM-BFF): every weight of the LM trains through the cloze template."""

    train: _MODES = Field("model", description="The LM's weights train through the template (no soft prompt).")
    learning_rate: float = Field(1e-5, gt=0, description="Peak learning rate (LM-BFF: 1e-5).")
    schedule: Literal["linear", "cosine"] = Field("linear", description="Decay after warmup (LM-BFF: linear).")
    batch_size: int = Field(8, ge=1, description="Examples per step and source (LM-BFF: 8).")


class PromptFineTuning(PromptTuning):
    name: ClassVar[str] = "pft"
    Config: ClassVar[type[LearnerConfig]] = PromptFineTuningConfig
    seconds_per_cell: ClassVar[float] = 900.0


class PromptFineTuningSoftConfig(PromptFineTuningConfig):
    train: _MODES = Field("both", description="The LM's weights and a soft prompt train together.")


class PromptFineTuningSoft(PromptTuning):
    name: ClassVar[str] = "pft+pt"
    Config: ClassVar[type[LearnerConfig]] = PromptFineTuningSoftConfig
    seconds_per_cell: ClassVar[float] = 900.0
