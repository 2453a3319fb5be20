"""Tuning label-conditional prompts: `lm` (eq. 3), FewGen's `weighted` (eq. 4-5, bi-level with a weight
net) and `dawgen` (eq. 6-7: weighted + the distribution-aligned hinge).

One step of `weighted` / `dawgen`, in FewGen's order (its GenerationModel.forward; DawGen's Algorithm 1
is a caption only):
1. score the batch under every label's prompt (eq. 5 needs all L), the weight net turns each token's
   discriminative loss into a weight;
2. meta step: Q' = Q - meta_lr * grad_Q L_wGen(Q, W), kept differentiable in W; the weight net takes one
   step on L_disc(Q') of the meta batch — the same batch (FewGen's code, the default: with 2-4 real rows
   per label there is nothing to hold out) or a held-out batch drawn from the other rows;
3. the prompts take one step on L_wGen with the weight net's weights fixed, plus, for `dawgen`, the hinge
   (weight `hinge_weight`, default 1 as eq. 6 adds it unweighted). The hinge updates the prompts only: it
   is a constraint on what the prompts generate, and W keeps FewGen's single objective L_disc.
Each anchor row's hinge triplet is the anchor, one other row of its label and one row of another label,
drawn at random from the training rows. The partners' sentence vectors come from a memory bank (each
row's vector from the last time it was an anchor, filled once before the first step): scoring two fresh
partners per anchor under every label's prompt made a dawgen step 7x an lm step on CPU.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from fewforge.errors import DataError
from fewforge.learners.runtime import seeded
from fewforge.synthesis.base import ADDED_LATER, later_fields_at_default
from fewforge.synthesis.fewgen import losses
from fewforge.synthesis.fewgen.guard import AuditFn, EpochGuard, GuardCriterion
from fewforge.synthesis.fewgen.rows import Batch, TuningRow, collate

if TYPE_CHECKING:
    import torch

    from fewforge.generators.soft_prompts import LabelPrompts

Loss = Literal["lm", "weighted", "dawgen"]


class TuningConfig(BaseModel):
    """Generator tuning; defaults are the paper's (PROTOCOLS §1: D L281, FewGen's train_gen.sh)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    loss: Loss = Field("dawgen", description="lm (eq. 3), weighted (FewGen, eq. 4-5) or dawgen (eq. 6-7).")
    epochs: int = Field(20, ge=1, description="Passes over the real rows (paper: 20, fixed).")
    batch_size: int = Field(2, ge=1, description="Rows per step (paper: 2).")
    learning_rate: float = Field(5e-3, gt=0, description="AdamW learning rate of the prompts (paper: 5e-3).")
    weight_net_learning_rate: float = Field(1e-2, gt=0, description="Weight net learning rate (paper: 1e-2).")
    meta_learning_rate: float = Field(
        2e-2, gt=0, description="Step size of the virtual prompt update in the meta step (FewGen: META_LR 2e-2)."
    )
    meta_batch: Literal["same", "held-out"] = Field(
        "same", description="The weight net's batch: the step's own (FewGen) or as many other rows, drawn at "
        "random from the training rows outside the batch."
    )
    meta_every: int = Field(
        1, ge=1, description="Steps between the weight net's meta steps (FewGen: 1, every step); the prompts "
        "step every time with the weight net's latest weights.",
    )
    hinge_weight: float = Field(1.0, ge=0, description="Weight of L_dist in eq. 6 (the paper adds it unweighted).")
    margin: float = Field(1.0, ge=0, description="Hinge margin of eq. 7 (paper: 1).")
    schedule: Literal["linear", "constant"] = Field(
        "linear", description="Learning rates of the prompts and the weight net: linear decay to 0 over the "
        "steps (FewGen: the HF Trainer's default) or constant (fewforge before issue 29).",
    )
    max_grad_norm: float = Field(1.0, ge=0, description="Clip the prompts' gradient norm (FewGen: 1.0; 0: no clipping).")
    dropout: float = Field(
        0.1, ge=0, lt=1, description="Attention dropout of the frozen generator during tuning steps (FewGen's CTRL "
        "trains with dropout 0.1; SmolLM2's Llama blocks have attention dropout only; 0: none).",
    )
    weight_net_optimizer: Literal["adam", "adamw"] = Field(
        "adam", description="adam: FewGen's Adam with weight decay 1e-4; adamw: AdamW with its default decay 0.01.",
    )
    eq5: Literal["probability", "logit"] = Field(
        "probability", description="Eq. 5 as the paper writes it (a softmax over labels of the token's "
        "log-probabilities) or as FewGen's code computes it (a softmax over labels of the token's raw logits).",
    )
    anchor: Literal["label", "none"] = Field(
        "label", description="label: freeze the prompt positions up to and including the label word (FewGen "
        "freezes its label control code and tunes the positions after it); none: tune every position.",
    )
    hinge_partners: Literal["bank", "fresh"] = Field(
        "bank", description="The hinge partners' sentence vectors: a memory bank (each row's from its last step as "
        "an anchor) or fresh, scored under the current prompts every step (about twice a step's cost).",
    )
    hinge_states: Literal["predicting", "tokens"] = Field(
        "predicting", description="W·Z of eq. 7 from the states that predict the row's tokens, or from the states "
        "at the tokens themselves (after reading each).",
    )
    weights: Literal["learned", "uniform"] = Field(
        "learned", description="learned: the weight net's token weights (eq. 4); uniform: the control — the "
        "weighted code path (eager attention, weighted loss) with every valid token weighted alike, no meta step.",
    )
    guard: GuardCriterion = Field(
        "accuracy", description="Keep the best epoch, the untuned prompts (epoch 0) included, ties to the "
        "earliest: accuracy (generative classifier on the split's dev rows), loss (dev LM loss), audit (the "
        "share of guard_rows rows per label, sampled from the epoch's prompts with the method's decoding, that "
        "the fewshot auditor trained on the train and dev rows labels as intended) or none (the last epoch, "
        "the papers' rule). Beyond the papers: a tuned prompt is never worse than its start by that measure. The "
        "fewgen and dawgen methods default to audit (with guard_audit: worst_label); a Tuner alone to accuracy.",
    )
    guard_rows: int = Field(
        16, ge=1, description="guard: audit: rows sampled per label from each epoch's prompts (a seed distinct "
        "from the final set's); each epoch costs 2 x guard_rows x labels generated rows or fewer",
        json_schema_extra=ADDED_LATER,
    )
    guard_audit: Literal["overall", "worst_label"] = Field(
        "overall", description="guard: audit: an epoch's score is the audited share over all its sampled rows, "
        "or the smallest of its labels' shares (worst_label, what the fewgen and dawgen methods use unless "
        "told: an auditor leaning to one label cannot reward prompts that write more of that label's words)",
        json_schema_extra=ADDED_LATER,
    )

    @model_serializer(mode="wrap")
    def _drop_later(self, handler: Any) -> Any:
        """Fields added after tuned prompts were saved enter dumps (and so fingerprints) only when set,
        as `MethodConfig.identity` does for a method's own fields: earlier tunings stay reusable."""
        data = handler(self)
        if isinstance(data, dict):
            for name in later_fields_at_default(self):
                data.pop(name, None)
        return data


def weight_concentration(weights: "torch.Tensor", mask: "torch.Tensor") -> dict[str, float]:
    """How concentrated a step's token weights (summing to 1 over the valid tokens) are: the effective
    token count 1/Σw² (= the valid tokens when uniform) and the largest weight over the mean one."""
    valid = float(mask.sum())
    return {
        "effective_tokens": round(1.0 / max(float((weights.float() ** 2).sum()), 1e-12), 2),
        "valid_tokens": int(valid),
        "max_over_mean_weight": round(float(weights.max()) * valid, 3),
    }


DIAGNOSTICS = ("loss", "effective_tokens", "valid_tokens", "max_over_mean_weight", "hinge", "hinge_share", "disc_loss")


def step_diagnostics(history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per epoch, the mean of each step diagnostic the history holds (the card's compact view; the full
    per-step history is in the tuning stage's summary.json)."""
    by_epoch: dict[int, list[dict[str, Any]]] = {}
    for entry in history:
        by_epoch.setdefault(entry.get("epoch", 1), []).append(entry)
    out = []
    for epoch, entries in sorted(by_epoch.items()):
        means = {
            key: round(sum(e[key] for e in entries if key in e) / n, 4)
            for key in DIAGNOSTICS
            if (n := sum(key in e for e in entries))
        }
        out.append({"epoch": epoch, **means})
    return out


def _position_mask(prompts: "LabelPrompts", frozen: int) -> "torch.Tensor | None":
    """1 at the prompt positions that train, 0 at the `frozen` leading ones (None: all train), shaped to
    broadcast over the prompts' values."""
    import torch

    if frozen <= 0:
        return None
    n = prompts.n_tokens
    mask = (torch.arange(n) >= frozen).float()
    token_axis = 1 if prompts.placement == "prompt" else prompts.values.dim() - 2
    shape = [1] * prompts.values.dim()
    shape[token_axis] = n
    return mask.view(shape)


def anchor_positions(head_ids: Sequence[Sequence[int]]) -> int:
    """How many leading prompt positions the label anchor freezes: up to and including the last position
    where the labels' prompts differ (the label word), with the prompts left-padded to one length as
    `LabelPrompts.from_natural_prompts` pads them. 0 when the prompts do not differ."""
    n = max(len(ids) for ids in head_ids)
    padded = [[ids[0]] * (n - len(ids)) + list(ids) for ids in head_ids]
    differing = [t for t in range(n) if len({row[t] for row in padded}) > 1]
    return differing[-1] + 1 if differing else 0


@contextmanager
def training_dropout(lm: Any, p: float) -> Iterator[None]:
    """The frozen generator in training mode with attention dropout `p` for one tuning step (FewGen tunes
    with the model's dropout on); back in eval mode, its own dropout, afterwards."""
    attention = [m for m in lm.modules() if hasattr(m, "attention_dropout")]
    before = [m.attention_dropout for m in attention]
    if p > 0:
        for m in attention:
            m.attention_dropout = p
        lm.train()
    try:
        yield
    finally:
        for m, value in zip(attention, before):
            m.attention_dropout = value
        lm.eval()


class Tuner:
    """Trains `prompts` on real rows with one of the three losses; `weight_net` is kept for inspection."""

    def __init__(
        self, prompts: "LabelPrompts", config: TuningConfig, *, seed: int, pad_id: int = 0, frozen_positions: int = 0
    ) -> None:
        """`frozen_positions`: the prompt's leading positions that stay as they start (the label anchor,
        `anchor_positions`); the rest train."""
        import torch

        self.prompts, self.cfg, self.pad_id, self.seed = prompts, config, pad_id, seed
        self.steps = 0
        self.rng = random.Random(seed)
        with seeded(seed):  # the weight net's init depends on the seed alone
            self.weight_net = losses.weight_net()
        self.trainable = _position_mask(prompts, frozen_positions)
        self.optimizer = torch.optim.AdamW([prompts.values], lr=config.learning_rate, weight_decay=0.0)
        if config.weight_net_optimizer == "adam":  # FewGen: torch.optim.Adam(weight_decay=1e-4)
            self.weight_optimizer = torch.optim.Adam(
                self.weight_net.parameters(), lr=config.weight_net_learning_rate, weight_decay=1e-4
            )
        else:
            self.weight_optimizer = torch.optim.AdamW(self.weight_net.parameters(), lr=config.weight_net_learning_rate)

    def fit(
        self,
        rows: Sequence[TuningRow],
        progress: Callable[[int, int], None] | None = None,
        dev: Sequence[TuningRow] = (),
        audit: AuditFn | None = None,
    ) -> list[dict]:
        """Train for `epochs`; returns one history entry per step. With `dev` rows (or, for guard: audit,
        an `audit` function: guard.py), the guard measures every epoch and the untuned start, and the
        prompts end as the best epoch's; `self.guard` holds the per-epoch record."""
        import torch

        self._check(rows)
        self.guard = EpochGuard(
            self.prompts, dev, self.cfg.guard, self.pad_id, audit if self.cfg.guard == "audit" else None, self.cfg.guard_audit
        )
        steps_per_epoch = -(-len(rows) // self.cfg.batch_size)
        total, history = self.cfg.epochs * steps_per_epoch, []
        self._schedule(total)
        if self.cfg.loss == "dawgen" and self.cfg.hinge_partners == "bank":
            self._fill_bank(rows)
        self.guard.measure(0)
        with torch.random.fork_rng():  # dropout draws from torch's generator: seeded, and left as it was
            torch.manual_seed(self.seed)
            for epoch in range(1, self.cfg.epochs + 1):
                order = list(range(len(rows)))
                self.rng.shuffle(order)
                for start in range(0, len(order), self.cfg.batch_size):
                    with training_dropout(self.prompts.lm, self.cfg.dropout):
                        entry = self.step(order[start : start + self.cfg.batch_size], rows)
                    history.append({"step": len(history) + 1, "epoch": epoch, **entry})
                    if progress:
                        progress(len(history), total)
                self.guard.measure(epoch)
        self.guard.restore()
        return history

    def _schedule(self, total: int) -> None:
        """FewGen's linear decay to 0 over the run (the HF Trainer's default), or a constant rate."""
        import torch

        if self.cfg.schedule == "linear":
            decay = lambda step: max(0.0, 1.0 - step / max(total, 1))  # noqa: E731
        else:
            decay = lambda step: 1.0  # noqa: E731
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(o, decay) for o in (self.optimizer, self.weight_optimizer)]

    def _check(self, rows: Sequence[TuningRow]) -> None:
        if not rows:
            raise DataError("no real rows to tune the generator on", hint="check the few-shot train split")
        labels = {r.label for r in rows}
        if self.cfg.loss != "lm" and len(labels) < 2:
            raise DataError(
                f"the {self.cfg.loss} loss compares labels, and the rows hold only {sorted(labels)}",
                hint="give rows of at least two labels, or use loss: lm",
            )
        if max(labels) >= self.prompts.n_labels:
            raise DataError(f"a row's label {max(labels)} has no prompt ({self.prompts.n_labels} labels)")

    def step(self, indices: Sequence[int], pool: Sequence[TuningRow]) -> dict[str, Any]:
        """One optimisation step on the rows `pool[i] for i in indices`; `pool` holds every training row
        (meta batches, hinge partners)."""
        import torch

        batch = collate([pool[i] for i in indices], self.pad_id)
        if self.cfg.loss == "lm":
            out = self.prompts(batch.ids, batch.attention, batch.labels)
            logp = losses.target_log_probs(out.logits[:, :-1], batch.ids[:, 1:])
            loss = losses.lm_loss(logp, batch.targets)
            self._update(loss)
            return {"loss": loss.item()}

        # eq. 5 needs every label's scores, but only the own label's carry gradients to the prompts
        with torch.no_grad():
            label_logp, _ = self.prompts.score_all_labels(batch.ids, batch.attention, raw=self.cfg.eq5 == "logit")
        token_disc = losses.discriminative_token_loss(label_logp, batch.labels)
        out = self.prompts(batch.ids, batch.attention, batch.labels)
        own = losses.target_log_probs(out.logits[:, :-1], batch.ids[:, 1:])
        hidden = out.hidden[:, 1:] if self.cfg.hinge_states == "tokens" else out.hidden[:, :-1]
        self.steps += 1
        record: dict[str, Any] = {}
        uniform = self.cfg.weights == "uniform"
        if not uniform and (self.steps - 1) % self.cfg.meta_every == 0:
            record["disc_loss"] = self._meta_step(own, token_disc, batch, indices, pool)
        with torch.no_grad():
            scores = torch.zeros_like(token_disc) if uniform else self.weight_net(token_disc.unsqueeze(-1)).squeeze(-1)
        weights = losses.token_weights(scores, batch.targets)
        loss = losses.weighted_lm_loss(own, weights)
        record.update(weighted_loss=loss.item(), **weight_concentration(weights, batch.targets))
        if self.cfg.loss == "dawgen":
            hinge = self._hinge(hidden, scores, batch, indices, pool)
            loss = loss + self.cfg.hinge_weight * hinge
            record["hinge"] = hinge.item()
            record["hinge_share"] = round(self.cfg.hinge_weight * hinge.item() / max(loss.item(), 1e-12), 4)
        self._update(loss)
        return {"loss": loss.item(), **record}

    def _update(self, loss: "torch.Tensor") -> None:
        import torch

        self.optimizer.zero_grad()
        loss.backward(inputs=[self.prompts.values])
        grad = self.prompts.values.grad
        if self.trainable is not None:
            grad.mul_(self.trainable)  # the anchor's positions stay where they started
        if self.cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_([self.prompts.values], self.cfg.max_grad_norm)
        self.optimizer.step()
        self.schedulers[0].step()

    def _meta_step(self, own, token_disc, batch: Batch, indices: Sequence[int], pool: Sequence[TuningRow]) -> float:
        """The weight net's step on L_disc after a virtual, W-dependent prompt update (eq. 5)."""
        import torch

        scores = self.weight_net(token_disc.unsqueeze(-1)).squeeze(-1)
        weights = losses.token_weights(scores, batch.targets)
        if self.cfg.meta_batch == "same":
            meta = batch
        else:
            meta = collate(self._draw(pool, len(batch.labels), exclude=indices), self.pad_id)
        inner = losses.weighted_lm_loss(own, weights)
        (grad,) = torch.autograd.grad(inner, self.prompts.values, create_graph=True, retain_graph=True)
        if self.trainable is not None:
            grad = grad * self.trainable
        moved = self.prompts.values - self.cfg.meta_learning_rate * grad
        meta_logp, _ = self.prompts.score_all_labels(meta.ids, meta.attention, values=moved, raw=self.cfg.eq5 == "logit")
        disc = losses.disc_loss(meta_logp, meta.labels, meta.targets)
        self.weight_optimizer.zero_grad()
        disc.backward(inputs=list(self.weight_net.parameters()))
        self.weight_optimizer.step()
        self.schedulers[1].step()
        return disc.item()

    def _draw(self, pool: Sequence[TuningRow], n: int, exclude: Sequence[int] = ()) -> list[TuningRow]:
        """`n` rows drawn at random from `pool` outside `exclude` (all of it when nothing is left)."""
        others = [i for i in range(len(pool)) if i not in set(exclude)] or list(range(len(pool)))
        return [pool[others[self.rng.randrange(len(others))]] for _ in range(n)]

    def _sentence_vectors(self, batch: Batch) -> "torch.Tensor":
        """W·Z of eq. 7 for every row of `batch` under its own label's prompt, without gradients."""
        import torch

        with torch.no_grad():
            label_logp, hidden = self.prompts.score_all_labels(
                batch.ids, batch.attention, token_states=self.cfg.hinge_states == "tokens"
            )
            token_disc = losses.discriminative_token_loss(label_logp, batch.labels)
            if self.cfg.weights == "uniform":
                scores = torch.zeros_like(token_disc)
            else:
                scores = self.weight_net(token_disc.unsqueeze(-1)).squeeze(-1)
            weights = losses.token_weights(scores, batch.targets, per_row=True)
            return losses.sentence_vectors(losses.own_label(hidden, batch.labels), weights).float()

    def _fill_bank(self, rows: Sequence[TuningRow]) -> None:
        """Every row's sentence vector before tuning: the hinge's partners (a memory bank, Wu et al. 2018)."""
        import torch

        chunks = [rows[i : i + 8] for i in range(0, len(rows), 8)]
        self.bank = torch.cat([self._sentence_vectors(collate(chunk, self.pad_id)) for chunk in chunks])

    def _hinge(self, own_hidden, scores, batch: Batch, indices: Sequence[int], pool: Sequence[TuningRow]):
        """L_dist (eq. 7) over each anchor's (anchor, same-label row, other-label row) triplet. The anchor's
        sentence vector is weighted by the weight net (fixed here) and carries the gradient; the partners'
        come from the memory bank — each row's vector from the last time it was an anchor (at most an
        epoch old) — so a triplet costs no forward pass of its own."""
        positives, negatives = [], []
        for i in indices:
            label = pool[i].label
            same = [j for j, r in enumerate(pool) if r.label == label and j != i] or [i]
            other = [j for j, r in enumerate(pool) if r.label != label]
            positives.append(same[self.rng.randrange(len(same))])
            negatives.append(other[self.rng.randrange(len(other))])
        anchors = losses.sentence_vectors(own_hidden, losses.token_weights(scores, batch.targets, per_row=True))
        if self.cfg.hinge_partners == "fresh":  # both partners under the current prompts, one forward
            partners = self._sentence_vectors(collate([pool[j] for j in positives + negatives], self.pad_id))
            return losses.triplet_hinge(anchors, partners[: len(positives)], partners[len(positives) :], self.cfg.margin)
        self.bank[list(indices)] = anchors.detach().float()
        return losses.triplet_hinge(anchors, self.bank[positives], self.bank[negatives], self.cfg.margin)
