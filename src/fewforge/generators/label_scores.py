"""Label choice among verbalizers through a generator's `score()` (DESIGN.md §4), written once for every
caller: the `generator-zero-shot` learner, DAFTT's annotating teacher (`adapter=` its LoRA), and the
`generator` / `teacher` auditors of synthetic-data curation.

For each prompt, every label's verbalizer is scored as a continuation of it; the label's score is the
verbalizer's summed natural-log probability (`normalize="mean"`: per token, for multi-token words), and
the probabilities are the softmax over the labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from fewforge.generators.base import AdapterRequest

Normalize = Literal["sum", "mean"]


@dataclass(frozen=True)
class LabelScores:
    """One prompt's label scores, in the order of the verbalizers given."""

    logprobs: tuple[float, ...]  # each verbalizer's log-probability (summed, or per token with "mean")
    probs: tuple[float, ...]  # the softmax over the labels

    @property
    def best(self) -> int:
        """The index of the likeliest label (the first on a tie)."""
        return max(range(len(self.probs)), key=lambda k: self.probs[k])


def softmax(values: Sequence[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def score_labels(
    generator: Any,
    prompts: Sequence[str],
    words: Sequence[str],
    *,
    adapter: AdapterRequest | None = None,
    normalize: Normalize = "sum",
) -> list[LabelScores]:
    """Score every word of `words` (each label's verbalizer, with its leading separator) after every
    prompt, in one `generator.score` call: one `LabelScores` per prompt."""
    if not prompts:
        return []
    kwargs = {"adapter": adapter} if adapter is not None else {}  # backends written before adapters
    scores = generator.score([p for p in prompts for _ in words], [w for _ in prompts for w in words], **kwargs)
    n = len(words)
    out = []
    for i in range(len(prompts)):
        row = scores[i * n : (i + 1) * n]
        values = tuple(s.mean if normalize == "mean" else s.logprob for s in row)
        out.append(LabelScores(values, tuple(softmax(values))))
    return out
