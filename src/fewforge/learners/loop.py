"""The training loop every torch learner uses (nanoGPT's train.py shape, read top to bottom):
step through a batch plan decided up front, evaluate on dev every `eval_every` steps and at the last
one, keep the best state (dev accuracy, ties broken by lower dev loss), stop after `patience`
evaluations without improvement, restore the best state.

A learner supplies what differs: `step(batch) -> loss` (forward, backward, optimizer step),
`evaluate() -> (dev accuracy, dev loss)`, and `snapshot()` / `restore(state)` of its trainable weights.
`runtime.seeded(seed)` gives a learner its own random streams without touching the caller's global state.

`TorchConfig` + `train_torch` are the part every torch learner shares on top of that: the step budget,
the strategy's batch plan, AdamW with a warmup + linear/cosine schedule, one forward/backward per source
half of a batch (label smoothing optional), gradient surgery for `paired+gs`, learned row weights for
`paired+reweight` (reweight.py), clipping, and the surgery series. A learner brings its model as
`loss(source, rows)`, `evaluate()` and its trainable parameters (encoder.py, prompt_tuning.py).

Sample weights (`syn_weights`, from each synthetic row's `lineage["weight"]`, e.g. curation's `weight`
action): a synthetic half whose rows do not all weigh 1 is scored by `loss(source, rows, smoothing,
weights)`, which multiplies each row's loss by its weight and divides the sum by the number of rows
(`weighted_cross_entropy`) — weights are absolute, not re-normalised per batch, so a weight-0 row adds
nothing and a set whose weights average 1 keeps the synthetic half's loss mass. A half of all-1 weights
(and every real half) takes the unweighted call, so a set without weights, or with weights of 1, trains
bit for bit as before. Under `paired+reweight` the synthetic half's weights are learned every step
(reweight.py) and the static ones become their prior; the learner's loss must then accept the weights as
a tensor (`weighted_cross_entropy` does), and its model must be differentiable twice.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal, Sequence, get_args

from pydantic import Field, model_validator

from fewforge.errors import ConfigError
from fewforge.learners.base import FitReport, LearnerConfig
from fewforge.learners.strategies import REWEIGHT, STRATEGY_NAMES, SURGERY, Batch, plan, step_budget, uses_surgery

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

EVALS_PER_RUN = 6  # default dev evaluations per run: on BBC each costs ~2 s, about 2.5 training steps


def eval_interval(eval_every: int | None, total_steps: int) -> int:
    """`eval_every`, or by default every 1/EVALS_PER_RUN of the run."""
    return eval_every or max(1, total_steps // EVALS_PER_RUN)


def run_loop(
    batches: Sequence[Batch],
    *,
    step: Callable[[Batch], float],
    evaluate: Callable[[], tuple[float, float]],
    snapshot: Callable[[], Any],
    restore: Callable[[Any], None],
    eval_every: int,
    patience: int = 0,
    progress: Callable[[int, int], None] | None = None,
    start_is_candidate: bool = False,
) -> FitReport:
    """Train through `batches`; returns the report of the best dev evaluation (its state restored).
    `start_is_candidate`: the untrained state is evaluated first (step 0) and kept when no step beats it on
    dev, so a model that starts as a fitted classifier (LP-FT's head) never ends worse on dev than its start."""
    total = len(batches)
    history: list[dict[str, Any]] = []
    best: tuple[float, float] = (-1.0, -math.inf)  # (dev accuracy, -dev loss)
    best_state, best_step, since_best, losses = None, 0, 0, []
    step_no = 0
    if start_is_candidate:
        accuracy, dev_loss = evaluate()
        history.append({"step": 0, "loss": None, "dev_accuracy": accuracy, "dev_loss": dev_loss})
        best, best_state = (accuracy, -dev_loss), snapshot()
    for step_no, batch in enumerate(batches, start=1):
        losses.append(step(batch))
        if progress is not None:
            progress(step_no, total)
        if step_no % eval_every and step_no != total:
            continue
        accuracy, dev_loss = evaluate()
        entry = {"step": step_no, "loss": sum(losses) / len(losses), "dev_accuracy": accuracy, "dev_loss": dev_loss}
        losses = []
        history.append(entry)
        if (accuracy, -dev_loss) > best:
            best, best_step, since_best, best_state = (accuracy, -dev_loss), step_no, 0, snapshot()
        else:
            since_best += 1
        log.info("step %d/%d %s", step_no, total, entry)
        if patience and since_best >= patience:
            log.info("early stop at step %d: no dev improvement in %d evaluations", step_no, patience)
            break
    if best_state is not None:
        restore(best_state)
    return FitReport(best_dev_accuracy=best[0], best_step=best_step, steps=step_no, seconds=0.0, history=history)


Strategy = Literal[
    "real", "syn", "real+syn", "real->syn", "syn->real", "paired", "paired+gs", "paired+gs-all", "paired+gs-ema",
    "paired+reweight", "paired+l2rw",
]
assert set(get_args(Strategy)) == set(STRATEGY_NAMES)  # one list of names, checked at import


class TorchConfig(LearnerConfig):
    """Options every torch learner shares; each learner sets its own defaults."""

    # whether the learner's loss takes per-row weights (`weighted_cross_entropy`): `paired+reweight` needs it
    reads_weights: ClassVar[bool] = True

    strategy: Strategy = Field(
        "paired",
        description="How real and synthetic rows form batches: 'paired' (default, the fair rule) adds a synthetic "
        "batch to every real batch; 'paired+gs' also applies gradient surgery ('paired+gs-all' / 'paired+gs-ema': "
        "against the gradient of all real rows every 10 steps / a moving average of the real gradients); 'paired+reweight' weighs each "
        "synthetic row by how well its gradient agrees with the real batch's (after Ren et al. 2018; "
        "'paired+l2rw': the paper's own weight rule); 'real+syn' shuffles both into one pool; 'real->syn' / "
        "'syn->real' alternate a pass over the real rows with as many synthetic batches; 'real' / 'syn' train "
        "on one source (a grid sets these for its real-only and synthetic-only cells).",
    )
    epsilon: float = Field(
        1.0, ge=0, description="Weight ε of the projected synthetic gradient in 'paired+gs' (eq. 10; the paper gives "
        "no value: 1 makes a step without conflict the same as 'paired')."
    )
    label_smoothing: float = Field(
        0.0, ge=0, lt=1, description="Label smoothing of the cross-entropy (Syn+Real+LS in DawGen's Table 2)."
    )
    smooth: Literal["syn", "all"] = Field(
        "syn", description="Which rows label smoothing applies to: the synthetic ones (noisy labels) or all."
    )
    batch_size: int = Field(8, ge=1, description="Training examples per optimizer step (per source for 'paired').")
    learning_rate: float = Field(1e-4, gt=0, description="Peak AdamW learning rate.")
    schedule: Literal["linear", "cosine"] = Field("linear", description="Decay after warmup: linear or cosine to 0.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not applied to biases and norms).")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Fraction of the steps spent warming the learning rate up.")
    epochs: float = Field(5.0, gt=0, description="Passes over the real rows, before the min/max step clamp.")
    min_steps: int = Field(48, ge=1, description="Least number of optimizer steps.")
    max_steps: int = Field(80, ge=1, description="Most optimizer steps.")
    eval_every: int | None = Field(
        None,
        ge=1,
        description="Evaluate dev accuracy every this many steps and at the last one "
        f"(default: every 1/{EVALS_PER_RUN} of the run).",
    )
    patience: int = Field(
        0, ge=0, description="Stop after this many evaluations without dev improvement; 0 trains the whole budget."
    )
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for torch while training/predicting (default: torch's choice); set 1 when other "
        "processes share the cores, where spinning threads slow every step down several times.",
        json_schema_extra={"semantic": False},
    )

    @model_validator(mode="before")
    @classmethod
    def _given_bound_wins(cls, values: Any) -> Any:
        """A step bound the user set wins over the other bound's default, which they never saw: `-O
        max_steps=150` on a learner whose default min_steps is 1000 trains exactly 150 steps. Both set and
        crossed stays an error (below)."""
        if not isinstance(values, dict):
            return values
        for given, other, crossed in (("max_steps", "min_steps", int.__lt__), ("min_steps", "max_steps", int.__gt__)):
            value, default = values.get(given), cls.model_fields[other].default
            if other not in values and isinstance(value, int) and isinstance(default, int) and crossed(value, default):
                values = {**values, other: value}
        return values

    @model_validator(mode="after")
    def _check_steps(self) -> "TorchConfig":
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps ({self.min_steps}) must not exceed max_steps ({self.max_steps})")
        if self.strategy in REWEIGHT and not self.reads_weights:
            raise ValueError(f"strategy {self.strategy!r} needs per-row loss weights, which this learner does not read")
        return self

    def total_steps(self, n_real: int) -> int:
        return step_budget(n_real, self.batch_size, self.epochs, self.min_steps, self.max_steps)

    def eval_interval(self, total_steps: int) -> int:
        return eval_interval(self.eval_every, total_steps)

    def smoothing(self, source: str) -> float:
        return self.label_smoothing if self.smooth == "all" or source == "syn" else 0.0


@dataclass
class TorchModel:
    """What a torch learner hands `train_torch`: its trainable parameters and how to score rows."""

    parameters: list[tuple[str, "torch.nn.Parameter"]]  # trainable only: the optimizer's and surgery's scope
    # (source "real"/"syn", row indices, smoothing[, per-row weights]): the batch's mean loss; the weights
    # argument comes only for a synthetic half with a weight other than 1 (see `weighted_cross_entropy`)
    loss: Callable[..., "torch.Tensor"]
    evaluate: Callable[[], tuple[float, float]]  # dev (accuracy, loss)
    snapshot: Callable[[], Any]
    restore: Callable[[Any], None]
    no_decay: Callable[[str], bool] = field(default=lambda name: name.endswith("bias") or "norm" in name.lower())

    @classmethod
    def trainable(
        cls,
        module: "torch.nn.Module",
        loss: Callable[..., "torch.Tensor"],
        evaluate: Callable[[], tuple[float, float]],
        **kwargs: Any,
    ) -> "TorchModel":
        """A module's trainable parameters, with the best-dev snapshot holding copies of those only (a
        frozen base or LoRA's base weights never change, so they need no copy)."""
        import torch

        params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]

        def restore(state: dict[str, "torch.Tensor"]) -> None:
            with torch.no_grad():
                for n, p in params:
                    p.copy_(state[n])

        return cls(params, loss, evaluate, lambda: {n: p.detach().clone() for n, p in params}, restore, **kwargs)


def train_torch(
    cfg: TorchConfig,
    model: TorchModel,
    n_real: int,
    n_syn: int,
    seed: int,
    *,
    real_lengths: Sequence[int] | None = None,
    syn_lengths: Sequence[int] | None = None,
    syn_weights: Sequence[float] | None = None,
    syn_labels: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    start_is_candidate: bool = False,
) -> FitReport:
    """Plan the batches, build the optimizer and schedule, and run the loop; call inside `seeded()`.
    `syn_weights`: one weight per synthetic row (None: all 1), see the module docstring; `syn_labels`:
    each synthetic row's label index, which `paired+reweight`'s centred weights need."""
    import torch
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    from fewforge.learners.gradient_surgery import Reference, combine, conflict_rate
    from fewforge.learners.reweight import WeightLog, reweighted_backward

    budget = cfg.total_steps(n_real)
    batches = plan(cfg.strategy, n_real, n_syn, budget, cfg.batch_size, seed, real_lengths, syn_lengths)
    total = len(batches)
    params = [p for _, p in model.parameters]
    decay = [p for n, p in model.parameters if not model.no_decay(n)]
    no_decay = [p for n, p in model.parameters if model.no_decay(n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.learning_rate,
    )
    make_schedule = get_cosine_schedule_with_warmup if cfg.schedule == "cosine" else get_linear_schedule_with_warmup
    scheduler = make_schedule(optimizer, round(cfg.warmup_ratio * total), total)
    surgery = uses_surgery(cfg.strategy) and n_syn > 0
    mode = REWEIGHT.get(cfg.strategy)
    reweight = WeightLog(n_syn, mode) if mode and n_syn > 0 else None
    if reweight is not None and mode == "centred" and syn_labels is None:
        raise ConfigError(f"strategy {cfg.strategy!r} needs the synthetic rows' labels",
                          hint="pass syn_labels to train_torch, or use 'paired+l2rw'")
    records: list[dict[str, Any]] = []
    reference = Reference(SURGERY.get(cfg.strategy, "batch"))

    def backward(source: str, idx: list[int]) -> float:
        weights = [syn_weights[i] for i in idx] if source == "syn" and syn_weights is not None else None
        if weights is not None and any(w != 1.0 for w in weights):
            loss = model.loss(source, idx, cfg.smoothing(source), weights)
        else:
            loss = model.loss(source, idx, cfg.smoothing(source))
        loss.backward()
        return loss.item()

    def step(batch: Batch) -> float:
        # The two halves' mean losses add up: a real half weighs what it weighs in real-only training.
        loss = 0.0
        if surgery and batch.real and batch.syn:
            if reference.due():  # the gradient over every real row, at the current parameters
                for start in range(0, n_real, cfg.batch_size):
                    chunk = list(range(start, min(start + cfg.batch_size, n_real)))
                    (model.loss("real", chunk, cfg.smoothing("real")) * (len(chunk) / n_real)).backward()
                reference.set([p.grad for p in params])
                for p in params:
                    p.grad = None
            loss += backward("real", batch.real)
            real_grads = [None if p.grad is None else p.grad.clone() for p in params]
            for p in params:
                p.grad = None
            loss += backward("syn", batch.syn)
            against = reference.update(real_grads)
            update, record = combine(real_grads, [p.grad for p in params], cfg.epsilon, reference=against)
            for p, g in zip(params, update):
                p.grad = g
            records.append({"step": len(records) + 1, **record.as_dict()})
        elif reweight is not None and batch.real and batch.syn:
            # the synthetic rows weigh what their gradients agree with the real half's (reweight.py, L2RW)
            loss += backward("real", batch.real)
            real_grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
            prior = [syn_weights[i] for i in batch.syn] if syn_weights is not None else None
            labels = [syn_labels[i] for i in batch.syn] if syn_labels is not None else None
            value, weights = reweighted_backward(
                model.loss, batch.syn, cfg.smoothing("syn"), params, real_grads,
                mode=mode, labels=labels, prior=prior,
            )
            loss += value
            reweight.add(batch.syn, weights)
        else:
            if batch.real:
                loss += backward("real", batch.real)
            if batch.syn:
                loss += backward("syn", batch.syn)
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    report = run_loop(
        batches,
        step=step,
        evaluate=model.evaluate,
        snapshot=model.snapshot,
        restore=model.restore,
        eval_every=cfg.eval_interval(total),
        patience=cfg.patience,
        progress=progress,
        start_is_candidate=start_is_candidate,
    )
    report.extra["strategy"] = cfg.strategy
    report.extra["trainable_parameters"] = sum(p.numel() for p in params)
    if syn_weights is not None:
        report.extra["sample_weights"] = {"mean": sum(syn_weights) / max(len(syn_weights), 1),
                                          "zero": sum(w == 0 for w in syn_weights)}
    if surgery:
        report.surgery = records
        report.extra["conflict_rate"] = conflict_rate(records)
        report.extra["surgery_reference"] = reference.kind
        report.extra["mean_removed_norm"] = sum(r["removed_norm"] for r in records) / max(len(records), 1)
    if reweight is not None:
        report.row_weights = reweight.means()
        report.extra["reweight"] = reweight.summary()
    return report


def weighted_cross_entropy(
    logits: "torch.Tensor",
    labels: "torch.Tensor",
    smoothing: float = 0.0,
    weights: "Sequence[float] | torch.Tensor | None" = None,
) -> "torch.Tensor":
    """The batch's cross-entropy: the plain mean without `weights`; with them, each row's loss times its
    weight, summed and divided by the number of rows (a weight-0 row contributes exactly nothing). The
    weights may be a tensor that requires grad (the `paired+reweight` look-ahead)."""
    import torch

    if weights is None:
        return torch.nn.functional.cross_entropy(logits, labels, label_smoothing=smoothing)
    per_row = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=smoothing, reduction="none")
    if isinstance(weights, torch.Tensor):  # `paired+reweight`'s look-ahead differentiates by the weights
        w = weights.to(dtype=per_row.dtype, device=per_row.device)
    else:
        w = torch.as_tensor(list(weights), dtype=per_row.dtype, device=per_row.device)
    return (per_row * w).sum() / len(per_row)
