"""Decoding pieces of the hf backend: per-row seeded sampling (a candidate's text depends on its seed
alone, not on its batch) and padded id/mask tensors with the position ids left padding needs."""

from __future__ import annotations

from typing import Any


class SeededSampler:
    """Temperature / top-k / top-p sampling with one torch.Generator per batch row.

    Returns scores that are -inf everywhere except the drawn token, so greedy decoding picks it.
    """

    def __init__(self, seeds: list[int], temperature: float, top_k: int, top_p: float) -> None:
        self.seeds, self.temperature, self.top_k, self.top_p = seeds, temperature, top_k, top_p
        self.generators: list[Any] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if not self.generators:
            self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        logits = scores.float() / self.temperature
        if 0 < self.top_k < logits.shape[-1]:
            kth = torch.topk(logits, self.top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
            probs = sorted_logits.softmax(-1)
            # Drop a token once the mass before it already reaches top_p (the first always stays).
            sorted_logits = sorted_logits.masked_fill(probs.cumsum(-1) - probs >= self.top_p, float("-inf"))
            logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
        probs = logits.softmax(-1)
        chosen = torch.stack([torch.multinomial(probs[r], 1, generator=g) for r, g in enumerate(self.generators)])
        return torch.full_like(scores, float("-inf")).scatter(-1, chosen, 0.0)


def mask_positions(mask: Any) -> Any:
    """Position ids counted from each row's first unmasked token (what `generate` derives for left padding)."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def padded(rows: list[list[int]], pad: int, device: Any, left: bool = True) -> tuple[Any, Any]:
    """(ids, attention mask) of `rows` padded with `pad` to the longest, on `device`."""
    import torch

    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        where = slice(width - len(row), width) if left else slice(0, len(row))
        ids[r, where] = torch.tensor(row, dtype=torch.long)
        mask[r, where] = 1
    return ids.to(device), mask.to(device)
