"""Encoder fine-tuning: a pretrained encoder (default: the packaged all-MiniLM-L6-v2) plus a linear head.

The loop reads top to bottom (nanoGPT's train.py shape): tokenize once, then step / evaluate on dev
every `eval_every` steps / keep the best weights in memory / stop after `patience` evals without
improvement / restore the best weights. Batches are padded to their own longest row, not to
`max_length`, and rows of similar length are batched together (`group_by_length`), because on 2 CPU
cores the cost of a step is proportional to the padded length.

Step budget (few-shot data is tiny, synthetic data is not):
    total_steps = clamp(ceil(epochs * n_train / batch_size), min_steps, max_steps)
With the defaults (batch 8, 5 epochs, 48..80 steps): a 2-class 16-shot set gets `min_steps` updates
(12 epochs), as LM-BFF gives every few-shot run a fixed number of steps; a 5-class one (80 rows) gets
5 passes (50 steps), as does anything up to 128 rows; a large synthetic set is capped at `max_steps`
(80 steps: ~1.1 passes over 80 real + 500 synthetic rows), so a run's cost stays bounded whatever the
generator produced. That is far below LM-BFF's 1000 steps because a step of 8 x 128 tokens costs ~0.85 s
on 2 CPU cores, and because on 16-shot SST-2 and BBC the best dev checkpoint came at steps 12-64 of
48-96 while the training loss was already near zero.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Literal, Sequence

from pydantic import Field, model_validator

from fewforge.data.schema import Example
from fewforge.errors import ConfigError, DataError, TaskError
from fewforge.hf import quiet_transformers
from fewforge.learners.base import FitReport, Learner, LearnerConfig
from fewforge.tasks.base import Task

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

META_FILE = "fewforge.json"
PREDICT_BATCH = 32  # inference only; on 2 CPU cores 32 rows/batch was the fastest per row (64 was slower)
GROUP_BATCHES = 16  # batches per length-sorted window when group_by_length is on
EVALS_PER_RUN = 6  # default dev evaluations per run: on BBC each costs ~2 s, about 2.5 training steps


class EncoderConfig(LearnerConfig):
    model: str | None = Field(
        None,
        description="Local Hugging Face encoder directory (or a hub id, which needs a network); "
        "default: the packaged all-MiniLM-L6-v2.",
    )
    max_length: int = Field(128, ge=8, description="Tokens per input (pairs: both texts together); longer inputs are truncated.")
    # Defaults chosen on SST-2 16-shot (LM-BFF seeds 13/21/42) with the packaged 6-layer MiniLM: batch 8 at
    # 2e-4 matched batch 16 at 1e-4 in accuracy at half the cost per step. Base-size encoders want 2e-5..5e-5.
    batch_size: int = Field(8, ge=1, description="Training examples per optimizer step.")
    learning_rate: float = Field(
        2e-4, gt=0, description="Peak AdamW learning rate (linear warmup, then linear decay to 0); 2e-4 suits "
        "the 6-layer MiniLM, base-size encoders want 2e-5 to 5e-5."
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not applied to biases and LayerNorm).")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Fraction of the steps spent warming the learning rate up.")
    epochs: float = Field(5.0, gt=0, description="Passes over the training data, before the min/max step clamp.")
    min_steps: int = Field(
        48, ge=1, description="Least number of steps, so a 16-shot set still trains long enough (2 classes: 12 epochs)."
    )
    max_steps: int = Field(
        80, ge=1, description="Most steps, so a large synthetic set keeps the run's cost bounded."
    )
    eval_every: int | None = Field(
        None,
        ge=1,
        description="Evaluate dev accuracy every this many steps and at the last one "
        f"(default: every 1/{EVALS_PER_RUN} of the run, so about {EVALS_PER_RUN} evaluations whatever the budget).",
    )
    patience: int = Field(
        0, ge=0, description="Stop after this many evaluations without dev improvement; 0 trains the whole budget."
    )
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    freeze_embeddings: bool = Field(
        True,
        description="Keep the word-embedding matrix fixed (half of MiniLM's 22.7M weights): a CPU step is ~25% "
        "cheaper, and a few dozen examples cannot usefully retrain a 30k-word vocabulary.",
    )
    group_by_length: bool = Field(
        True,
        description="Batch rows of similar length together (within windows of "
        f"{GROUP_BATCHES} batches): a step costs what its longest row costs, so short synthetic rows no "
        "longer pad to the length of long real ones (BBC real+synthetic: steps ~33% cheaper).",
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for torch while training/predicting (default: torch's choice); set 1 when other "
        "processes share the cores, where spinning threads slow every step down several times.",
        json_schema_extra={"semantic": False},
    )
    strategy: Literal["real+syn", "real"] = Field(
        "real+syn",
        description="How real and synthetic data are combined: 'real+syn' shuffles them together; "
        "'real' trains on the real examples only.",
    )

    @model_validator(mode="after")
    def _check_steps(self) -> "EncoderConfig":
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps ({self.min_steps}) must not exceed max_steps ({self.max_steps})")
        return self

    def total_steps(self, n_train: int) -> int:
        wanted = math.ceil(self.epochs * n_train / self.batch_size)
        return max(self.min_steps, min(self.max_steps, wanted))

    def eval_interval(self, total_steps: int) -> int:
        return self.eval_every or max(1, total_steps // EVALS_PER_RUN)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def resolve_model(model: str | None) -> str:
    """A local directory as a string, or a hub id; a missing local path is a ConfigError naming it."""
    if not model:
        from fewforge.packaged import minilm_dir

        return str(minilm_dir())
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path)
    # a hub id is "name" or "org/name"; anything else can only be meant as a local path
    looks_local = model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model
    offline = _offline()
    if path.exists() or looks_local or offline:
        raise ConfigError(
            f"encoder model {model!r} is not a local model directory",
            hint="pass a directory holding config.json and weights"
            + (" (HF_HUB_OFFLINE is set, so hub ids are not looked up)" if offline and not looks_local else ""),
        )
    return model


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    import torch

    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class EncoderClassifier(Learner):
    """Fine-tunes AutoModelForSequenceClassification on real (+ synthetic) examples."""

    name: ClassVar[str] = "encoder"
    Config: ClassVar[type[LearnerConfig]] = EncoderConfig
    config: EncoderConfig

    def __init__(self, task: Task, config: EncoderConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(task, config, seed=seed)
        self.labels = task.label_names
        self.model: Any = None
        self.tokenizer: Any = None

    # -- setup ---------------------------------------------------------------------------------------

    def _load(self, source: str) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        ids = {label: i for i, label in enumerate(self.labels)}
        offline = _offline()
        try:
            with quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
                self.model = AutoModelForSequenceClassification.from_pretrained(
                    source,
                    num_labels=len(self.labels),
                    id2label={i: label for label, i in ids.items()},
                    label2id=ids,
                    local_files_only=offline,
                )
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load encoder model from {source!r}: {exc}".splitlines()[0],
                hint="pass a local Hugging Face encoder directory",
            ) from exc
        self.model.to("cuda" if torch.cuda.is_available() else "cpu")

    def _encode(self, examples: Sequence[Example]) -> list[dict[str, list[int]]]:
        """Tokenize once, unpadded; batches are padded later to their own longest row."""
        texts = [self.task.encoder_input(e) for e in examples]
        firsts = [a for a, _ in texts]
        pairs = [b for _, b in texts]
        kwargs: dict[str, Any] = {"truncation": True, "max_length": self.config.max_length}
        if self.task.kind == "pair":
            enc = self.tokenizer(firsts, [b or "" for b in pairs], **kwargs)
        else:
            enc = self.tokenizer(firsts, **kwargs)
        keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
        return [{k: enc[k][i] for k in keys} for i in range(len(examples))]

    def _batch(self, rows: Sequence[dict[str, list[int]]]) -> dict[str, "torch.Tensor"]:
        """Right-pad to the longest row of this batch (padding is masked out, so it changes nothing)."""
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        pad = {"input_ids": self.tokenizer.pad_token_id or 0}
        return {
            key: torch.tensor(
                [r[key] + [pad.get(key, 0)] * (width - len(r[key])) for r in rows], device=self.model.device
            )
            for key in rows[0]
        }

    def _label_ids(self, examples: Sequence[Example], what: str) -> list[int]:
        ids = {label: i for i, label in enumerate(self.labels)}
        out = []
        for n, e in enumerate(examples):
            if e.label not in ids:
                where = f"id {e.id!r}" if e.id else f"row {n}"
                raise DataError(
                    f"{what} example ({where}) has label {e.label!r}, unknown to task {self.task.name!r}",
                    hint=f"labels are {self.labels}",
                )
            out.append(ids[e.label])
        return out

    def _training_pool(self, train: Sequence[Example], synthetic: Sequence[Example]) -> list[Example]:
        if self.config.strategy == "real":
            if synthetic:
                log.warning("strategy 'real': ignoring %d synthetic examples", len(synthetic))
            return list(train)
        return [*train, *synthetic]  # real+syn: one pool, shuffled together by the batch stream

    # -- training ------------------------------------------------------------------------------------

    def fit(
        self,
        train: Sequence[Example],
        dev: Sequence[Example],
        *,
        synthetic: Sequence[Example] = (),
        progress: Callable[[int, int], None] | None = None,
    ) -> FitReport:
        if not train:
            raise DataError("no real training examples", hint="the few-shot train split is empty")
        if not dev:
            raise DataError(
                "no dev examples", hint="the best checkpoint is chosen on dev; LM-BFF samples k per class for it"
            )
        start = time.perf_counter()
        pool = self._training_pool(train, synthetic)
        y = self._label_ids(train, "train") + self._label_ids(pool[len(train) :], "synthetic")
        dev_y = self._label_ids(dev, "dev")
        with _torch_threads(self.config.threads):
            report = self._train(pool, y, dev, dev_y, progress)
        report.seconds = time.perf_counter() - start
        return report

    def _train(
        self,
        pool: Sequence[Example],
        y: Sequence[int],
        dev: Sequence[Example],
        dev_y: Sequence[int],
        progress: Callable[[int, int], None] | None,
    ) -> FitReport:
        import torch
        from transformers import get_linear_schedule_with_warmup

        cfg = self.config
        _seed_everything(self.seed)  # before loading: the new head's init draws from torch's RNG
        self._load(resolve_model(cfg.model))
        if cfg.freeze_embeddings:
            self.model.get_input_embeddings().weight.requires_grad_(False)
        params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        rows, dev_rows = self._encode(pool), self._encode(dev)
        total = cfg.total_steps(len(pool))

        decay = [p for n, p in params if not _no_decay(n)]
        no_decay = [p for n, p in params if _no_decay(n)]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.learning_rate,
        )
        scheduler = get_linear_schedule_with_warmup(optimizer, round(cfg.warmup_ratio * total), total)
        lengths = [len(r["input_ids"]) for r in rows] if cfg.group_by_length else None
        order = _batch_stream(len(pool), cfg.batch_size, total, self.seed, lengths)
        eval_every = cfg.eval_interval(total)

        history: list[dict[str, Any]] = []
        best: tuple[float, float] = (-1.0, -math.inf)  # (dev accuracy, -dev loss): loss breaks ties
        best_state: dict[str, torch.Tensor] = {}
        best_step, since_best, losses, step = 0, 0, [], 0
        self.model.train()
        for step in range(1, total + 1):
            idx = next(order)
            batch = self._batch([rows[i] for i in idx])
            out = self.model(**batch, labels=torch.tensor([y[i] for i in idx], device=self.model.device))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in params], cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(out.loss.item())
            if progress is not None:
                progress(step, total)
            if step % eval_every and step != total:
                continue
            entry: dict[str, Any] = {"step": step, "loss": sum(losses) / len(losses)}
            losses = []
            acc, dev_loss = self._evaluate(dev_rows, dev_y)
            entry.update(dev_accuracy=acc, dev_loss=dev_loss)
            if (acc, -dev_loss) > best:
                best, best_step, since_best = (acc, -dev_loss), step, 0
                best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            else:
                since_best += 1
            history.append(entry)
            log.info("step %d/%d %s", step, total, entry)
            if cfg.patience and since_best >= cfg.patience:
                log.info("early stop at step %d: no dev improvement in %d evals", step, cfg.patience)
                break
        self.model.load_state_dict(best_state)
        self.model.eval()
        return FitReport(
            best_dev_accuracy=best[0],
            best_step=best_step,
            steps=step,
            seconds=0.0,  # set by fit()
            history=history,
        )

    def _logits(self, rows: Sequence[dict[str, list[int]]]) -> "torch.Tensor":
        """Logits in input order; rows are sorted by length so each batch pads little."""
        import torch

        was_training = self.model.training
        self.model.eval()
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
        out = torch.empty(len(rows), len(self.labels))
        with torch.inference_mode():
            for s in range(0, len(order), PREDICT_BATCH):
                idx = order[s : s + PREDICT_BATCH]
                out[idx] = self.model(**self._batch([rows[i] for i in idx])).logits.float().cpu()
        self.model.train(was_training)
        return out

    def _evaluate(self, rows: Sequence[dict[str, list[int]]], y: Sequence[int]) -> tuple[float, float]:
        import torch

        logits = self._logits(rows)
        gold = torch.tensor(list(y))
        acc = (logits.argmax(-1) == gold).float().mean().item()
        return acc, torch.nn.functional.cross_entropy(logits, gold).item()

    # -- inference and persistence -------------------------------------------------------------------

    def _require_model(self) -> None:
        if self.model is None:
            raise ConfigError("the encoder learner has no model yet", hint="call fit() or load() first")

    def predict(self, examples: Sequence[Example]) -> list[str]:
        self._require_model()
        if not examples:
            return []
        with _torch_threads(self.config.threads):
            ids = self._logits(self._encode(examples)).argmax(-1).tolist()
        return [self.labels[i] for i in ids]

    def save(self, directory: Path) -> None:
        self._require_model()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            self.model.save_pretrained(directory)
            self.tokenizer.save_pretrained(directory)
        meta = {
            "learner": self.name,
            "task": self.task.name,
            "labels": self.labels,
            "seed": self.seed,
            "config": self.config.model_dump(mode="json"),
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, task: Task, directory: Path) -> "EncoderClassifier":
        directory = Path(directory)
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            raise ConfigError(f"{meta_path} not found", hint="pass a directory written by EncoderClassifier.save")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("learner") != cls.name:
            raise ConfigError(f"{directory} holds a {meta.get('learner')!r} learner, not {cls.name!r}")
        if meta["labels"] != task.label_names:
            raise TaskError(
                f"model in {directory} was trained for labels {meta['labels']}, task {task.name!r} has {task.label_names}",
                hint="load it with the task it was trained on",
            )
        learner = cls(task, EncoderConfig(**meta["config"]), seed=meta.get("seed", 0))
        learner._load(str(directory))
        learner.model.eval()
        return learner


def _no_decay(name: str) -> bool:
    return name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name


def _batch_stream(
    n: int, batch_size: int, steps: int, seed: int, lengths: Sequence[int] | None = None
) -> Iterator[list[int]]:
    """Yields `steps` index batches from back-to-back shuffled epochs, so every batch is full and
    the order depends only on the seed.

    With `lengths`, each run of GROUP_BATCHES batches of a shuffled epoch is sorted by length before it
    is cut into batches (transformers' group_by_length, on a smaller window), and those batches are
    shuffled: a batch pads to its longest row, so long real articles stop padding short synthetic rows.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    size = min(batch_size, n)
    window = size * GROUP_BATCHES
    batches: list[list[int]] = []
    buffer: list[int] = []
    for _ in range(steps):
        if not batches:
            while len(buffer) < window:
                buffer += torch.randperm(n, generator=gen).tolist()
            chunk, buffer = buffer[:window], buffer[window:]
            if lengths is not None:
                chunk.sort(key=lambda i: lengths[i])
            batches = [chunk[s : s + size] for s in range(0, window, size)]
            if lengths is not None:
                batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
        yield batches.pop(0)
