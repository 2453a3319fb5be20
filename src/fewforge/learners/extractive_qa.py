"""Extractive QA fine-tuning: an encoder with a span head (AutoModelForQuestionAnswering) that predicts
the start and end token of the answer in the context.

The conventions are those of Hugging Face's `run_qa.py` (examples/pytorch/question-answering), so a
number measured here reads like one measured there:

* Input: the question first, the context second, `truncation="only_second"`; a context longer than
  `max_length` is cut into overlapping windows ("features") `doc_stride` tokens apart (defaults 384 and
  128, run_qa's). Questions are cut to `max_question_length` tokens (64, the legacy run_squad's
  max_query_length) so every window keeps room for the context.
* Training labels (`prepare_train_features`): the start and end token of the first reference answer;
  a window that does not hold the whole answer points both at the CLS token (index 0). Loss: the mean
  of the start and end cross-entropies (BertForQuestionAnswering's).
* Decoding (`postprocess_qa_predictions`, SQuAD v1: no null answer): over every window of a row, the
  `n_best` (20) highest start and end logits; a pair is a candidate when both tokens are context tokens
  of that window, end >= start and it spans at most `max_answer_length` (30) tokens; the best start +
  end score wins and the answer is the context's characters between their offsets ("" if no candidate).
* Model selection: dev F1 (SQuAD's token F1, best over references) fills the loop's "accuracy" slot,
  ties broken by the lower dev loss.

The default model is the packaged all-MiniLM-L6-v2 (6 layers, 22.7M weights): it runs offline on 2
CPU cores, but it is a sentence embedder with no QA training, so its span head starts from scratch and
32 examples teach it only a little. S3 (Wang et al. 2023) fine-tunes DistilBERT on AdversarialQA; pass
`model=distilbert-base-uncased` (a hub id needs a network) or a local directory holding any Hugging Face
encoder (with a fast tokenizer: windows need its offset mappings), and lower `learning_rate` to 3e-5 for
base-size encoders.

Batches are padded to their own longest window, not to `max_length`, and rows of similar length are
batched together (`group_by_length`): on 2 CPU cores a step costs what its padded length costs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

from pydantic import Field, model_validator

from fewforge.data.schema import Example
from fewforge.errors import ConfigError, DataError
from fewforge.files import write_json
from fewforge.hf import offline as hub_offline
from fewforge.hf import quiet_transformers
from fewforge.learners.base import FitReport, LearnerConfig, SeededLearner, require_fitted
from fewforge.learners.encoder import _no_decay, resolve_model
from fewforge.learners.loop import TorchConfig, TorchModel, train_torch
from fewforge.learners.runtime import torch_threads
from fewforge.learners.strategies import GROUP_BATCHES
from fewforge.tasks.base import Task
from fewforge.tasks.kinds.extractive_qa import ExtractiveQAKind

if TYPE_CHECKING:
    import numpy as np
    import torch

log = logging.getLogger(__name__)

PREDICT_BATCH = 32  # windows per inference batch


class QAEncoderConfig(TorchConfig):
    reads_weights: ClassVar[bool] = False  # its loss takes no per-row weights: no 'paired+reweight'

    model: str | None = Field(
        None,
        description="Local Hugging Face encoder directory (or a hub id such as distilbert-base-uncased, which needs "
        "a network); default: the packaged all-MiniLM-L6-v2. The span head is always newly initialised.",
    )
    max_length: int = Field(384, ge=32, description="Tokens per window: question + context + special tokens (run_qa: 384).")
    doc_stride: int = Field(
        128, ge=1, description="Tokens shared by consecutive windows of a long context (run_qa: 128)."
    )
    max_question_length: int = Field(
        64, ge=1, description="Questions are cut to this many tokens so every window keeps room for the context."
    )
    max_answer_length: int = Field(30, ge=1, description="Longest answer span decoded, in tokens (run_qa: 30).")
    n_best: int = Field(20, ge=1, description="Start and end candidates per window when decoding (run_qa: 20).")
    # Budget: 12 epochs of batch 8 clamped to 40..60 steps: 16 rows -> 40 steps, 32 rows -> 48, 40+ rows -> 60.
    # A fresh span head keeps learning well past the 5 epochs a classifier head needs, and a step of 8
    # windows of ~200 tokens costs ~1 s on 2 idle CPU cores (embeddings frozen; ~2 s when the cores are
    # shared), so a 32-shot fit with its dev evaluations takes 50-90 s. More steps help once there are
    # more rows (SQuAD, 256 rows: 60 steps F1 ~0.12, 240 steps ~0.22), so raise max_steps for large sets.
    epochs: float = Field(12.0, gt=0, description="Passes over the real rows, before the min/max step clamp.")
    min_steps: int = Field(40, ge=1, description="Least number of optimizer steps.")
    max_steps: int = Field(60, ge=1, description="Most optimizer steps.")
    learning_rate: float = Field(
        1e-4, gt=0, description="Peak AdamW learning rate (linear warmup, then linear decay to 0); 1e-4 suits the "
        "6-layer MiniLM over a few dozen steps, base-size encoders (DistilBERT) want 3e-5 to 5e-5."
    )
    # On 32-shot SQuAD / AdversarialQA (seed 13, 48 steps, MiniLM): 5e-5 left the training loss at ~4.2 (from
    # 4.8) and test F1 no better than 1e-4 (loss ~3.5); 3e-4 memorised the 32 rows (loss ~1) without a test
    # gain. Every rate was within the noise of 100 test rows, so the encoder learner's MiniLM rate is kept.
    freeze_embeddings: bool = Field(
        True,
        description="Keep the word-embedding matrix fixed: a CPU step is cheaper, and a few dozen examples cannot "
        "usefully retrain a 30k-word vocabulary.",
    )
    group_by_length: bool = Field(
        True,
        description=f"Batch rows of similar length together (within windows of {GROUP_BATCHES} batches): a step "
        "costs what its longest window costs.",
    )

    @model_validator(mode="after")
    def _check_windows(self) -> "QAEncoderConfig":
        room = self.max_length - self.max_question_length - 3  # [CLS] question [SEP] context [SEP]
        if self.doc_stride >= room:
            raise ValueError(
                f"doc_stride ({self.doc_stride}) must be below max_length - max_question_length - 3 ({room}): "
                "each window needs context tokens beyond the overlap"
            )
        return self


@dataclass
class Features:
    """The windows of a list of rows: model inputs plus what decoding and the loss need."""

    inputs: list[dict[str, list[int]]] = field(default_factory=list)  # unpadded input_ids (+ type ids, mask)
    row: list[int] = field(default_factory=list)  # the row each window comes from
    offsets: list[list[tuple[int, int] | None]] = field(default_factory=list)  # char span; None outside the context
    start: list[int] = field(default_factory=list)  # answer start token (CLS index when not in the window)
    end: list[int] = field(default_factory=list)
    windows: list[list[int]] = field(default_factory=list)  # row -> its windows

    def lengths(self) -> list[int]:
        """Per row: its longest window (what a batch holding it pads to)."""
        return [max(len(self.inputs[f]["input_ids"]) for f in fs) for fs in self.windows]


def best_span(
    context: str,
    windows: Sequence[tuple[Sequence[float], Sequence[float], Sequence[tuple[int, int] | None]]],
    n_best: int = 20,
    max_answer_length: int = 30,
) -> str:
    """The best answer over a row's windows, each (start logits, end logits, offsets) where offsets[i] is
    token i's (start, end) characters in `context` or None when the token is not a context token;
    HF's postprocess_qa_predictions without a null answer. "" when no span is valid."""
    import numpy as np

    best_score, best = -float("inf"), ""
    for start_logits, end_logits, offsets in windows:
        start_logits, end_logits = np.asarray(start_logits, dtype=float), np.asarray(end_logits, dtype=float)
        starts = np.argsort(start_logits)[-1 : -n_best - 1 : -1].tolist()
        ends = np.argsort(end_logits)[-1 : -n_best - 1 : -1].tolist()
        for s in starts:
            if s >= len(offsets) or offsets[s] is None:
                continue
            for e in ends:
                if e >= len(offsets) or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                    continue
                score = start_logits[s] + end_logits[e]
                if score > best_score:
                    best_score, best = score, context[offsets[s][0] : offsets[e][1]]
    return best


def span_loss(logits: "torch.Tensor", gold: "torch.Tensor", mask: "torch.Tensor", smoothing: float = 0.0) -> "torch.Tensor":
    """Mean cross-entropy of the gold token over each row's unmasked tokens, label smoothing spread over
    those tokens only: [rows, tokens] logits, [rows] gold, [rows, tokens] bool mask."""
    import torch

    logp = torch.log_softmax(logits.float().masked_fill(~mask, -1e4), dim=-1)
    nll = -logp.gather(1, gold[:, None]).squeeze(1)
    if smoothing:
        uniform = -(logp * mask).sum(-1) / mask.sum(-1)
        nll = (1 - smoothing) * nll + smoothing * uniform
    return nll.mean()


class QAEncoder(SeededLearner):
    """Fine-tunes AutoModelForQuestionAnswering on real (+ synthetic) extractive QA rows."""

    name: ClassVar[str] = "qa-encoder"
    Config: ClassVar[type[LearnerConfig]] = QAEncoderConfig
    kinds: ClassVar[tuple[str, ...]] = (ExtractiveQAKind.name,)
    # MiniLM on 2 CPU cores: 50-90 s for a 32-shot fit (48 steps, six dev evaluations) plus 60-100 s to
    # predict the ~2,000 AdversarialQA test rows (~20-25 rows/s; SQuAD's 5,000 take 2.5x that).
    seconds_per_cell: ClassVar[float] = 180.0
    config: QAEncoderConfig

    def __init__(self, task: Task, config: QAEncoderConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(task, config, seed=seed)
        if task.is_classification or tuple(task.input_fields) != ("context", "question"):
            raise ConfigError(
                f"the {self.name} learner answers extractive QA, not task {task.name!r} ({task.kind})",
                hint="use it with an extractive-qa task (inputs: context, question)",
            )
        self.model: Any = None
        self.tokenizer: Any = None

    # -- setup ---------------------------------------------------------------------------------------

    def _load(self, source: str) -> None:
        """The encoder with a span head from `source` (a new head unless `source` was saved by this learner)."""
        import torch
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        offline = hub_offline()
        try:
            with quiet_transformers():  # the "newly initialized qa_outputs" warning is expected
                self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
                self.model = AutoModelForQuestionAnswering.from_pretrained(source, local_files_only=offline)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load a question-answering model from {source!r}: {exc}".splitlines()[0],
                hint="pass a local Hugging Face encoder directory (BERT, DistilBERT, RoBERTa, ...)",
            ) from exc
        if not getattr(self.tokenizer, "is_fast", False):
            raise ConfigError(
                f"the tokenizer of {source!r} is not a fast tokenizer",
                hint="QA windows need offset mappings: use a model with a tokenizer.json",
            )
        self.model.to("cuda" if torch.cuda.is_available() else "cpu")

    def _question(self, question: str) -> str:
        """The question without leading spaces (run_qa), cut to `max_question_length` tokens."""
        question = question.lstrip()
        enc = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
        cap = self.config.max_question_length
        return question[: enc["offset_mapping"][cap - 1][1]] if len(enc["input_ids"]) > cap else question

    def _features(self, examples: Sequence[Example], what: str = "") -> Features:
        """Tokenize rows into windows, unpadded; with `what` (training rows) also label the answer tokens."""
        out = Features(windows=[[] for _ in examples])
        if not examples:
            return out
        cfg = self.config
        contexts = [e.inputs["context"] for e in examples]
        enc = self.tokenizer(
            [self._question(e.inputs["question"]) for e in examples],
            contexts,
            truncation="only_second",
            max_length=cfg.max_length,
            stride=cfg.doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=False,  # batches pad to their own longest window (_batch)
        )
        spans = [self._answer_chars(e, n, what) for n, e in enumerate(examples)] if what else None
        keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
        for f, row in enumerate(enc["overflow_to_sample_mapping"]):
            ids = enc["input_ids"][f]
            sequence = enc.sequence_ids(f)
            offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][f], sequence)]
            out.inputs.append({k: enc[k][f] for k in keys})
            out.row.append(row)
            out.offsets.append(offsets)
            out.windows[row].append(f)
            start = end = ids.index(self.tokenizer.cls_token_id) if self.tokenizer.cls_token_id in ids else 0
            if spans is not None:
                first_char, last_char = spans[row]
                context_tokens = [i for i, o in enumerate(offsets) if o is not None]
                # prepare_train_features: the window must hold the whole answer, else CLS
                if context_tokens and offsets[context_tokens[0]][0] <= first_char and offsets[context_tokens[-1]][1] >= last_char:
                    start = next(i for i in context_tokens if offsets[i][1] > first_char)
                    end = max(start, next(i for i in reversed(context_tokens) if offsets[i][0] < last_char))
            out.start.append(start)
            out.end.append(end)
        return out

    def _answer_chars(self, example: Example, n: int, what: str) -> tuple[int, int]:
        """(first, past-the-end) characters of the row's first answer in its context."""
        from fewforge.tasks.kinds.extractive_qa import align_answer

        context = example.inputs["context"]
        if example.answers:
            answer = example.answers[0]
            if context[answer.start : answer.start + len(answer.text)] == answer.text and answer.text:
                return answer.start, answer.start + len(answer.text)
        found = align_answer(context, example.label) if example.label.strip() else None
        if found is None:
            where = f"id {example.id!r}" if example.id else f"row {n}"
            raise DataError(
                f"{what} example ({where}): answer {example.label!r:.60} is not in its context",
                hint="an extractive answer must be a span of the context",
            )
        text, at = found
        return at, at + len(text)

    def _batch(self, inputs: Sequence[dict[str, list[int]]]) -> dict[str, "torch.Tensor"]:
        """Right-pad to the longest window of this batch (padding is masked out)."""
        import torch

        width = max(len(r["input_ids"]) for r in inputs)
        pad = {"input_ids": self.tokenizer.pad_token_id or 0}
        return {
            key: torch.tensor([r[key] + [pad.get(key, 0)] * (width - len(r[key])) for r in inputs], device=self.model.device)
            for key in inputs[0]
        }

    # -- training ------------------------------------------------------------------------------------

    def _train(
        self,
        train: list[Example],
        dev: list[Example],
        synthetic: list[Example],
        progress: Callable[[int, int], None] | None,
    ) -> FitReport:
        cfg = self.config
        self._load(resolve_model(cfg.model))  # inside seeded(): the new span head's init draws from torch's RNG
        if cfg.freeze_embeddings:
            self.model.get_input_embeddings().weight.requires_grad_(False)
        feats = {"real": self._features(train, "train"), "syn": self._features(synthetic, "synthetic")}
        dev_feats = self._features(dev, "dev")

        # A batch of rows trains on every window of those rows (run_qa's prepare_train_features: each
        # window is a feature, those without the answer point at CLS), the loss averaged over windows.
        # Windows without the answer teach the head low span scores where the answer is not, which is
        # what decoding compares across a row's windows; at max_length 384 nearly every SQuAD or
        # AdversarialQA row is a single window, so this costs little.
        def loss(source: str, idx: list[int], smoothing: float) -> torch.Tensor:
            f = feats[source]
            windows = [w for i in idx for w in f.windows[i]]
            return self._loss(f, windows, smoothing)

        self.model.train()
        report = train_torch(
            cfg,
            TorchModel.trainable(self.model, loss, lambda: self._evaluate(dev, dev_feats), no_decay=_no_decay),
            len(train),
            len(synthetic),
            self.seed,
            real_lengths=feats["real"].lengths() if cfg.group_by_length else None,
            syn_lengths=feats["syn"].lengths() if cfg.group_by_length and synthetic else None,
            progress=progress,
        )
        self.model.eval()
        return report

    def _loss(self, f: Features, windows: list[int], smoothing: float = 0.0) -> "torch.Tensor":
        """Mean of the start and end cross-entropies over `windows` (BertForQuestionAnswering's loss), over
        each window's own tokens: the padding of a batch never takes probability mass."""
        import torch

        batch = self._batch([f.inputs[w] for w in windows])
        out = self.model(**batch)
        device = out.start_logits.device
        start = torch.tensor([f.start[w] for w in windows], device=device)
        end = torch.tensor([f.end[w] for w in windows], device=device)
        mask = batch["attention_mask"] > 0 if "attention_mask" in batch else torch.ones_like(out.start_logits, dtype=torch.bool)
        return (span_loss(out.start_logits, start, mask, smoothing) + span_loss(out.end_logits, end, mask, smoothing)) / 2

    def _logits(self, f: Features) -> list[tuple["np.ndarray", "np.ndarray"]]:
        """(start, end) logits of every window, unpadded, in window order; windows sorted by length so each
        batch pads little."""
        import torch

        was_training = self.model.training
        self.model.eval()
        order = sorted(range(len(f.inputs)), key=lambda w: len(f.inputs[w]["input_ids"]))
        out: list[Any] = [None] * len(order)
        with torch.inference_mode():
            for s in range(0, len(order), PREDICT_BATCH):
                idx = order[s : s + PREDICT_BATCH]
                res = self.model(**self._batch([f.inputs[w] for w in idx]))
                starts, ends = res.start_logits.float().cpu().numpy(), res.end_logits.float().cpu().numpy()
                for j, w in enumerate(idx):
                    n = len(f.inputs[w]["input_ids"])
                    out[w] = (starts[j, :n], ends[j, :n])
        self.model.train(was_training)
        return out

    def _decode(self, examples: Sequence[Example], f: Features, logits: list[tuple[Any, Any]]) -> list[str]:
        cfg = self.config
        return [
            best_span(
                e.inputs["context"],
                [(*logits[w], f.offsets[w]) for w in f.windows[n]],
                cfg.n_best,
                cfg.max_answer_length,
            )
            for n, e in enumerate(examples)
        ]

    def _evaluate(self, dev: Sequence[Example], f: Features) -> tuple[float, float]:
        """(dev F1, dev loss): the F1 of decoded answers against every reference, the loss of the windows'
        start/end labels (from the same forward pass)."""
        import numpy as np

        from fewforge.evaluation.metrics import f1_scores

        logits = self._logits(f)
        predicted = self._decode(dev, f, logits)
        f1 = float(np.mean(f1_scores([self.task.spec.gold(e) for e in dev], predicted)))
        losses = []
        for w, (start, end) in enumerate(logits):
            for scores, gold in ((start, f.start[w]), (end, f.end[w])):
                top = scores.max()
                losses.append(float(top + np.log(np.exp(scores - top).sum()) - scores[gold]))
        return f1, float(np.mean(losses))

    # -- inference and persistence -------------------------------------------------------------------

    def predict(self, examples: Sequence[Example] | Sequence[tuple[str, str]]) -> list[str]:
        """The answer span (text of the context) of each row; inputs are Examples or (context, question)."""
        require_fitted(self, self.model)
        rows = self._inputs(examples)
        if not rows:
            return []
        with torch_threads(self.config.threads):
            f = self._features(rows)
            return self._decode(rows, f, self._logits(f))

    def predict_proba(self, examples: Sequence[Example]) -> Any:
        raise ConfigError(
            f"the {self.name} learner predicts answer spans, not class probabilities",
            hint="call predict() for the answer texts",
        )

    def save(self, directory: Path) -> None:
        require_fitted(self, self.model)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            self.model.save_pretrained(directory)
            self.tokenizer.save_pretrained(directory)
        write_json(directory / self.META_FILE, self._meta())

    @classmethod
    def load(cls, task: Task, directory: Path) -> "QAEncoder":
        directory = Path(directory)
        meta = cls._read_meta(task, directory)
        learner = cls(task, cls.Config(**meta["config"]), seed=meta.get("seed", 0))
        learner._load(str(directory))
        learner.model.eval()
        return learner
