"""The `generator` auditor: the generator that wrote the set judges it, through `Generator.score` — each
label's verbalizer is scored after the row's cloze prefix (the task's cloze template up to {mask}, as
the `generator-zero-shot` learner does; `generators/label_scores.py` is the one implementation), sent
as the grid's generator renders prompts (its chat setting).

`calibrate` (default on) removes the label prior the prompt carries before the softmax: each label's
log-probability minus its mean over the audited rows (contextual calibration, Zhao et al. 2021, with the
set itself as the content-free reference). On 120 real SST-2 rows the packaged SmolLM2 (llama.cpp)
agreed with the gold label on 55 % of them raw and 67.5 % calibrated (chat template on: 57.5 %, 67.5 %).
No real rows are read.
"""

from __future__ import annotations

from typing import Literal, Sequence

from pydantic import Field

from fewforge.data.schema import Example
from fewforge.errors import BackendError
from fewforge.generators.label_scores import score_labels, softmax
from fewforge.synthesis.curation.base import Audit, AuditContext, Auditor, AuditorOptions


class GeneratorOptions(AuditorOptions):
    template: str | None = Field(None, description="a cloze template with {mask}; None: the task's")
    normalize: Literal["sum", "mean"] = Field("sum", description="a verbalizer's summed or per-token log-prob")
    calibrate: bool = Field(True, description="subtract each label's mean log-prob over the set before the softmax")
    batch: int = Field(64, ge=1, description="rows per scoring call (progress)", json_schema_extra={"semantic": False})


class GeneratorAuditor(Auditor):
    name = "generator"
    Options = GeneratorOptions
    options: GeneratorOptions
    needs_scoring = True

    def audit(self, ctx: AuditContext, rows: Sequence[Example]) -> Audit:
        from fewforge.learners.prompt_tuning import answer_prefix

        task, generator, o = ctx.task, ctx.generator, self.options
        if generator is None or not getattr(generator, "supports_scoring", False):
            backend = getattr(generator, "backend", None)
            raise BackendError(
                f"the generator auditor scores the verbalizers, and the {backend} backend cannot score",
                hint="use a backend that can score (smollm2, hf:MODEL, openai with logprobs) or auditor: fewshot",
            )
        prefix, sep = answer_prefix(o.template or task.cloze_template, task.kind)
        words = [sep + task.labels[label] for label in task.label_names]
        logprobs: list[tuple[float, ...]] = []
        for start in range(0, len(rows), o.batch):
            chunk = rows[start : start + o.batch]
            prompts = [prefix.format(**e.inputs, description=task.description) for e in chunk]
            logprobs += [s.logprobs for s in score_labels(generator, prompts, words, normalize=o.normalize)]
            if ctx.progress is not None:
                ctx.progress(start + len(chunk), len(rows))
        prior = [sum(lp[k] for lp in logprobs) / len(logprobs) for k in range(len(words))] if logprobs else []
        if not o.calibrate:
            prior = [0.0] * len(words)
        probs = [softmax([v - p for v, p in zip(lp, prior)]) for lp in logprobs]
        info = {
            "prompt": prefix,
            "words": dict(zip(task.label_names, words)),
            "chat": generator.output_options().get("chat"),
            "model": f"{generator.backend}:{generator.model_id}",
            "calibration": dict(zip(task.label_names, (round(p, 4) for p in prior))) if o.calibrate else None,
        }
        return Audit(probs, info)
