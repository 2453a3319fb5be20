"""What curation is made of: its options (`CurateConfig`, a grid method's `curate:`), what an auditor
gets (`AuditContext`) and the auditor contract (`Auditor.audit(ctx, rows) -> Audit`).

An auditor gives every synthetic row a probability for each of the task's labels; the row's score is
the probability of its intended label. Auditors learn only from the real few-shot *train* rows (or from
nothing): never from the dev rows a grid chooses checkpoints on, never from the test rows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fewforge.data.schema import Example
from fewforge.tasks.base import Task

Action = Literal["keep", "filter", "relabel", "weight"]


class CurateConfig(BaseModel):
    """A label audit of a synthetic set and what to do with its scores (the data card records it all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    auditor: str = Field(
        "fewshot", description="who scores the rows: fewshot (linear probe on the few-shot train split), "
        "generator (the generator scoring the verbalizers), teacher (a DAFTT teacher tuned on the train split)"
    )
    action: Action = Field(
        "keep", description="keep (score only), filter (drop low scores), relabel (take the auditor's label when "
        "it is confident), weight (the score becomes the row's training weight)"
    )
    threshold: float | None = Field(None, ge=0, le=1, description="filter: drop rows whose score is below this")
    bottom: float | None = Field(
        None, ge=0, lt=1, description="filter: drop this share of each label's rows, lowest scores first"
    )
    confidence: float = Field(
        0.9, gt=0, le=1, description="relabel: replace a label when the auditor gives another label at least this"
    )
    normalize: bool = Field(True, description="weight: scale the weights so that they average 1 over the set")
    overgenerate: float = Field(
        1.0, ge=1.0, description="the method synthesizes ceil(per_label * this) rows per label; after the action "
        "each label keeps its per_label best-scored rows, so a filtered set is topped back up to per_label"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="the auditor's own options")

    @model_validator(mode="after")
    def _check(self) -> "CurateConfig":
        if self.action == "filter" and (self.threshold is None) == (self.bottom is None):
            raise ValueError("action filter needs one of threshold (a score) or bottom (a share of each label)")
        if self.action != "filter" and (self.threshold is not None or self.bottom is not None):
            raise ValueError(f"threshold and bottom belong to action filter, not {self.action}")
        return self


class AuditorOptions(BaseModel):
    """Base of every auditor's options: typos are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class AuditContext:
    """What an auditor may use: the task, the real few-shot train rows (never dev or test), the generator
    (for auditors that score through it), the split seed, a work folder and a progress callback."""

    task: Task
    seed: int
    train: Sequence[Example] = ()
    generator: Any = None
    workdir: Path | None = None
    progress: Callable[[int, int], None] | None = None


@dataclass
class Audit:
    """One probability per task label (in `task.label_names` order) for each audited row, and facts for
    the data card (the chosen C, the prompt, the teacher, ...)."""

    probs: list[list[float]]
    info: dict[str, Any] = field(default_factory=dict)


class Auditor(ABC):
    name: ClassVar[str]
    Options: ClassVar[type[AuditorOptions]]
    reads_fewshot: ClassVar[bool] = False  # learns from the few-shot train rows: one curated set per split
    needs_scoring: ClassVar[bool] = False  # scores through the generator (`Generator.score`)
    needs_adapters: ClassVar[bool] = False  # sends a tuned adapter with its requests (a LoRA teacher)

    def __init__(self, options: AuditorOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()

    @abstractmethod
    def audit(self, ctx: AuditContext, rows: Sequence[Example]) -> Audit:
        """Label probabilities for every row of `rows`."""
