"""The rows generator tuning learns from, and their batches: what the tuner (tune.py) and the dev guard
(guard.py) both read, kept apart so neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import torch


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
