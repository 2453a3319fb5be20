"""The `teacher` auditor: a DAFTT teacher (Kaddour & Liu 2023; `synthesis/daftt/`) fine-tuned as an
annotator (input -> label, LoRA on a copy of the generator) on the real few-shot *train* rows only —
DAFTT's own `teacher_data: fewshot` also reads the dev rows, which an auditor must not — then sent with
every scoring request as `adapter=`: each label's verbalizer is scored after the teacher's prompt, the
same path `daftt-annotate` labels the pool with (`generators/label_scores.py`). Its options are DAFTT's
teacher options (`tune: false` audits with the untuned base model in the teacher's format); the teacher
is trained once per split and reused from the work folder. Needs a backend that loads LoRA adapters and
can be tuned (`--generator hf:smollm2` or `hf:MODEL`).
"""

from __future__ import annotations

from typing import Sequence

from pydantic import Field, model_validator

from fewforge.data.schema import Example
from fewforge.synthesis.curation.base import Audit, AuditContext, Auditor
from fewforge.synthesis.daftt.teacher import TeacherOptions


class TeacherAuditOptions(TeacherOptions):
    seed: int = Field(0, description="mixed with the split seed into the teacher's training seed")
    batch: int = Field(32, ge=1, description="rows per scoring call (progress)", json_schema_extra={"semantic": False})

    @model_validator(mode="after")
    def _fewshot_only(self) -> "TeacherAuditOptions":
        if self.teacher_data != "fewshot":
            raise ValueError("the teacher auditor learns from the few-shot train rows only (teacher_data: fewshot)")
        return self


class TeacherAuditor(Auditor):
    name = "teacher"
    Options = TeacherAuditOptions
    options: TeacherAuditOptions
    reads_fewshot = True
    needs_scoring = True
    needs_adapters = True

    def audit(self, ctx: AuditContext, rows: Sequence[Example]) -> Audit:
        from fewforge.generators.label_scores import score_labels
        from fewforge.synthesis.base import SynthesisContext
        from fewforge.synthesis.daftt.method import DafttAnnotate, DafttAnnotateConfig

        task, o = ctx.task, self.options
        teacher_options = o.model_dump(exclude={"seed", "batch", "version"})
        method = DafttAnnotate(DafttAnnotateConfig(**teacher_options, seed=o.seed))
        # dev and pool stay empty: the teacher learns from the train rows alone
        train_ctx = SynthesisContext(task=task, generator=ctx.generator, seed=ctx.seed, train=ctx.train,
                                     workdir=ctx.workdir)
        prepared, _ = method.prepare_teacher(train_ctx, o.seed)
        words = [prepared.formatter.sep + task.labels[label] for label in task.label_names]
        probs: list[list[float]] = []
        for start in range(0, len(rows), o.batch):
            chunk = rows[start : start + o.batch]
            prompts = [prepared.formatter.request(e) for e in chunk]
            probs += [list(s.probs) for s in score_labels(ctx.generator, prompts, words, adapter=prepared.teacher.adapter)]
            if ctx.progress is not None:
                ctx.progress(start + len(chunk), len(rows))
        summary = {k: v for k, v in prepared.teacher.summary.items() if k not in ("data", "history")}
        info = {
            "teacher": {**summary, "adapter": prepared.teacher.adapter.to_dict()},
            "train_rows": prepared.data["rows"],
            "words": dict(zip(task.label_names, words)),
            "definition": prepared.formatter.definition,
        }
        return Audit(probs, info)
