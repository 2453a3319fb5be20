"""The `fewshot` auditor: the cheap learner (linear-probe: frozen MiniLM embeddings + logistic regression)
trained on the real few-shot train split only, then asked for every synthetic row's label probabilities.

The probe normally chooses its regularisation C on the few-shot dev set; an auditor must not see dev
(the grid chooses every learner's checkpoint there), so C is chosen by stratified k-fold
cross-validation on the train split (k = min(`folds`, rows of the rarest label); best mean fold
accuracy, ties: lower fold loss, then the smaller C), then the head is refitted on the whole train split.
With a single row per label no fold can be held out, and C is `fallback_C`.
"""

from __future__ import annotations

from typing import Any, Sequence

from pydantic import Field

from fewforge.data.schema import Example
from fewforge.errors import DataError
from fewforge.synthesis.curation.base import Audit, AuditContext, Auditor, AuditorOptions


class FewShotOptions(AuditorOptions):
    embedder: str | None = Field(None, description="sentence-transformers model dir (None: the packaged MiniLM)")
    c_grid: tuple[float, ...] = Field((0.1, 1.0, 10.0, 100.0), min_length=1, description="C values tried")
    C: float | None = Field(None, gt=0, description="a fixed C instead of cross-validation")
    folds: int = Field(4, ge=2, description="cross-validation folds at most (the rarest label's rows cap them)")
    fallback_C: float = Field(1.0, gt=0, description="C when there are too few rows to cross-validate")


class FewShotAuditor(Auditor):
    name = "fewshot"
    Options = FewShotOptions
    options: FewShotOptions
    reads_fewshot = True

    def audit(self, ctx: AuditContext, rows: Sequence[Example]) -> Audit:
        import numpy as np

        from fewforge.learners.base import label_ids
        from fewforge.learners.linear_probe import LinearProbe, LinearProbeConfig, fit_logistic_head, head_proba

        task, o = ctx.task, self.options
        if not ctx.train:
            raise DataError(
                "the fewshot auditor learns from the real few-shot train split, and there is none",
                hint="curate inside a grid (it samples the split), or use auditor: generator",
            )
        probe = LinearProbe(task, LinearProbeConfig(embedder=o.embedder), seed=ctx.seed)
        x = probe.features(list(ctx.train))
        y = np.asarray(label_ids(task, ctx.train, "train"))
        n_labels = len(task.label_names)
        c, cv = (o.C, None) if o.C is not None else _cross_validate(x, y, sorted(o.c_grid), o, n_labels, ctx.seed)
        head, *_ = fit_logistic_head(x, y, np.ones(len(y)), x, y, [c], n_labels)
        probs = head_proba(head, probe.features(list(rows)), n_labels) if rows else np.zeros((0, n_labels))
        if ctx.progress is not None:
            ctx.progress(len(rows), len(rows))
        info = {"learner": "linear-probe", "train_rows": len(y), "C": c, "cross_validation": cv,
                "embedder": o.embedder or "packaged all-MiniLM-L6-v2"}
        return Audit([list(map(float, p)) for p in probs], info)


def _cross_validate(x: Any, y: Any, grid: list[float], o: FewShotOptions, n_labels: int, seed: int) -> tuple[float, Any]:
    """(the C with the best mean held-out accuracy, ties: lower held-out loss, then the smaller C; facts)."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    from fewforge.learners.linear_probe import fit_logistic_head

    k = min(o.folds, int(np.bincount(y).min()) if len(y) else 0)
    if k < 2 or len(set(y.tolist())) < 2:
        return o.fallback_C, {"folds": 0, "reason": "too few rows per label to hold any out"}
    accuracy = np.zeros(len(grid))
    loss = np.zeros(len(grid))
    for fit_idx, held_idx in StratifiedKFold(k, shuffle=True, random_state=seed % 2**32).split(x, y):
        _, history, _, _ = fit_logistic_head(
            x[fit_idx], y[fit_idx], np.ones(len(fit_idx)), x[held_idx], y[held_idx], grid, n_labels
        )
        accuracy += [h["dev_accuracy"] for h in history]
        loss += [h["dev_loss"] for h in history]
    best = max(range(len(grid)), key=lambda i: (accuracy[i], -loss[i], -i))
    per_c = {str(c): round(float(a / k), 4) for c, a in zip(grid, accuracy)}
    return grid[best], {"folds": k, "accuracy": per_c, "chosen_accuracy": round(float(accuracy[best] / k), 4)}
