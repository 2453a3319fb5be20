"""SetFit (Tunstall et al. 2022) through the `setfit` library: contrastive fine-tuning of a sentence
encoder (default: the packaged all-MiniLM-L6-v2) on pairs of training rows, then a logistic-regression
head on its embeddings — the few-shot learner most users already reach for.

Real and synthetic rows follow the fair rule of the other learners (docs/fidelity.md):
- `real`: setfit's pairs of the real rows (`num_iterations` pairs per row), the reference run;
- `paired` (default): those same real pairs plus as many pairs drawn from the synthetic rows, so the
  synthetic data adds to the real signal instead of diluting it; the head weighs the synthetic rows
  to the real rows' total (as the linear probe does);
- `real+syn`: pairs drawn from the union of rows, capped at the real-only number of pairs — the
  dilution `paired` avoids, kept for comparison;
- `syn`: pairs of the synthetic rows only, as many as real-only would have.
The dev rows are only scored (setfit has no checkpoint choice); setfit's metrics would be loaded from
the hub by the `evaluate` package, so fewforge scores predictions itself. Sample weights
(`lineage["weight"]`, curation's `weight` action) reach the logistic head only (scikit-learn's
`sample_weight`, times the strategy's weight): setfit draws its contrastive pairs without weights.
"""

from __future__ import annotations

import tempfile
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar, Literal, Sequence

from pydantic import Field

from fewforge.data.schema import Example
from fewforge.files import write_json
from fewforge.hf import quiet_transformers
from fewforge.learners.base import FitReport, LearnerConfig, SeededLearner, label_ids, require_fitted, sample_weights
from fewforge.learners.runtime import torch_threads
from fewforge.tasks.base import Task


class SetFitConfig(LearnerConfig):
    model: str | None = Field(
        None, description="Local sentence-transformers model directory; default: the packaged all-MiniLM-L6-v2."
    )
    strategy: Literal["real", "syn", "real+syn", "paired"] = Field(
        "paired",
        description="How synthetic rows join: 'paired' adds as many synthetic pairs as real ones and weighs "
        "synthetic rows to the real total in the head; 'real+syn' draws the same number of pairs from the union.",
    )
    num_iterations: int = Field(20, ge=1, description="Contrastive pairs per real row and class side (setfit's 20).")
    num_epochs: int = Field(1, ge=1, description="Epochs of contrastive body training.")
    batch_size: int = Field(16, ge=1, description="Pairs per contrastive step.")
    body_learning_rate: float = Field(2e-5, gt=0, description="Learning rate of the encoder body.")
    # 256 is what every earlier SetFit result trained at: the option used to reach setfit's head phase only,
    # while the body kept sentence-transformers' own max_seq_length (256 for MiniLM).
    max_length: int = Field(256, ge=8, description="Tokens per text for the body (its max_seq_length).")
    head_C: float = Field(1.0, gt=0, description="Inverse L2 strength of the logistic-regression head.")
    threads: int | None = Field(
        None, ge=1, description="CPU threads for torch (default: torch's choice).", json_schema_extra={"semantic": False}
    )


class SetFitLearner(SeededLearner):
    name: ClassVar[str] = "setfit"
    Config: ClassVar[type[LearnerConfig]] = SetFitConfig
    config: SetFitConfig
    seconds_per_cell: ClassVar[float] = 90.0

    def __init__(self, task: Task, config: SetFitConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(task, config, seed=seed)
        self.model: Any = None

    def _texts(self, examples: Sequence[Example]) -> list[str]:
        """The body reads one string; a pair is joined with the tokenizer's separator."""
        out = []
        for e in examples:
            a, b = self.task.encoder_input(e)
            out.append(a if b is None else f"{a} [SEP] {b}")
        return out

    def _train(self, train, dev, synthetic, progress) -> FitReport:
        import numpy as np
        from setfit import SetFitModel, Trainer, TrainingArguments
        from setfit.sampler import ContrastiveDataset
        from transformers import TrainerCallback

        from fewforge.learners.encoder import resolve_model

        cfg = self.config
        strategy = cfg.strategy if synthetic or cfg.strategy == "syn" else "real"
        x_real, y_real = self._texts(train), label_ids(self.task, train, "train")
        x_syn, y_syn = self._texts(synthetic), label_ids(self.task, synthetic, "synthetic")
        with quiet_transformers():
            self.model = SetFitModel.from_pretrained(resolve_model(cfg.model), local_files_only=True)
        self.model.model_body.max_seq_length = cfg.max_length  # the body truncates here, in training and predict
        self.model.model_head.set_params(C=cfg.head_C, max_iter=1000)

        def pairs(x: list[str], y: list[int], cap: int = -1) -> list[dict[str, Any]]:
            """setfit's pairs (positive and negative alternating), at most `cap` of them."""
            dataset = ContrastiveDataset(x, y, False, cfg.num_iterations, "oversampling", max_pairs=cap)
            return list(islice(dataset, cap) if cap > 0 else dataset)

        n_pairs = len(pairs(x_real, y_real))  # how many pairs real-only training takes
        chosen = {
            "real": lambda: pairs(x_real, y_real),
            "syn": lambda: pairs(x_syn, y_syn, n_pairs),
            "real+syn": lambda: pairs(x_real + x_syn, y_real + y_syn, n_pairs),
            "paired": lambda: pairs(x_real, y_real) + pairs(x_syn, y_syn, n_pairs),
        }[strategy]()
        steps = cfg.num_epochs * -(-len(chosen) // cfg.batch_size)

        class Pairs(Trainer):
            def get_dataset(self, x, y, args, max_pairs=-1):  # the pairs chosen above, not setfit's own
                from datasets import Dataset

                return Dataset.from_list(chosen), args.loss(self.model.model_body)

        class Progress(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if progress is not None:
                    progress(state.global_step, steps)

        with tempfile.TemporaryDirectory(prefix="fewforge-setfit-") as tmp, quiet_transformers():
            args = TrainingArguments(
                output_dir=tmp,
                batch_size=cfg.batch_size,
                num_epochs=cfg.num_epochs,
                body_learning_rate=cfg.body_learning_rate,
                max_length=cfg.max_length,
                seed=self.seed,
                report_to="none",
                save_strategy="no",
                logging_strategy="no",  # the trainer would print loss dicts to stdout
                show_progress_bar=False,
            )
            trainer = Pairs(model=self.model, args=args, callbacks=[Progress()])
            trainer.train_embeddings(x_real, y_real, args=args)
        # The head: every row embedded by the tuned body; synthetic rows weighted per strategy.
        if strategy == "real":
            x, y, w = x_real, y_real, [1.0] * len(x_real)
        elif strategy == "syn":
            x, y, w = x_syn, y_syn, [1.0] * len(x_syn)
        else:
            share = len(x_real) / len(x_syn) if strategy == "paired" else 1.0
            x, y, w = x_real + x_syn, y_real + y_syn, [1.0] * len(x_real) + [share] * len(x_syn)
        own = sample_weights(synthetic) if strategy != "real" else None
        if own is not None:  # the head only: the contrastive pairs are drawn without weights
            w = w[: len(w) - len(own)] + [a * b for a, b in zip(w[len(w) - len(own) :], own)]
        embeddings = self.model.encode(x, batch_size=64, show_progress_bar=False)
        self.model.model_head.fit(np.asarray(embeddings), np.asarray(y), sample_weight=np.asarray(w))
        dev_pred = self.predict_proba(dev).argmax(axis=1)
        accuracy = float(np.mean(dev_pred == np.asarray(label_ids(self.task, dev, "dev"))))
        return FitReport(
            best_dev_accuracy=accuracy,
            best_step=steps,
            steps=steps,
            seconds=0.0,
            extra={
                "strategy": strategy,
                "pairs": len(chosen),
                "trainable_parameters": sum(p.numel() for p in self.model.model_body.parameters() if p.requires_grad),
            },
        )

    def predict_proba(self, examples: Sequence[Example] | Sequence[str]) -> Any:
        import numpy as np

        require_fitted(self, self.model)
        rows = self._inputs(examples)
        if not rows:
            return np.zeros((0, len(self.task.label_names)))
        with torch_threads(self.config.threads):
            embeddings = self.model.encode(self._texts(rows), batch_size=64, show_progress_bar=False)
        head = self.model.model_head
        proba = np.zeros((len(rows), len(self.task.label_names)))
        proba[:, head.classes_] = head.predict_proba(np.asarray(embeddings))  # a class absent in training stays 0
        return proba

    def save(self, directory: Path) -> None:
        """setfit's own folder (body, model_head.pkl, config_setfit.json) with the label names as the
        model's `labels`, so `SetFitModel.from_pretrained(directory).predict(texts)` returns names."""
        require_fitted(self, self.model)
        directory = Path(directory)
        self.model.labels = self.task.label_names  # the head predicts label indices in this order
        with quiet_transformers():
            self.model.save_pretrained(str(directory))
        write_json(directory / self.META_FILE, self._meta())

    @classmethod
    def load(cls, task: Task, directory: Path) -> "SetFitLearner":
        from setfit import SetFitModel

        directory = Path(directory)
        meta = cls._read_meta(task, directory)
        learner = cls(task, SetFitConfig(**meta["config"]), seed=meta.get("seed", 0))
        with quiet_transformers():
            learner.model = SetFitModel.from_pretrained(str(directory), local_files_only=True)
        return learner
