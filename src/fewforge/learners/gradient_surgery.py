"""Gradient surgery between the real and the synthetic gradient (DawGen §3.3, eq. 8–10): pure tensor code.

Per step the learner computes δ_real (the gradient of the real batch's loss) and δ_syn (the synthetic
batch's), on the trainable parameters only. When they conflict (δ_syn · δ_real < 0), the component of
δ_syn along δ_real is removed, δ'_syn = δ_syn − (δ_syn · δ_real / ‖δ_real‖²) δ_real, so the synthetic
data can never push against what the real rows ask for; otherwise δ'_syn = δ_syn. The update is
δ_real + ε · δ'_syn. The paper gives no value for ε; 1 (the plain sum when nothing conflicts, the same
update as `paired`) is the default.

This is PCGrad (Yu et al., 2020) with the real gradient as the one never projected: only δ_syn yields.
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
    real: Sequence[torch.Tensor | None], syn: Sequence[torch.Tensor | None], epsilon: float = 1.0
) -> tuple[list[torch.Tensor], SurgeryRecord]:
    """Per-parameter update gradients δ_real + ε · δ'_syn (eq. 10) from per-parameter gradients.

    The dot products run over all trainable parameters together (one flat vector), as in the paper; a
    parameter without a gradient from one source counts as zero there."""
    if len(real) != len(syn):
        raise ValueError(f"{len(real)} real gradients but {len(syn)} synthetic ones")
    like = [r if r is not None else s for r, s in zip(real, syn)]
    if any(t is None for t in like):
        raise ValueError("a parameter has no gradient from either source")
    flat_real = torch.cat([(r if r is not None else torch.zeros_like(t)).reshape(-1) for r, t in zip(real, like)])
    flat_syn = torch.cat([(s if s is not None else torch.zeros_like(t)).reshape(-1) for s, t in zip(syn, like)])
    projected, record = project(flat_syn, flat_real)
    update = flat_real + epsilon * projected
    out, start = [], 0
    for t in like:
        out.append(update[start : start + t.numel()].view_as(t))
        start += t.numel()
    return out, record


def conflict_rate(records: Sequence[SurgeryRecord | dict]) -> float | None:
    """Share of steps whose gradients conflicted (None without records)."""
    flags = [r.conflict if isinstance(r, SurgeryRecord) else bool(r["conflict"]) for r in records]
    return sum(flags) / len(flags) if flags else None
