"""Encoder fine-tuning: a pretrained encoder (default: the packaged all-MiniLM-L6-v2) plus a linear head.

The model and its batches live here; the loop (best-on-dev, history, patience) is `loop.py`, and how
real and synthetic rows form batches is `strategies.py`. Batches are padded to their own longest row,
not to `max_length`, and rows of similar length are batched together (`group_by_length`), because on 2
CPU cores the cost of a step is proportional to the padded length.

Step budget (`strategies.step_budget`, shared by every condition of a cell):
    steps = clamp(ceil(epochs * n_real / batch_size), min_steps, max_steps)
counted on the real few-shot rows only. With the defaults (batch 8, 5 epochs, 48..80 steps) a 2-class
16-shot set gets `min_steps` updates (12 epochs), as LM-BFF gives every few-shot run a fixed number of
steps; a 5-class one (80 rows) gets 5 passes (50 steps). Real + synthetic cells take the same number of
steps, each a real batch plus a synthetic batch (`paired`), so synthetic data adds to the real signal
instead of diluting it. That is far below LM-BFF's 1000 steps because a step of 8 x 128 tokens costs
~0.85 s on 2 CPU cores, and because on 16-shot SST-2 and BBC the best dev checkpoint came at steps
12-64 of 48-96 while the training loss was already near zero.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal, Sequence

from pydantic import Field, model_serializer

from fewforge.data.schema import Example
from fewforge.errors import ConfigError
from fewforge.files import write_json
from fewforge.hf import offline as hub_offline
from fewforge.hf import quiet_transformers, second_order_attention
from fewforge.learners.base import FitReport, LearnerConfig, TorchLearner, label_ids, require_fitted, sample_weights
from fewforge.learners.loop import TorchConfig, TorchModel, train_torch, weighted_cross_entropy
from fewforge.learners.strategies import GROUP_BATCHES, uses_reweight
from fewforge.tasks.base import Task

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

HEAD_FILE = "head.safetensors"
PREDICT_BATCH = 32  # inference only; on 2 CPU cores 32 rows/batch was the fastest per row (64 was slower)


class EncoderConfig(TorchConfig):
    model: str | None = Field(
        None,
        description="Local Hugging Face encoder directory (or a hub id, which needs a network); "
        "default: the packaged all-MiniLM-L6-v2.",
    )
    max_length: int = Field(128, ge=8, description="Tokens per input (pairs: both texts together); longer inputs are truncated.")
    # Defaults chosen on SST-2 16-shot (LM-BFF seeds 13/21/42) with the packaged 6-layer MiniLM and mean
    # pooling: lr 1e-4 for 48 steps of batch 8 gave 67.6 ± 4.8 (2e-4: 67.4 ± 6.4; 5e-5 for 100 steps 65.7 ± 7.3).
    learning_rate: float = Field(
        1e-4, gt=0, description="Peak AdamW learning rate (linear warmup, then linear decay to 0); 1e-4 suits "
        "the 6-layer MiniLM, base-size encoders want 2e-5 to 5e-5."
    )
    pooling: Literal["mean", "cls", "last"] = Field(
        "mean",
        description="How the head reads the encoder: 'mean' over tokens (how sentence-transformers models such as "
        "the packaged MiniLM were trained; +4 points on SST-2 16-shot), 'cls' (the pooler / [CLS] vector) or "
        "'last' (the last token: causal LMs).",
    )
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout before the linear head.")
    normalize: bool = Field(
        False,
        description="L2-normalize the pooled vector before the head, as sentence-transformers models end (the "
        "packaged MiniLM's Normalize layer): with mean pooling and the embedder's 256 tokens, LP-FT's head then "
        "starts as exactly the linear probe.",
    )

    @model_serializer(mode="wrap")
    def _unset_normalize_unwritten(self, handler: Any) -> dict[str, Any]:
        """`normalize` came later: left at False it stays out of the dump, so finished cells' fingerprints and
        saved models' configs are what they were."""
        out = handler(self)
        if not out.get("normalize", True):
            out.pop("normalize")
        return out
    head_init: Literal["linear-probe", "random"] = Field(
        "linear-probe",
        description="Start the head from a logistic regression fitted on the pretrained encoder's pooled features "
        "(LP-FT, Kumar et al. 2022; C chosen on dev, rows weighted as by the strategy) or from random weights.",
    )
    min_steps: int = Field(
        48, ge=1, description="Least number of steps, so a 16-shot set still trains long enough (2 classes: 12 epochs)."
    )
    max_steps: int = Field(80, ge=1, description="Most steps, so a large synthetic set keeps the run's cost bounded.")
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
    offline = hub_offline()
    if path.exists() or looks_local or offline:
        raise ConfigError(
            f"encoder model {model!r} is not a local model directory",
            hint="pass a directory holding config.json and weights"
            + (" (HF_HUB_OFFLINE is set, so hub ids are not looked up)" if offline and not looks_local else ""),
        )
    return model


class EncoderClassifier(TorchLearner):
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

    def _source(self) -> str:
        """Where the pretrained weights are (a .gguf file is dequantized once into the fewforge cache)."""
        model = self.config.model
        if model and model.endswith(".gguf"):
            from fewforge.packaged import lm_source

            return lm_source(model)
        return resolve_model(model)

    def _load(self, source: str, head: Path | None = None) -> None:
        """The pretrained encoder from `source` plus a new head (or the saved `head` weights)."""
        import torch
        from transformers import AutoConfig, AutoModel, AutoModelForTextEncoding, AutoTokenizer

        from fewforge.learners.pooled import PooledClassifier

        offline = hub_offline()
        try:
            with quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
                config = AutoConfig.from_pretrained(source, local_files_only=offline)
                # an encoder-decoder model (T5) is read through its encoder alone
                encoder_only = any(a.endswith("EncoderModel") for a in config.architectures or ())  # a saved one
                auto = AutoModelForTextEncoding if config.is_encoder_decoder or encoder_only else AutoModel
                encoder = auto.from_pretrained(source, local_files_only=offline)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load encoder model from {source!r}: {exc}".splitlines()[0],
                hint="pass a local Hugging Face encoder directory",
            ) from exc
        self.model = PooledClassifier(
            encoder, len(self.labels), self.config.pooling, self.config.dropout, normalize=self.config.normalize
        )
        if head is not None:
            from safetensors.torch import load_file

            self.model.head.load_state_dict(load_file(str(head)))
        self.model.to("cuda" if torch.cuda.is_available() else "cpu")

    def _encode(self, examples: Sequence[Example]) -> list[dict[str, list[int]]]:
        """Tokenize once, unpadded; batches are padded later to their own longest row."""
        if not examples:
            return []
        texts = [self.task.encoder_input(e) for e in examples]
        firsts = [a for a, _ in texts]
        pairs = [b for _, b in texts]
        kwargs: dict[str, Any] = {"truncation": True, "max_length": self.config.max_length}
        if any(b is not None for b in pairs):  # a sentence pair: segment 0 and segment 1
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

    # -- training ------------------------------------------------------------------------------------

    def _train(
        self,
        train: Sequence[Example],
        dev: Sequence[Example],
        synthetic: Sequence[Example],
        progress: Callable[[int, int], None] | None,
    ) -> FitReport:
        import torch

        cfg = self.config
        self._load(self._source())  # inside seeded(): the new head's init draws from torch's RNG
        if cfg.freeze_embeddings:
            self.model.get_input_embeddings().weight.requires_grad_(False)
        rows = {"real": self._encode(train), "syn": self._encode(synthetic)}
        ys = {"real": label_ids(self.task, train, "train"), "syn": label_ids(self.task, synthetic, "synthetic")}
        dev_rows, dev_y = self._encode(dev), label_ids(self.task, dev, "dev")
        weights = sample_weights(synthetic)  # lineage["weight"] (curation), None when no row has one

        def loss(source: str, idx: list[int], smoothing: float, w: list[float] | None = None) -> torch.Tensor:
            labels = torch.tensor([ys[source][i] for i in idx], device=self.model.device)
            logits = self.model(**self._batch([rows[source][i] for i in idx])).logits
            return weighted_cross_entropy(logits, labels, smoothing, w)

        def lengths(source: str) -> list[int] | None:
            return [len(r["input_ids"]) for r in rows[source]] if cfg.group_by_length else None

        if cfg.head_init == "linear-probe":
            self._init_head(rows, ys, dev_rows, dev_y, weights)

        self.model.train()
        with second_order_attention(self.model.encoder, uses_reweight(cfg.strategy)):  # the look-ahead's 2nd order
            report = train_torch(
                cfg,
                TorchModel.trainable(self.model, loss, lambda: self._evaluate(dev_rows, dev_y), no_decay=_no_decay),
                len(train),
                len(synthetic),
                self.seed,
                real_lengths=lengths("real"),
                syn_lengths=lengths("syn"),
                syn_weights=weights,
                syn_labels=ys["syn"],
                progress=progress,
                # LP-FT starts from the dev-selected probe: fine-tuning must beat it on dev to replace it
                start_is_candidate=cfg.head_init == "linear-probe",
            )
        self.model.eval()
        return report

    def _pooled(self, rows: Sequence[dict[str, list[int]]]) -> Any:
        """The encoder's pooled features (eval mode, no dropout) as a numpy array, in input order."""
        import torch

        model = self.model
        captured: list[torch.Tensor] = []
        hook = model.dropout.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0]))
        try:
            self._logits(rows)
        finally:
            hook.remove()
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))  # _logits' batch order
        pooled = torch.cat(captured).float().cpu()
        out = torch.empty_like(pooled)
        out[order] = pooled
        return out.numpy()

    def _init_head(
        self, rows: dict[str, list], ys: dict[str, list[int]], dev_rows: list, dev_y: list[int],
        syn_weights: list[float] | None = None,
    ) -> None:
        """LP-FT: the head starts as the logistic regression that is best on dev over frozen pooled features,
        so fine-tuning begins from a sensible classifier instead of distorting features for a random one.
        Synthetic rows carry their sample weights here too."""
        import numpy as np
        import torch

        from fewforge.learners.linear_probe import fit_logistic_head

        strategy = self.config.strategy
        sources = [s for s in {"real": ["real"], "syn": ["syn"]}.get(strategy, ["real", "syn"]) if rows[s]]
        x = np.concatenate([self._pooled(rows[s]) for s in sources])
        y = np.concatenate([np.asarray(ys[s]) for s in sources])
        weights = np.ones(len(y))
        if strategy not in ("real", "syn", "real+syn") and len(sources) == 2:  # the paired rule's weights
            weights[len(rows["real"]) :] = len(rows["real"]) / len(rows["syn"])
        if syn_weights is not None and "syn" in sources:  # the synthetic rows come last
            weights[len(weights) - len(syn_weights) :] *= np.asarray(syn_weights)
        head, *_ = fit_logistic_head(
            x, y, weights, self._pooled(dev_rows), np.asarray(dev_y), (0.1, 1.0, 10.0, 100.0), len(self.labels)
        )
        weight = torch.zeros_like(self.model.head.weight)
        bias = torch.full_like(self.model.head.bias, -10.0)  # a class absent from training starts unlikely
        coef, intercept = torch.tensor(head.coef_, dtype=weight.dtype), torch.tensor(head.intercept_, dtype=bias.dtype)
        classes = list(head.classes_)
        if len(classes) == 2 and coef.shape[0] == 1:  # binary: one logit difference, class 1 vs class 0
            weight[classes[1]], bias[classes[1]], bias[classes[0]] = coef[0], intercept[0], 0.0
        else:
            for row, c in enumerate(classes):
                weight[c], bias[c] = coef[row], intercept[row]
        with torch.no_grad():
            self.model.head.weight.copy_(weight)
            self.model.head.bias.copy_(bias)

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

    def save(self, directory: Path) -> None:
        """A transformers folder: config.json (label names as id2label; `auto_map` naming
        modeling_fewforge.py, this classifier's class), model.safetensors (encoder + trained head), the
        tokenizer, and fewforge.json."""
        require_fitted(self, self.model)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        import shutil

        from safetensors.torch import save_model

        from fewforge.learners import modeling_fewforge

        config = modeling_fewforge.FewforgePooledConfig(
            encoder=self.model.encoder.config.to_dict(),
            encoder_class=type(self.model.encoder).__name__,
            pooling=self.config.pooling,
            classifier_dropout=self.config.dropout,
            normalize=self.config.normalize,
            id2label=dict(enumerate(self.labels)),
            label2id={label: i for i, label in enumerate(self.labels)},
            architectures=["FewforgePooledForSequenceClassification"],
            auto_map={
                "AutoConfig": "modeling_fewforge.FewforgePooledConfig",
                "AutoModelForSequenceClassification": "modeling_fewforge.FewforgePooledForSequenceClassification",
            },
        )
        with quiet_transformers():
            config.save_pretrained(directory)
            self.tokenizer.save_pretrained(directory)
        # the same parameter names as the exported class: encoder.*, head.* (shared tensors stored once)
        save_model(self.model, str(directory / "model.safetensors"), metadata={"format": "pt"}, force_contiguous=True)
        (directory / "model.safetensors").chmod(0o644)  # safetensors creates it private; it is a shareable model
        shutil.copyfile(modeling_fewforge.__file__, directory / "modeling_fewforge.py")
        write_json(directory / self.META_FILE, self._meta())

    @classmethod
    def load(cls, task: Task, directory: Path) -> "EncoderClassifier":
        directory = Path(directory)
        meta = cls._read_meta(task, directory)
        learner = cls(task, cls.Config(**meta["config"]), seed=meta.get("seed", 0))
        if (directory / HEAD_FILE).is_file():  # saved before the transformers export: encoder + head file
            learner._load(str(directory), head=directory / HEAD_FILE)
        else:
            learner._load_exported(directory)
        learner.model.eval()
        return learner

    def _load_exported(self, directory: Path) -> None:
        """The folder `save` wrote, through fewforge's own copy of the class (no code runs from the folder)."""
        import torch
        from transformers import AutoTokenizer

        from fewforge.learners.modeling_fewforge import FewforgePooledForSequenceClassification

        with quiet_transformers():
            # trust_remote_code=False: the tokenizer files say what to build; never ask about the folder's code
            self.tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True, trust_remote_code=False)
            self.model = FewforgePooledForSequenceClassification.from_pretrained(str(directory), local_files_only=True)
        self.model.to("cuda" if torch.cuda.is_available() else "cpu")


def _no_decay(name: str) -> bool:
    return name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name


class LMClassifierConfig(EncoderConfig):
    """Fine-tuning (FT) on the prompt-tuning target: the causal LM with a linear head on its last token."""

    pooling: Literal["mean", "cls", "last"] = Field("last", description="The last real token (causal LM).")
    learning_rate: float = Field(1e-5, gt=0, description="Peak learning rate (LM-BFF's FT: 1e-5).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout before the linear head.")


class LMClassifier(EncoderClassifier):
    """DawGen's FT baseline: the target LM (default: the packaged SmolLM2) + a classification head, no prompt."""

    name: ClassVar[str] = "lm-ft"
    Config: ClassVar[type[LearnerConfig]] = LMClassifierConfig
    seconds_per_cell: ClassVar[float] = 600.0

    def _source(self) -> str:
        from fewforge.packaged import lm_source

        return lm_source(self.config.model)
