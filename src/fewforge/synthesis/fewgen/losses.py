"""Generator-tuning objectives: FewGen's weighted LM loss with its weight net, and DawGen's
distribution-aligned hinge (DawGen §3.2, eq. 3-7; FewGen, Meng et al. 2023, eq. 4-5).

Every function works on tensors the tuner already has, so each loss is testable on a hand-made batch:
    label_logp  [L, B, T]  log Pr(x_t | x_<t, Q_l): each row's own tokens scored under every label's prompt
    labels      [B]        the row's label index
    mask        [B, T]     1 where position t holds a target token of the row (not prompt, not padding)
    hidden      [B, T, d]  last-layer hidden states of the row under its own label's prompt

Choices the papers leave open, and ours (docs/fidelity.md lists them):
- eq. 5 divides probabilities, Pr(x_t | Q_y) / Σ_l Pr(x_t | Q_l): a softmax over labels of the log-probs.
  FewGen's code takes the softmax over raw logits instead; the paper's form is what we implement.
- The weight net reads one scalar per token, its discriminative loss, through FewGen's 1→100→1 MLP; its
  scores are normalised by a softmax over the valid tokens of the batch (FewGen's code), so the weighted
  loss is a weighted mean that stays on the LM loss's scale.
- In eq. 7, W·Z is a sentence vector: the row's hidden states averaged with the row's own token weights
  (a softmax over that row's tokens). Each anchor row gets one triplet: a random other row of its label
  and a random row of another label (tune.py), so batch 2 (the paper's) still has positives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fewforge.generators.soft_prompts import target_log_probs

__all__ = ["target_log_probs"]  # re-exported: the tuner scores rows with it

if TYPE_CHECKING:
    import torch

# FewGen's weight net width (src/generation_trainer.py: WeightNet(100)).
WEIGHT_NET_HIDDEN = 100


def own_label(per_label: "torch.Tensor", labels: "torch.Tensor") -> "torch.Tensor":
    """[L, B, ...] -> [B, ...]: each row's values (log-probs, hidden states) under its own label's prompt."""
    index = labels.view(1, -1, *[1] * (per_label.dim() - 2)).expand(1, *per_label.shape[1:])
    return per_label.gather(0, index).squeeze(0)


def lm_loss(logp: "torch.Tensor", mask: "torch.Tensor") -> "torch.Tensor":
    """Eq. 3: the mean negative log-likelihood of the rows' tokens under their label's prompt."""
    mask = mask.to(logp.dtype)
    return -(logp * mask).sum() / mask.sum().clamp_min(1.0)


def discriminative_token_loss(label_logp: "torch.Tensor", labels: "torch.Tensor") -> "torch.Tensor":
    """Eq. 5 per token [B, T]: -log Pr(x_t | Q_y) / Σ_l Pr(x_t | Q_l), high where the token does not
    single out its row's label."""
    import torch

    return -own_label(torch.log_softmax(label_logp, dim=0), labels)


def disc_loss(label_logp: "torch.Tensor", labels: "torch.Tensor", mask: "torch.Tensor") -> "torch.Tensor":
    """L_disc (eq. 5): the mean per-token discriminative loss over valid tokens; the weight net's
    objective in the bi-level step."""
    return lm_loss(-discriminative_token_loss(label_logp, labels), mask)


def weight_net(hidden: int = WEIGHT_NET_HIDDEN) -> "torch.nn.Module":
    """FewGen's weight net: a token's discriminative loss (one scalar) -> its unnormalised weight."""
    from torch import nn

    return nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def token_weights(scores: "torch.Tensor", mask: "torch.Tensor", *, per_row: bool = False) -> "torch.Tensor":
    """Softmax of the weight net's scores [B, T] over the valid tokens of the batch (or of each row with
    `per_row`); 0 at invalid positions."""
    import torch

    masked = scores.float().masked_fill(mask == 0, float("-inf"))
    if per_row:
        weights = torch.softmax(masked, dim=-1)
    else:
        weights = torch.softmax(masked.flatten(), dim=0).view_as(masked)
    return torch.nan_to_num(weights, nan=0.0)  # a row without valid tokens


def weighted_lm_loss(logp: "torch.Tensor", weights: "torch.Tensor") -> "torch.Tensor":
    """Eq. 4: Σ_t w_t · -log Pr(x_t | Q_y), with `weights` summing to 1 over the batch's valid tokens."""
    return -(weights * logp).sum()


def sentence_vectors(hidden: "torch.Tensor", weights: "torch.Tensor") -> "torch.Tensor":
    """W·Z of eq. 7 [B, d]: each row's hidden states [B, T, d] summed with its per-row token weights [B, T]."""
    return (weights.unsqueeze(-1).to(hidden.dtype) * hidden).sum(dim=1)


def triplet_hinge(
    anchors: "torch.Tensor", positives: "torch.Tensor", negatives: "torch.Tensor", margin: float = 1.0
) -> "torch.Tensor":
    """L_dist (eq. 7) over triplets [B, d]: the mean of max(0, margin - cos(anchor, positive) +
    cos(anchor, negative)), the positive of the anchor's label and the negative of another."""
    import torch

    cos = torch.nn.functional.cosine_similarity
    return torch.relu(margin - cos(anchors.float(), positives.float()) + cos(anchors.float(), negatives.float())).mean()
