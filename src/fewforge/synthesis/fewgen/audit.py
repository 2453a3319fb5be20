"""The `guard: audit` criterion's measure (guard.py): sample a few rows per label from an epoch's prompts
exactly as the method's final sampling does, and count the share an auditor labels as intended.

- Sampling: the method's own generation loop (ZeroGen's, with FewGen's per-label adapters, decoding,
  start words and post-processing) with `per_label = guard_rows`, one round (no top-ups: a prompt whose
  rows the filters drop pays for it in the count) and a sampling seed derived apart from the final set's,
  so the rows the guard judges are never the rows the set is made of. The epoch's prompts are saved as an
  adapter file and sent like the final set's, under the model's own attention implementation.
- Auditing: the `fewshot` auditor (curation/fewshot.py: frozen MiniLM + logistic regression), trained on
  the split's train and dev rows — both are the method's to read (the dev guard reads dev too); more rows
  make a steadier auditor at 16 shots. A row counts when the auditor's most likely label is its own.
- The epoch's score: the share over all its rows, or (`guard_audit: worst_label`) the smallest of the
  labels' shares. A 64-row auditor leans to one label (on SST-2 it called 75% of the untuned prompt's
  positive rows positive, 47% of its negative rows negative), and a prompt that writes more of that
  label's words then gains on the overall share while its other label's rows get worse.
An epoch with no row left after the filters scores 0: it wrote nothing usable.
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from fewforge.fingerprint import derive_seed
from fewforge.hf import attention_implementation
from fewforge.synthesis.base import SynthesisContext

if TYPE_CHECKING:
    from fewforge.generators.soft_prompts import LabelPrompts
    from fewforge.synthesis.fewgen.method import FewGen

log = logging.getLogger(__name__)


def probe_method(method: "FewGen") -> "FewGen":
    """A copy of `method` that samples the guard's rows: guard_rows per label, one round, its own seed."""
    c = method.config
    probe = c.model_copy(
        update={"per_label": c.tuning.guard_rows, "max_rounds": 1, "seed": derive_seed(c.seed, "guard-audit")}
    )
    return type(method)(probe)


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Errors only from logger `name` for a block: one round of guard_rows per label often comes up a row
    short after the filters; the audit counts the rows that are left, and the user has nothing to fix."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


class GuardAudit:
    """`audit(prompts)` for the epoch guard: saves the prompts as `folder/epoch-<n>.safetensors`, samples
    from them through `generate` (the method's loop, given the adapter file) and audits the rows."""

    def __init__(
        self,
        ctx: SynthesisContext,
        generate: Callable[[Path, SynthesisContext], Any],
        folder: Path,
        attention: str | None,
        model: Any,
    ) -> None:
        from fewforge.synthesis.curation.base import AuditContext
        from fewforge.synthesis.curation.fewshot import FewShotAuditor

        self.ctx = dataclasses.replace(ctx, progress=None)  # the tuning's progress bar is not the guard's
        self.generate, self.folder, self.attention, self.model = generate, folder, attention, model
        self.auditor = FewShotAuditor()
        self.audit_ctx = AuditContext(ctx.task, ctx.seed, train=[*ctx.train, *ctx.dev])
        self.calls = 0

    def __call__(self, prompts: "LabelPrompts") -> dict[str, Any]:
        task = self.ctx.task
        self.folder.mkdir(parents=True, exist_ok=True)
        path = prompts.save(self.folder / f"epoch-{self.calls}.safetensors")
        self.calls += 1
        with attention_implementation(self.model, self.attention), _quiet("fewforge.synthesis.zerogen"):
            rows = self.generate(path, self.ctx).examples
        probs = self.auditor.audit(self.audit_ctx, rows).probs if rows else []
        hits = [max(range(len(p)), key=p.__getitem__) == task.label_names.index(e.label) for p, e in zip(probs, rows)]
        per_label = {
            label: round(sum(h for h, e in zip(hits, rows) if e.label == label) / n, 4)
            for label in task.label_names
            if (n := sum(e.label == label for e in rows))
        }
        fidelity = sum(hits) / len(hits) if hits else 0.0
        # a label whose every row the filters dropped wrote nothing usable: its share is 0
        worst = min(per_label.get(label, 0.0) for label in task.label_names)
        log.info("guard: epoch %d's %d sampled rows, audited label fidelity %.3f", self.calls - 1, len(rows), fidelity)
        return {"fidelity": fidelity, "rows": len(rows), "per_label": per_label, "worst_label": worst}
