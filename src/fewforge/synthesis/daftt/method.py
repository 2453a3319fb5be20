"""DAFTT (Kaddour & Liu 2023) as two synthesis methods sharing one teacher recipe (`teacher.py`):

* `daftt-annotate` — the teacher (fine-tuned input -> target) labels the unlabelled pool: the rows of
  `ctx.pool` that are neither few-shot rows nor teacher rows (matched by id and by input text), with
  their labels stripped before anything else happens, so the method never reads a pool label in this
  mode. Classification is constrained to the verbalizers: `generator.score(prompt, word)` for
  every label, the argmax is the label, and the softmax over the labels' log-probabilities is the row's
  `confidence` (kept in its lineage with every label's probability). Extractive QA decodes the answer at
  temperature 0.1 (DAFTT's annotation temperature) and keeps it only when it aligns to a span of the
  context (`answer_not_in_context` otherwise); text-to-text decodes the target at 0.1. Pool rows are
  annotated in a seeded order until every label has `per_label` rows (QA and text-to-text: `per_label`
  in all) or `max_annotated` rows are spent; a label left short is reported as `shortfall`, as ZeroGen
  does.
* `daftt-generate` — the teacher (fine-tuned target -> input) writes new rows at temperature 0.8 through
  ZeroGen's loop (top-up rounds, post-processing, per-row lineage): the request is the teacher's raw
  instruction prompt for the label (with a pool row's first sentence for pairs, a pool context and an
  answer span for QA, the given fields for text-to-text), sent with the teacher as `adapter=`.

The teacher learns from the split's few-shot rows (train + dev, `teacher_data: fewshot`) or from
`teacher_share` of the pool (`share`: DAFTT's 1-10 % of the train split, which reads pool labels; the
card says so under `reads_pool_labels`). Every row's lineage names the teacher (its adapter hash), the
mode and the temperature; annotations also carry the parent pool row's id.
"""

from __future__ import annotations

import logging
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from pydantic import Field

from fewforge.data.schema import Example
from fewforge.errors import BackendError, DataError
from fewforge.fingerprint import derive_seed
from fewforge.generators.base import AdapterRequest, Generator, SamplingParams
from fewforge.generators.label_scores import score_labels
from fewforge.synthesis.base import SynthesisContext, SynthesisMethod, SyntheticDataset, sampling_params
from fewforge.synthesis.daftt.teacher import Formatter, Mode, TeacherOptions, choose_demos, demo_of, teacher_rows
from fewforge.synthesis.daftt.training import Teacher, build_teacher
from fewforge.synthesis.zerogen import ZeroGen, ZeroGenConfig
from fewforge.tasks.base import Task

log = logging.getLogger(__name__)

CITATION = """@article{kaddour2023synthetic,
  title = {Synthetic Data Generation in Low-Resource Settings via Fine-Tuning of Large Language Models},
  author = {Kaddour, Jean and Liu, Qi},
  journal = {arXiv preprint arXiv:2310.01119},
  year = {2023}
}"""


class DafttAnnotateConfig(TeacherOptions):
    version: int = 1
    per_label: int = Field(100, ge=1, description="annotated rows kept per label (QA and text-to-text: in all)")
    max_annotated: int | None = Field(
        None, ge=1, description="pool rows annotated at most (None: 4 x per_label x labels)"
    )
    min_confidence: float = Field(
        0.0, ge=0, le=1, description="classification: drop annotations whose label probability is lower (0: keep all)"
    )
    temperature: float = Field(0.1, ge=0, description="DAFTT's annotation temperature (QA answers, text-to-text targets)")
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int | None = Field(None, ge=1, description="None: 32 for a QA answer, the kind's for a target")
    seed: int = Field(0, description="mixed with the split seed into the pool order, sampling and teacher seeds")
    batch: int = Field(32, ge=1, description="pool rows per scoring / generation call")


class DafttGenerateConfig(ZeroGenConfig, TeacherOptions):
    version: int = 1
    temperature: float = Field(0.8, ge=0, description="DAFTT's generation temperature")
    top_p: float = Field(1.0, gt=0, le=1, description="DAFTT states a temperature only: no nucleus cut")


@dataclass
class PreparedTeacher:
    teacher: Teacher
    formatter: Formatter
    data: dict[str, Any]
    seconds: float


def _input_key(task: Task, e: Example) -> tuple[str, ...]:
    return tuple(" ".join(e.inputs.get(f, "").split()).lower() for f in task.input_fields)


class _DafttMethod:
    """What both modes share: choosing the teacher's rows, and training (or reusing) the teacher."""

    name: ClassVar[str]
    mode: ClassVar[Mode]
    config: Any

    def _teacher_examples(self, ctx: SynthesisContext) -> tuple[list[Example], dict[str, Any]]:
        c: TeacherOptions = self.config
        if c.teacher_data == "share":
            pool = list(ctx.pool)
            if not pool:
                raise DataError(f"{self.name}: teacher_data share needs a pool to sample from", hint="use teacher_data: fewshot")
            n = max(1, round(c.teacher_share * len(pool)))
            rows = random.Random(derive_seed(ctx.seed, "daftt-share")).sample(pool, n)
            info = {"source": "share", "share": c.teacher_share, "reads_pool_labels": True}
        else:
            rows = [*ctx.train, *ctx.dev]
            info = {"source": "fewshot", "reads_pool_labels": False}
        if c.tunes and not rows:
            raise DataError(
                f"{self.name} fine-tunes the teacher on the real few-shot rows, and there are none",
                hint="run it in a grid with shots, use teacher_data: share, or tune: false",
            )
        return rows, {**info, "rows": len(rows), "ids": [e.id for e in rows]}

    def prepare_teacher(self, ctx: SynthesisContext, seed: int) -> tuple[PreparedTeacher, list[Example]]:
        """Train (or reuse from `ctx.workdir`) the teacher on the rows `teacher_data` names, and its prompt
        formatter: what the methods here, and the `teacher` auditor of curation, send with `adapter=`."""
        c: TeacherOptions = self.config
        task, generator = ctx.task, ctx.generator
        generator.check_adapter(AdapterRequest(self.name, "", kind="lora"))  # the backend's own error, before training
        started = time.perf_counter()
        examples, data = self._teacher_examples(ctx)
        lm = generator.trainable()
        demos = choose_demos(task, examples, c.demonstrations, derive_seed(ctx.seed, seed, "demos"))
        rows = teacher_rows(task, self.mode, examples, lm, c, demos)
        workdir = Path(ctx.workdir) if ctx.workdir is not None else _tempdir()
        teacher = build_teacher(
            generator, lm, self.mode, rows, c, derive_seed(ctx.seed, seed, "teacher"), workdir, self.name,
            progress=_training_progress(ctx.progress, self.name), extra={"data": data},
        )
        formatter = Formatter(
            task, self.mode, lm, c.max_prompt_tokens, [demo_of(task, self.mode, d) for d in demos[: c.demonstrations]],
            chat=c.chat_template,
        )
        return PreparedTeacher(teacher, formatter, data, time.perf_counter() - started), examples

    def _teacher_card(self, prepared: PreparedTeacher) -> dict[str, Any]:
        t = prepared.teacher
        summary = {k: v for k, v in t.summary.items() if k != "data"}
        data = {k: v for k, v in prepared.data.items() if k != "ids"}
        return {
            "teacher": {**summary, "adapter": t.adapter.to_dict(), "path": str(t.path), "definition": prepared.formatter.definition,
                        "chat_template": prepared.formatter.chat},
            "teacher_data": data,
            "reads_pool_labels": data["reads_pool_labels"],
            "teacher_time_s": round(prepared.seconds, 2),
        }


def _tempdir() -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix="fewforge-daftt-"))


def _training_progress(progress: Callable[[int, int], None] | None, name: str) -> Callable[[int, int], None]:
    def update(done: int, total: int) -> None:
        if progress is not None:
            progress(done, total)
        if done == total or done % max(total // 10, 1) == 0:
            log.info("%s: teacher step %d/%d", name, done, total)

    return update


class DafttAnnotate(_DafttMethod, SynthesisMethod):
    name = "daftt-annotate"
    Config = DafttAnnotateConfig
    config: DafttAnnotateConfig
    mode = "annotate"
    reads_fewshot = True
    needs_adapters = True
    citation = CITATION

    def sampling_params(self, task: Task, split_seed: int = 0) -> SamplingParams:
        max_new_tokens, stop = task.spec.answer_limits()
        seed = derive_seed(split_seed, self.config.seed)
        return sampling_params(self.config, task, seed, max_new_tokens=max_new_tokens, stop=stop)

    def unlabelled(self, ctx: SynthesisContext, labelled: Sequence[Example]) -> tuple[list[Example], dict[str, int]]:
        """The pool rows no teacher or student has seen labelled, label-free: inputs and id only, first
        occurrence of each input text."""
        task = ctx.task
        known = [*ctx.train, *ctx.dev, *labelled]
        ids = {e.id for e in known if e.id}
        keys = {_input_key(task, e) for e in known}
        out, seen = [], set()
        excluded = duplicates = 0
        for e in ctx.pool:
            row = Example({f: e.inputs.get(f, "") for f in task.input_fields}, "", id=e.id)  # the label stays behind
            key = _input_key(task, row)
            if (row.id and row.id in ids) or key in keys:
                excluded += 1
            elif key in seen or not all(key):
                duplicates += 1
            else:
                seen.add(key)
                out.append(row)
        return out, {"rows": len(ctx.pool), "excluded_labelled": excluded, "duplicates_or_empty": duplicates}

    def synthesize(self, ctx: SynthesisContext) -> SyntheticDataset:
        c, task, generator = self.config, ctx.task, ctx.generator
        started = time.perf_counter()
        if task.is_classification and not getattr(generator, "supports_scoring", False):
            raise BackendError(
                f"{self.name} chooses labels by scoring the verbalizers, and the {generator.backend} backend cannot score",
                hint="annotate through the transformers backend: --generator hf:smollm2 or hf:MODEL",
            )
        prepared, labelled = self.prepare_teacher(ctx, c.seed)
        candidates, pool_info = self.unlabelled(ctx, labelled)
        if not candidates:
            raise DataError(f"{self.name}: no unlabelled pool rows left to annotate", hint="pass a pool beyond the few-shot rows")
        order = list(range(len(candidates)))
        random.Random(derive_seed(ctx.seed, c.seed, "pool")).shuffle(order)
        groups = task.groups
        cap = min(c.max_annotated or 4 * c.per_label * len(groups), len(order))
        order = order[:cap]
        t0 = time.perf_counter()
        if task.is_classification:
            result = self._classify(ctx, prepared, candidates, order)
        else:
            result = self._decode(ctx, prepared, candidates, order)
        seconds = time.perf_counter() - t0
        kept, dropped, annotated, surplus, decoding = result
        examples = [e for g in groups for e in kept[g]]
        _check_rows(task, examples)
        counts = {g: len(kept[g]) for g in groups}
        shortfall = {g: c.per_label - n for g, n in counts.items() if n < c.per_label}
        if shortfall:
            log.warning("%s: %s has fewer than %d annotated rows per label after %d pool rows (missing %s); "
                        "raise max_annotated or lower per_label", self.name, task.name, c.per_label, annotated, shortfall)
        reasons: dict[str, int] = {}
        for d in dropped:
            reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
        card = {
            "method": self.name,
            "method_version": c.version,
            "config": c.model_dump(mode="json"),
            "citation": self.citation,
            "task": task.name,
            "mode": "annotate",
            "split_seed": ctx.seed,
            "model": {"backend": generator.backend, "model_id": generator.model_id},
            **self._teacher_card(prepared),
            "decoding": decoding,
            "pool": {**pool_info, "candidates": len(candidates), "cap": cap, "annotated": annotated},
            "per_label_requested": c.per_label,
            "per_label": counts,
            "shortfall": shortfall,
            "surplus": surplus,
            "dropped": reasons,
            "confidence": _confidence_summary(examples, task) if task.is_classification else None,
            "annotation_time_s": round(seconds, 2),
            "seconds_per_annotated_row": round(seconds / annotated, 3) if annotated else None,
            "wall_time_s": round(time.perf_counter() - started, 2),
        }
        return SyntheticDataset(examples=examples, card=card, dropped=dropped)

    def _lineage(self, prepared: PreparedTeacher, generator: Generator, prompt: str, parent: Example, position: int) -> dict[str, Any]:
        return {
            "method": self.name,
            "method_version": self.config.version,
            "model": f"{generator.backend}:{generator.model_id}",
            "mode": "annotate",
            "teacher": prepared.teacher.adapter.to_dict(),
            "prompt": prompt,
            "parent_id": parent.id or None,
            "pool_position": position,
        }

    def _classify(
        self, ctx: SynthesisContext, prepared: PreparedTeacher, candidates: list[Example], order: list[int]
    ) -> tuple[dict[str, list[Example]], list[dict], int, dict[str, int], dict[str, Any]]:
        """Label pool rows by the verbalizers' log-probabilities under the teacher, in `order`, until every
        label has per_label rows."""
        c, task, generator = self.config, ctx.task, ctx.generator
        labels = task.label_names
        words = [prepared.formatter.sep + task.labels[label] for label in labels]
        kept: dict[str, list[Example]] = {label: [] for label in labels}
        surplus = dict.fromkeys(labels, 0)
        dropped: list[dict] = []
        done = 0
        for start in range(0, len(order), c.batch):
            if all(len(kept[label]) >= c.per_label for label in labels):
                break
            chunk = order[start : start + c.batch]
            prompts = [prepared.formatter.request(candidates[i]) for i in chunk]
            scored = score_labels(generator, prompts, words, adapter=prepared.teacher.adapter)
            for n, (i, prompt) in enumerate(zip(chunk, prompts)):
                done += 1
                logprobs, probs = list(scored[n].logprobs), list(scored[n].probs)
                label, confidence = labels[scored[n].best], probs[scored[n].best]
                row = candidates[i]
                position = start + n
                if confidence < c.min_confidence:
                    dropped.append({"id": row.id, "label": label, "reason": "low_confidence", "confidence": round(confidence, 6),
                                    "text": " ".join(row.inputs.values())[:300]})
                    continue
                if len(kept[label]) >= c.per_label:
                    surplus[label] += 1
                    continue
                lineage = {
                    **self._lineage(prepared, generator, prompt, row, position),
                    "decoding": "argmax over the verbalizers' log-probabilities",
                    "temperature": None,
                    "confidence": confidence,
                    "label_probs": dict(zip(labels, probs)),
                    "logprobs": dict(zip(labels, logprobs)),
                }
                kept[label].append(Example(dict(row.inputs), label, id=f"{self.name}-{position:06d}", lineage=lineage))
            if ctx.progress is not None:
                ctx.progress(done, len(order))
        decoding = {"choice": "argmax over the verbalizers' summed log-probabilities", "words": dict(zip(labels, words)),
                    "confidence": "softmax over the labels"}
        return kept, dropped, done, surplus, decoding

    def _decode(
        self, ctx: SynthesisContext, prepared: PreparedTeacher, candidates: list[Example], order: list[int]
    ) -> tuple[dict[str, list[Example]], list[dict], int, dict[str, int], dict[str, Any]]:
        """QA answers / text-to-text targets decoded at the annotation temperature, in `order`."""
        c, task, generator = self.config, ctx.task, ctx.generator
        params = self.sampling_params(task, ctx.seed)
        kept: list[Example] = []
        dropped: list[dict] = []
        done = 0
        for start in range(0, len(order), c.batch):
            if len(kept) >= c.per_label:
                break
            chunk = order[start : start + c.batch]
            prompts = [prepared.formatter.request(candidates[i]) for i in chunk]
            completions = generator.generate(
                prompts, params, start_index=list(range(start, start + len(chunk))), adapter=prepared.teacher.adapter
            )
            for n, (i, prompt, completion) in enumerate(zip(chunk, prompts, completions)):
                done += 1
                row, position = candidates[i], start + n
                if len(kept) >= c.per_label:
                    continue
                candidate = completion.candidates[0]
                raw = candidate.text
                decoded = task.spec.decode_answer(task, row, raw)  # QA: the first line, aligned to the context
                if isinstance(decoded, str):
                    first_line = " ".join(raw.strip().split("\n")[0].split())  # what was read, for the report
                    dropped.append({"id": row.id, "label": first_line, "reason": decoded, "raw": raw})
                    continue
                target, answers = decoded
                lineage = {
                    **self._lineage(prepared, generator, prompt, row, position),
                    "temperature": params.temperature,
                    "sampling": params.to_dict(),
                    "request_seed": params.request_seed(position),
                    "raw": raw,
                    "finish_reason": candidate.finish_reason,
                    "n_tokens": candidate.n_tokens,
                    "cached": completion.cached,
                }
                kept.append(Example(dict(row.inputs), target, id=f"{self.name}-{position:06d}", lineage=lineage, answers=answers))
            if ctx.progress is not None:
                ctx.progress(done, len(order))
        return {"": kept}, dropped, done, {"": 0}, {"sampling": params.to_dict()}


def _check_rows(task: Task, examples: Sequence[Example]) -> None:
    """The method's promise: a task label (a target) and non-empty inputs on every row."""
    for e in examples:
        task.check_label(e.label)
        if not e.label.strip() or any(not e.inputs.get(f, "").strip() for f in task.input_fields):
            raise AssertionError(f"annotation produced an empty field in {e.id}")  # a bug, not a user error


def _confidence_summary(examples: Sequence[Example], task: Task) -> dict[str, Any]:
    def stats(values: list[float]) -> dict[str, float] | None:
        if not values:
            return None
        return {"mean": round(statistics.fmean(values), 4), "min": round(min(values), 4),
                "median": round(statistics.median(values), 4)}

    values = [e.lineage["confidence"] for e in examples]
    return {
        **(stats(values) or {}),
        "per_label": {label: stats([e.lineage["confidence"] for e in examples if e.label == label]) for label in task.label_names},
    }


class DafttGenerate(_DafttMethod, ZeroGen):
    name = "daftt-generate"
    Config = DafttGenerateConfig
    config: DafttGenerateConfig
    mode = "generate"
    reads_fewshot = True
    needs_adapters = True
    citation = CITATION

    def synthesize(self, ctx: SynthesisContext) -> SyntheticDataset:
        prepared, _ = self.prepare_teacher(ctx, self.config.seed)
        self._prepared = prepared
        try:
            dataset = ZeroGen.synthesize(self, ctx)
        finally:
            del self._prepared
        dataset.card.update(mode="generate", citation=self.citation, **self._teacher_card(prepared))
        generated = dataset.card.get("generated") or 0
        seconds = dataset.card.get("generation_time_s") or 0.0
        dataset.card["seconds_per_generated_row"] = round(seconds / generated, 3) if generated else None
        return dataset

    def _prompt(self, task: Task, label: str, parent: Example | None) -> str:
        return self._prepared.formatter.request(parent, label)

    def _adapter(self) -> AdapterRequest:
        return self._prepared.teacher.adapter

    def _lineage(self, label: str) -> dict:
        return {"teacher": self._prepared.teacher.adapter.to_dict(), "mode": "generate", "temperature": self.config.temperature}
