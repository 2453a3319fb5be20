"""The dev guard of generator tuning (beyond FewGen and DawGen): the prompts are measured on the split's
dev rows before tuning (epoch 0, the untuned natural prompt) and after every epoch, and the epoch that is
best on dev is kept, ties to the earliest. A tuned generator is then never worse on the user's own
held-out rows than the prompt it started from — by the guard's own measure.

Two measures per epoch, both on dev rows written exactly like the training rows (context, text, EOS):
- the generative-classifier accuracy: each dev row is scored under every label's prompt (the sum of its
  text tokens' log-probabilities) and predicted as the argmax label. This is what label fidelity needs of
  a generator — its label's prompt must make its label's rows likelier than the other prompts do;
- the dev LM loss: the mean negative log-likelihood of the dev rows' tokens under their own label's prompt.
`criterion` picks which one decides (a lower LM loss with the labels mixed up is what the tuned prefixes
showed on SST-2); the other is reported beside it.

A third criterion, `audit`, measures what the guard is for — the rows the prompts write: an `audit`
function (the method's: synthesis/fewgen/audit.py) samples a few rows per label from the epoch's prompts
with the method's own decoding and returns the share an auditor labels as intended. On SST-2 the epoch
best by dev accuracy wrote rows carrying their label less often than the untuned prompt's (64 vs 76,
docs/results/generator-tuning-guard.md): scoring real rows under a prompt does not measure what sampling
from it writes.

Also here, since the guard already holds the untuned prompts: each label's drift from its start, relative
to the distance between the labels' starting prompts (the prompts of SST-2's two labels differ in one
token, so a drift of 1.0 already crosses the whole gap between them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

if TYPE_CHECKING:
    import torch

    from fewforge.generators.soft_prompts import LabelPrompts
    from fewforge.synthesis.fewgen.rows import TuningRow

GuardCriterion = Literal["accuracy", "loss", "audit", "none"]
SCORE_CHUNK = 8  # dev rows per forward (times the label count)
# criterion -> (the epoch record's key, higher is better, what the card calls it)
MEASURES = {
    "accuracy": ("dev_accuracy", True, "dev generative-classifier accuracy"),
    "loss": ("dev_loss", False, "dev LM loss"),
    "audit": ("audit_fidelity", True, "audited label fidelity of rows sampled"),
    "audit-worst": ("audit_worst_label", True, "worst label's audited fidelity of rows sampled"),
}
# audit(prompts) -> {"fidelity": share of sampled rows labelled as intended, "rows": rows audited, ...}
AuditFn = Callable[["LabelPrompts"], dict[str, Any]]


@dataclass(frozen=True)
class DevMeasures:
    accuracy: float  # generative-classifier accuracy on the dev rows
    loss: float  # mean token NLL of the dev rows under their own label's prompt


def dev_measures(prompts: "LabelPrompts", rows: Sequence["TuningRow"], pad_id: int = 0) -> DevMeasures:
    """Score every dev row under every label's prompt (no gradients)."""
    import torch

    from fewforge.synthesis.fewgen import losses
    from fewforge.synthesis.fewgen.rows import collate

    correct, nll, tokens = 0, 0.0, 0.0
    with torch.no_grad():
        for start in range(0, len(rows), SCORE_CHUNK):
            batch = collate(rows[start : start + SCORE_CHUNK], pad_id)
            label_logp, _ = prompts.score_all_labels(batch.ids, batch.attention)  # [L, B, T-1]
            mask = batch.targets.to(label_logp.dtype)
            per_label = (label_logp * mask).sum(-1)  # [L, B]: each row's log-likelihood under each label
            correct += int((per_label.argmax(0) == batch.labels).sum())
            nll -= float((losses.own_label(label_logp, batch.labels) * mask).sum())
            tokens += float(mask.sum())
    return DevMeasures(correct / len(rows), nll / max(tokens, 1.0))


def drift(values: "torch.Tensor", start: "torch.Tensor") -> list[float]:
    """Per label: ||Q_l - Q_l(start)|| / the mean distance of Q_l(start) to the other labels' starts."""
    import torch

    with torch.no_grad():
        flat, first = values.detach().flatten(1).float(), start.flatten(1).float()
        moved = (flat - first).norm(dim=1)
        gaps = torch.cdist(first, first)
        n = first.shape[0]
        mean_gap = gaps.sum(1) / max(n - 1, 1)
        return [round(float(m / g), 4) if g > 0 else float("inf") for m, g in zip(moved, mean_gap)]


@dataclass
class EpochGuard:
    """Measures the prompts after each epoch (epoch 0: untuned) and keeps a copy of the best epoch's."""

    prompts: "LabelPrompts"
    dev: Sequence["TuningRow"]
    criterion: GuardCriterion = "accuracy"
    pad_id: int = 0
    audit: AuditFn | None = None  # required by criterion "audit"
    audit_score: Literal["overall", "worst_label"] = "overall"  # criterion audit: which share decides
    epochs: list[dict[str, Any]] = field(default_factory=list)
    kept_epoch: int | None = None
    _start: Any = None
    _best: Any = None

    def __post_init__(self) -> None:
        from fewforge.errors import ConfigError

        if self.criterion == "audit" and self.audit is None:
            raise ConfigError(
                "guard: audit samples rows from each epoch's prompts, and this tuning has no sampler to do it",
                hint="tune through the fewgen or dawgen method (it samples and audits), or use guard: accuracy",
            )
        self._start = self.prompts.values.detach().clone()

    @property
    def active(self) -> bool:
        if self.criterion == "audit":
            return True  # the auditor learns from the train rows: it needs no dev rows
        return self.criterion != "none" and bool(self.dev)

    def measure(self, epoch: int) -> dict[str, Any]:
        """Record epoch `epoch`'s dev measures, audit and drift; keeps these prompts if they are the best
        so far (strictly better: ties stay with the earlier epoch, so the untuned prompts win ties)."""
        record: dict[str, Any] = {"epoch": epoch, "drift": drift(self.prompts.values, self._start)}
        if self.dev:
            measures = dev_measures(self.prompts, self.dev, self.pad_id)
            record.update(dev_accuracy=round(measures.accuracy, 4), dev_loss=round(measures.loss, 4))
        if self.audit is not None:
            audited = self.audit(self.prompts)
            record.update({f"audit_{k}": round(v, 4) if isinstance(v, float) else v for k, v in audited.items()})
        self.epochs.append(record)
        if self.active and (self.kept_epoch is None or self._better(record, self.epochs[self.kept_epoch])):
            self.kept_epoch, self._best = epoch, self.prompts.values.detach().clone()
        return record

    @property
    def _measure(self) -> tuple[str, bool, str]:
        if self.criterion == "audit" and self.audit_score == "worst_label":
            return MEASURES["audit-worst"]
        return MEASURES[self.criterion]

    def _better(self, new: dict[str, Any], old: dict[str, Any]) -> bool:
        key, higher, _ = self._measure
        return new[key] > old[key] if higher else new[key] < old[key]

    def restore(self) -> None:
        """Put the kept epoch's values back into the prompts (a no-op without a guard)."""
        import torch

        if self.active and self._best is not None:
            with torch.no_grad():
                self.prompts.values.copy_(self._best)

    def summary(self) -> dict[str, Any]:
        """What the set's card says: which epoch was kept and why, with every epoch's measures."""
        last = len(self.epochs) - 1
        if not self.active:
            why = "no dev rows to measure on" if not self.dev else "guard: none"
            return {"criterion": self.criterion, "kept_epoch": last, "why": f"{why}: the last epoch is kept", "epochs": self.epochs}
        key, _, name = self._measure
        kept = self.epochs[self.kept_epoch or 0]
        others = ", ".join(f"{e['epoch']}: {e[key]}" for e in self.epochs if e is not kept)
        which = "the untuned prompts (epoch 0)" if self.kept_epoch == 0 else f"epoch {self.kept_epoch} of {last}"
        on = f"{kept.get('audit_rows', 0)} rows" if self.criterion == "audit" else f"{len(self.dev)} dev rows"
        why = f"{which}: best {name} on {on}, {kept[key]} (other epochs {others}; ties go to the earliest)"
        return {
            "criterion": self.criterion,
            "kept_epoch": self.kept_epoch,
            "why": why,
            "untuned_dev_accuracy": self.epochs[0].get("dev_accuracy"),
            "kept_dev_accuracy": kept.get("dev_accuracy"),
            "untuned_audit_fidelity": self.epochs[0].get("audit_fidelity"),
            "kept_audit_fidelity": kept.get("audit_fidelity"),
            "epochs": self.epochs,
        }
