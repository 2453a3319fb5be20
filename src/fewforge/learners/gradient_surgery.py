"""Gradient surgery between the real and the synthetic gradient (DawGen §3.3, eq. 8–10): pure tensor code.

Per step the learner computes δ_real (the gradient of the real batch's loss) and δ_syn (the synthetic
batch's), on the trainable parameters only. When they conflict (δ_syn · δ_real < 0), the component of
δ_syn along δ_real is removed, δ'_syn = δ_syn − (δ_syn · δ_real / ‖δ_real‖²) δ_real, so the synthetic
data can never push against what the real rows ask for; otherwise δ'_syn = δ_syn. The update is
δ_real + ε · δ'_syn. The paper gives no value for ε; 1 (the plain sum when nothing conflicts, the same
update as `paired`) is the default.

This is PCGrad (Yu et al., 2020) with the real gradient as the one never projected: only δ_syn yields.
Beyond the paper, the direction δ_syn is projected against may be a steadier estimate of the real
gradient than one small batch's (`Reference`: all real rows, or a moving average); the update still adds
the batch's own δ_real.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch


@dataclass(frozen=True)
class SurgeryRecord:
    """What one step's surgery did: cos(δ_real, δ_syn), whether they conflicted, and ‖projection removed‖."""

    cosine: float
    conflict: bool
    removed_norm: float

    def as_dict(self) -> dict[str, float | bool]:
        return asdict(self)


def project(syn: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, SurgeryRecord]:
    """δ'_syn for flat vectors `syn` and `real` (eq. 9): `syn` without its component against `real`."""
    dot = torch.dot(syn, real)
    real_sq = torch.dot(real, real)
    norms = syn.norm() * real_sq.sqrt()
    cosine = (dot / norms).item() if norms > 0 else 0.0
    if dot >= 0 or real_sq == 0:
        return syn, SurgeryRecord(cosine=cosine, conflict=False, removed_norm=0.0)
    removed = (dot / real_sq) * real
    return syn - removed, SurgeryRecord(cosine=cosine, conflict=True, removed_norm=removed.norm().item())


def combine(
    real: Sequence[torch.Tensor | None],
    syn: Sequence[torch.Tensor | None],
    epsilon: float = 1.0,
    reference: Sequence[torch.Tensor | None] | None = None,
) -> tuple[list[torch.Tensor], SurgeryRecord]:
    """Per-parameter update gradients δ_real + ε · δ'_syn (eq. 10) from per-parameter gradients.
    `reference`: the direction δ_syn is projected against (a steadier one than the batch's δ_real, see
    `Reference`); the paper's rule, None, projects against δ_real itself.

    The dot products run over all trainable parameters together (one flat vector), as in the paper; a
    parameter without a gradient from one source counts as zero there."""
    if len(real) != len(syn):
        raise ValueError(f"{len(real)} real gradients but {len(syn)} synthetic ones")
    like = [r if r is not None else s for r, s in zip(real, syn)]
    if any(t is None for t in like):
        raise ValueError("a parameter has no gradient from either source")
    flat_real, flat_syn = _flat(real, like), _flat(syn, like)
    against = flat_real if reference is None else _flat(reference, like)
    projected, record = project(flat_syn, against)
    update = flat_real + epsilon * projected
    out, start = [], 0
    for t in like:
        out.append(update[start : start + t.numel()].view_as(t))
        start += t.numel()
    return out, record


def _flat(grads: Sequence[torch.Tensor | None], like: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([(g if g is not None else torch.zeros_like(t)).reshape(-1) for g, t in zip(grads, like)])


REFERENCE_EVERY = 10  # steps between recomputations of the all-real reference (32 rows: cheap)
REFERENCE_DECAY = 0.9  # the moving average's per-step decay: about the last 10 real batches


class Reference:
    """The direction the synthetic gradient yields to (beyond the paper, issue 29). The paper's rule,
    `batch`, projects against the step's real-batch gradient: with 4 real rows a noisy direction, which
    conflicted on about half the steps on SST-2. Two steadier ones:
    Strategies `paired+gs` (batch), `paired+gs-all` (all-real) and `paired+gs-ema` (ema):
    - `all-real`: the gradient of the mean loss over every real training row (they are few: 32 at 16
      shots), recomputed every `every` steps at the current parameters;
    - `ema`: an exponential moving average of the real-batch gradients, `decay` per step.
    """

    def __init__(self, kind: str, every: int = REFERENCE_EVERY, decay: float = REFERENCE_DECAY) -> None:
        self.kind, self.every, self.decay = kind, every, decay
        self.value: list[torch.Tensor | None] | None = None
        self.steps = 0

    def due(self) -> bool:
        """Whether `all-real` must recompute its gradient before this step."""
        return self.kind == "all-real" and self.steps % self.every == 0

    def set(self, grads: Sequence[torch.Tensor | None]) -> None:
        self.value = [None if g is None else g.detach().clone() for g in grads]

    def update(self, real: Sequence[torch.Tensor | None]) -> Sequence[torch.Tensor | None] | None:
        """Advance one step with this step's real-batch gradient; returns what to project against (None:
        the real-batch gradient itself)."""
        self.steps += 1
        if self.kind == "batch":
            return None
        if self.kind == "ema":
            if self.value is None:
                self.set(real)
            else:
                self.value = [
                    r if v is None else v if r is None else self.decay * v + (1 - self.decay) * r.detach()
                    for v, r in zip(self.value, real)
                ]
        return self.value


def conflict_rate(records: Sequence[SurgeryRecord | dict]) -> float | None:
    """Share of steps whose gradients conflicted (None without records)."""
    flags = [r.conflict if isinstance(r, SurgeryRecord) else bool(r["conflict"]) for r in records]
    return sum(flags) / len(flags) if flags else None
