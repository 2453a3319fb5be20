"""Learned per-row weights of the synthetic rows, anchored on the real few-shot rows (`paired+reweight`):
Ren et al. 2018, "Learning to Reweight Examples for Robust Deep Learning" (L2RW), one look-ahead per step.

L2RW (their Alg. 1, eq. 3-7) weighs each row i of a noisy training batch by how much up-weighting it
would lower the loss on a clean batch after one virtual SGD step: with ε_i = 0,
    θ'(ε) = θ − α ∇θ Σ_i ε_i ℓ_i(θ),   w̃_i = max(−∂L_clean(θ'(ε)) / ∂ε_i, 0),   w_i = w̃_i / Σ_j w̃_j
(all w_i = 0 when every w̃_i is 0), and trains on Σ w_i ℓ_i. At ε = 0 the virtual step leaves θ where
it is, so the derivative is exactly −α ∇L_clean(θ) · ∇ℓ_i(θ) (their §3.4): a row weighs what its
gradient agrees with the clean gradient, and a row whose gradient points against it (a wrong label)
weighs 0. α cancels in the normalisation, so L2RW has no hyper-parameter.

Here the clean batch is the step's real batch, whose gradient `paired` computes anyway (the real half),
and the noisy batch is the step's synthetic half. The dot products a_i = ∇ℓ_i · ∇L_real are taken on
the trainable parameters only, through the learner's own `loss(source, rows, smoothing, weights)` with
the weights a tensor ε: one backward with `create_graph` gives ∇θ Σ ε_i ℓ_i / n, its dot with the real
gradient differentiated by ε gives a_i / n for every row at once (backward-on-backward, as L2RW's own
implementation), and the same graph gives the rows' losses for the weighted update — one forward of
the synthetic batch, as in `paired`. The synthetic half's loss is Σ w_i ℓ_i / n with the weights
scaled to average 1 (the loop's absolute weights; the same update as L2RW's Σ w_i ℓ_i), so it keeps
`paired`'s loss mass.

Two ways to turn a_i into weights, one strategy each (strategies.REWEIGHT):
- `paired+l2rw` (mode `l2rw`): the paper's: clamp at 0, normalise over the batch.
- `paired+reweight` (mode `centred`): a_i / (1 − p_i), with p_i = exp(−ℓ_i) the model's probability of the row's label,
  is centred on its mean over the batch's rows of the same label, then clamped and normalised within
  each label. For two classes a_i = (1 − p_i) · (how the virtual real step moves row i's margin), so the
  division leaves the margin change alone, and the part of it that every row of a label shares — the
  real step's shift of the class prior — is what the centring removes. On MiniLM fine-tuned on 16-shot
  SST-2 that shared part dominates a_i: the paper's rule then weighs whole labels by the real batch's
  current class bias, and weighs a wrong-label row up by its large 1 − p_i (docs/fidelity.md has the
  measurements). A label with one row in the batch is not centred.

A static weight (`lineage["weight"]`, curation's `weight` action) is a prior: it multiplies row i's
term in the look-ahead loss, i.e. w̃_i, before the normalisation.
"""

from __future__ import annotations

import bisect
import math
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

if TYPE_CHECKING:
    import torch

    from fewforge.data.schema import Example

Mode = Literal["centred", "l2rw"]
# Bins of the report's histogram of each row's mean learned weight (weights average 1 per batch).
WEIGHT_BINS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)
EXAMPLE_ROWS = 5  # lowest- and highest-weighted rows kept in a cell's record


def lookahead_weights(
    alignment: "torch.Tensor",
    *,
    mode: Mode = "centred",
    labels: "torch.Tensor | None" = None,
    losses: "torch.Tensor | None" = None,
    prior: "torch.Tensor | None" = None,
) -> "torch.Tensor":
    """The batch's weights from each row's alignment a_i = ∇ℓ_i · ∇L_real (any positive scale), its label
    and its loss (`centred` only), times the prior; they average 1 over the batch (`l2rw`) or over each
    label's rows (`centred`), and are 0 where no row (of the label) agrees with the real batch."""
    import torch

    a = alignment.detach().float()
    groups = [torch.ones_like(a, dtype=torch.bool)]
    if mode == "centred":
        if labels is None or losses is None:
            raise ValueError("centred weights need the rows' labels and losses")
        a = a / (1 - torch.exp(-losses.detach().float())).clamp(min=1e-6)
        groups = [labels == label for label in labels.unique()]
        for g in groups:
            if int(g.sum()) > 1:
                a[g] = a[g] - a[g].mean()
    elif mode != "l2rw":
        raise ValueError(f"unknown reweighting mode {mode!r}")
    w = a.clamp(min=0)
    if prior is not None:
        w = w * prior.float()
    out = torch.zeros_like(w)
    for g in groups:
        total = w[g].sum()
        if torch.isfinite(total) and total > 0:
            out[g] = w[g] * (int(g.sum()) / total)
    return out


def reweighted_backward(
    loss: Callable[..., "torch.Tensor"],
    idx: list[int],
    smoothing: float,
    params: Sequence["torch.nn.Parameter"],
    real_grads: Sequence["torch.Tensor | None"],
    *,
    mode: Mode = "centred",
    labels: Sequence[int] | None = None,
    prior: Sequence[float] | None = None,
) -> tuple[float, "torch.Tensor"]:
    """Backward of the synthetic half weighted by the look-ahead: accumulates ∇θ Σ w_i ℓ_i / n into the
    parameters' `.grad` (`real_grads`, the real half's gradient, is a copy); returns the half's weighted
    loss and the weights w."""
    import torch

    device = params[0].device
    n = len(idx)
    eps = torch.ones(n, device=device, requires_grad=True)
    total = loss("syn", idx, smoothing, eps)  # Σ ε_i ℓ_i / n, differentiable in θ and ε
    grads = torch.autograd.grad(total, params, create_graph=True, allow_unused=True)
    terms = [(g * r).sum() for g, r in zip(grads, real_grads) if g is not None and r is not None]
    dot = torch.stack(terms).sum() if terms else None
    if dot is not None and dot.requires_grad:
        (alignment,) = torch.autograd.grad(dot, eps, retain_graph=True)  # a_i / n
    else:  # no real gradient (or none on these parameters): nothing to agree with
        alignment = torch.zeros(n, device=device)
    (rows,) = torch.autograd.grad(total, eps, create_graph=True)  # ℓ_i / n, still differentiable in θ
    weights = lookahead_weights(
        alignment,
        mode=mode,
        labels=torch.tensor(list(labels), device=device) if labels is not None else None,
        losses=rows.detach() * n,
        prior=torch.tensor(list(prior), device=device) if prior is not None else None,
    )
    weighted = (rows * weights.to(rows.dtype)).sum()
    if weighted.requires_grad:
        weighted.backward()
    return weighted.item(), weights


class WeightLog:
    """Every synthetic row's learned weights over a run: their mean per row (None: never drawn), the
    share of row draws weighted 0 and the batches that no row of agreed with the real batch."""

    def __init__(self, n_rows: int, mode: Mode = "centred") -> None:
        self.mode = mode
        self.sums = [0.0] * n_rows
        self.draws = [0] * n_rows
        self.zero = 0
        self.skipped = 0
        self.batches = 0

    def add(self, idx: Sequence[int], weights: "torch.Tensor") -> None:
        values = weights.tolist()
        self.batches += 1
        self.skipped += not any(values)
        for i, w in zip(idx, values):
            self.sums[i] += w
            self.draws[i] += 1
            self.zero += w == 0

    def means(self) -> list[float | None]:
        return [s / d if d else None for s, d in zip(self.sums, self.draws)]

    def summary(self) -> dict[str, Any]:
        drawn = [m for m in self.means() if m is not None]
        total = sum(self.draws)
        return {
            "mode": self.mode,  # Ren et al. 2018's look-ahead on the step's real batch: centred or as published
            "rows_drawn": len(drawn),
            "draws_per_row": round(total / len(drawn), 2) if drawn else 0.0,
            "zero_share": round(self.zero / total, 4) if total else None,
            "skipped_batches": self.skipped,
            "batches": self.batches,
        }


def describe(examples: Sequence["Example"], means: Sequence[float | None]) -> dict[str, Any]:
    """What the report shows of one run's learned weights: their distribution over the rows, the mean
    per label, the mean of rows an audit agreed / disagreed with (when the set was audited), and the
    lowest- and highest-weighted rows."""
    rows = [(e, m) for e, m in zip(examples, means) if m is not None]
    if not rows:
        return {}

    def mean(values: Sequence[float]) -> float | None:
        return round(math.fsum(values) / len(values), 4) if values else None

    out: dict[str, Any] = {
        "mean": mean([m for _, m in rows]),
        "histogram": {"edges": list(WEIGHT_BINS), "counts": histogram([m for _, m in rows])},
        "per_label": {
            label: mean([m for e, m in rows if e.label == label]) for label in dict.fromkeys(e.label for e, _ in rows)
        },
    }
    if any(_audit_agrees(e) is not None for e, _ in rows):  # an auditor's likeliest label is the row's, or not
        agree = [m for (e, m) in rows if _audit_agrees(e)]
        disagree = [m for (e, m) in rows if _audit_agrees(e) is False]
        out["by_audit"] = {"agree": mean(agree), "disagree": mean(disagree), "n_agree": len(agree),
                           "n_disagree": len(disagree)}
    ranked = sorted(rows, key=lambda r: r[1])
    out["lowest"] = [_example(e, m) for e, m in ranked[:EXAMPLE_ROWS]]
    out["highest"] = [_example(e, m) for e, m in ranked[::-1][:EXAMPLE_ROWS]]
    return out


def _audit_agrees(e: "Example") -> bool | None:
    audit = e.lineage.get("audit")
    if not isinstance(audit, dict) or "predicted" not in audit:
        return None
    return audit["predicted"] == e.label


def _example(e: "Example", weight: float) -> dict[str, Any]:
    audit = e.lineage.get("audit") if isinstance(e.lineage.get("audit"), dict) else None
    return {"id": e.id, "label": e.label, "weight": round(weight, 4), "text": " | ".join(e.inputs.values())[:200],
            **({"audit_score": round(audit["score"], 4)} if audit and "score" in audit else {})}


def histogram(values: Sequence[float], edges: Sequence[float] = WEIGHT_BINS) -> list[int]:
    """Counts per bin [edges[k], edges[k+1]), the last bin open-ended (≥ edges[-1])."""
    counts = [0] * len(edges)
    for v in values:
        counts[max(bisect.bisect_right(edges, v) - 1, 0)] += 1
    return counts
