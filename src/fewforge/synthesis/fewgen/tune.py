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
drawn at random from the training rows and scored under their own labels' prompts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from fewforge.errors import DataError
from fewforge.synthesis.fewgen import losses

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
        "same", description="The weight net's batch: the step's own (FewGen) or other rows drawn at random."
    )
    hinge_weight: float = Field(1.0, ge=0, description="Weight of L_dist in eq. 6 (the paper adds it unweighted).")
    margin: float = Field(1.0, ge=0, description="Hinge margin of eq. 7 (paper: 1).")


@dataclass(frozen=True)
class TuningRow:
    """One real example as the generator should write it: token ids whose first token is context (the
    last token of the natural prompt), and from `target_start` on the tokens it learns to produce."""

    ids: tuple[int, ...]
    target_start: int
    label: int


@dataclass
class Batch:
    ids: "torch.Tensor"  # [B, T] right-padded
    attention: "torch.Tensor"  # [B, T]
    targets: "torch.Tensor"  # [B, T-1]: 1 where position t predicts a target token
    labels: "torch.Tensor"  # [B]


def collate(rows: Sequence[TuningRow], pad_id: int = 0) -> Batch:
    import torch

    width = max(len(r.ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    targets = torch.zeros((len(rows), width - 1), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row.ids)] = torch.tensor(row.ids)
        attention[i, : len(row.ids)] = 1
        targets[i, max(row.target_start, 1) - 1 : len(row.ids) - 1] = 1  # position t predicts token t+1
    return Batch(ids, attention, targets, torch.tensor([r.label for r in rows]))


class Tuner:
    """Trains `prompts` on real rows with one of the three losses; `weight_net` is kept for inspection."""

    def __init__(self, prompts: "LabelPrompts", config: TuningConfig, *, seed: int, pad_id: int = 0) -> None:
        import torch

        self.prompts, self.cfg, self.pad_id = prompts, config, pad_id
        self.rng = random.Random(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.weight_net = losses.weight_net()
        self.optimizer = torch.optim.AdamW([prompts.values], lr=config.learning_rate, weight_decay=0.0)
        self.weight_optimizer = torch.optim.AdamW(self.weight_net.parameters(), lr=config.weight_net_learning_rate)

    def fit(self, rows: Sequence[TuningRow], progress: Callable[[int, int], None] | None = None) -> list[dict]:
        """Train for `epochs`; returns one history entry per step."""
        self._check(rows)
        steps_per_epoch = -(-len(rows) // self.cfg.batch_size)
        total, history = self.cfg.epochs * steps_per_epoch, []
        for _ in range(self.cfg.epochs):
            order = list(range(len(rows)))
            self.rng.shuffle(order)
            for start in range(0, len(order), self.cfg.batch_size):
                batch = [rows[i] for i in order[start : start + self.cfg.batch_size]]
                history.append({"step": len(history) + 1, **self.step(batch, rows)})
                if progress:
                    progress(len(history), total)
        return history

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

    def step(self, rows: Sequence[TuningRow], pool: Sequence[TuningRow]) -> dict[str, Any]:
        """One optimisation step on `rows`; `pool` holds every training row (meta batches, triplets)."""
        import torch

        batch = collate(rows, self.pad_id)
        if self.cfg.loss == "lm":
            out = self.prompts(batch.ids, batch.attention, batch.labels)
            logp = losses.target_log_probs(out.logits[:, :-1], batch.ids[:, 1:])
            loss = losses.lm_loss(logp, batch.targets)
            self._update(loss)
            return {"loss": loss.item()}

        label_logp, hidden = self.prompts.score_all_labels(batch.ids, batch.attention)
        own = losses.own_label(label_logp, batch.labels)
        token_disc = losses.discriminative_token_loss(label_logp, batch.labels).detach()
        disc = self._meta_step(own, token_disc, batch, pool)
        with torch.no_grad():
            scores = self.weight_net(token_disc.unsqueeze(-1)).squeeze(-1)
        loss = losses.weighted_lm_loss(own, losses.token_weights(scores, batch.targets))
        record = {"weighted_loss": loss.item(), "disc_loss": disc}
        if self.cfg.loss == "dawgen":
            hinge = self._hinge(losses.own_label(hidden, batch.labels), scores, batch, rows, pool)
            loss = loss + self.cfg.hinge_weight * hinge
            record["hinge"] = hinge.item()
        self._update(loss)
        return {"loss": loss.item(), **record}

    def _update(self, loss: "torch.Tensor") -> None:
        self.optimizer.zero_grad()
        loss.backward(inputs=[self.prompts.values])
        self.optimizer.step()

    def _meta_step(self, own, token_disc, batch: Batch, pool: Sequence[TuningRow]) -> float:
        """The weight net's step on L_disc after a virtual, W-dependent prompt update (eq. 5)."""
        import torch

        scores = self.weight_net(token_disc.unsqueeze(-1)).squeeze(-1)
        inner = losses.weighted_lm_loss(own, losses.token_weights(scores, batch.targets))
        (grad,) = torch.autograd.grad(inner, self.prompts.values, create_graph=True, retain_graph=True)
        moved = self.prompts.values - self.cfg.meta_learning_rate * grad
        meta = batch if self.cfg.meta_batch == "same" else collate(self._draw(pool, len(batch.labels)), self.pad_id)
        meta_logp, _ = self.prompts.score_all_labels(meta.ids, meta.attention, values=moved)
        disc = losses.disc_loss(meta_logp, meta.labels, meta.targets)
        self.weight_optimizer.zero_grad()
        disc.backward(inputs=list(self.weight_net.parameters()))
        self.weight_optimizer.step()
        return disc.item()

    def _draw(self, pool: Sequence[TuningRow], n: int) -> list[TuningRow]:
        return [pool[self.rng.randrange(len(pool))] for _ in range(n)]

    def _hinge(self, own_hidden, scores, batch: Batch, rows: Sequence[TuningRow], pool: Sequence[TuningRow]):
        """L_dist (eq. 7) over each anchor's (anchor, same-label row, other-label row) triplet, each row's
        sentence vector weighted by the weight net (fixed here)."""
        import torch

        positives, negatives = [], []
        for row in rows:
            same = [r for r in pool if r.label == row.label and r is not row] or [row]
            other = [r for r in pool if r.label != row.label]
            positives.append(same[self.rng.randrange(len(same))])
            negatives.append(other[self.rng.randrange(len(other))])
        extra = collate(positives + negatives, self.pad_id)
        label_logp, hidden = self.prompts.score_all_labels(extra.ids, extra.attention)
        own = losses.own_label(hidden, extra.labels)
        with torch.no_grad():
            token_disc = losses.discriminative_token_loss(label_logp, extra.labels)
            extra_scores = self.weight_net(token_disc.unsqueeze(-1)).squeeze(-1)
        anchors = losses.sentence_vectors(own_hidden, losses.token_weights(scores, batch.targets, per_row=True))
        others = losses.sentence_vectors(own, losses.token_weights(extra_scores, extra.targets, per_row=True))
        n = len(rows)
        return losses.triplet_hinge(anchors, others[:n], others[n:], self.cfg.margin)
