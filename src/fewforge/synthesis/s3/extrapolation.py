"""What S3 (Wang et al. 2023) and its GoldGen baseline share: the gold set, error extrapolation (one new
example like each given gold row, with its gold target), the leakage guard and the card; and GoldGen itself.
S3's seed data and rounds: method.py.

The gold set (PROTOCOLS §5): `gold: dev` (default) is the few-shot dev set — the LM-BFF reading of S3's
"small gold set"; `gold: pool` is S3 §3.2.2's choice, `gold_size` labelled rows of the train split
outside the few-shot split (this reads pool labels; the card says so). Gold rows never enter training:
the student trains on the few-shot train rows (`student_data: real+synthetic`, as the grid's cells do;
`synthetic` is the paper's synthetic-only student) and the synthetic rows, and every synthetic row that
nearly copies a gold row (embedding cosine ≥ `near_gold_cosine` or character similarity ≥
`near_gold_edit`) is flagged in its lineage and counted in the card (`drop_near_gold` drops them).

GoldGen (S3 §3.1): extrapolates every gold row instead of the errors, with no seed and no student, at the
same budget.
"""

from __future__ import annotations

import difflib
import logging
import math
import random
import time
from collections import Counter
from typing import Any, Callable, Literal, Sequence

from pydantic import Field

from fewforge.data.schema import Example
from fewforge.errors import DataError
from fewforge.fingerprint import derive_seed
from fewforge.generators.base import SamplingParams
from fewforge.synthesis.base import (
    ADDED_LATER,
    MethodConfig,
    SynthesisContext,
    SynthesisMethod,
    SyntheticDataset,
    sampling_params,
)
from fewforge.synthesis.postprocess import Draft, PostprocessConfig, generated_text, normalize, postprocess
from fewforge.synthesis.s3.prompts import Wording, ees_prompt, prompts_for
from fewforge.synthesis.zerogen import top_up_size
from fewforge.tasks.base import Task

log = logging.getLogger(__name__)

S3_CITATION = """@inproceedings{wang-etal-2023-let,
  title = {Let's Synthesize Step by Step: Iterative Dataset Synthesis with Large Language Models by Extrapolating Errors from Small Models},
  author = {Wang, Ruida and Zhou, Wangchunshu and Sachan, Mrinmaya},
  booktitle = {Findings of EMNLP},
  year = {2023}
}"""


class ExtrapolationConfig(MethodConfig):
    """What S3 and GoldGen share: the budget, the gold set, the prompts, decoding and the leakage guard."""

    per_label: int = Field(100, ge=1, description="rows per label in the final set (the whole size for QA/text-to-text)")
    gold: Literal["dev", "pool"] = Field(
        "dev", description="the gold set: the few-shot dev set, or `gold_size` labelled pool rows (S3 §3.2.2)"
    )
    gold_size: int = Field(1000, ge=1, description="gold: pool — how many train-split rows (outside the few-shot split)")
    wording: Wording = Field("table", description="S3's Table 1 prompts, or the body text's wording of two of them")
    reply_only: bool = Field(True, description="end each prompt with 'Reply with the ... only.' (an instruct generator)")
    oversample: float = Field(1.3, ge=1.0, description="requests per wanted row (filters drop some)")
    max_rounds: int = Field(3, ge=1, description="generation rounds per stage (the first plus top-ups)")
    seed: int = Field(0, description="mixed with the split seed into every sampling seed")
    temperature: float = Field(0.9, ge=0, description="S3 §3.2.1: nucleus sampling, temperature 0.9")
    top_p: float = Field(0.9, gt=0, le=1, description="nucleus mass (S3 gives none; ZeroGen's 0.9)")
    top_k: int = Field(0, ge=0)
    repetition_penalty: float = Field(1.0, gt=0, json_schema_extra=ADDED_LATER)
    max_new_tokens: int | None = Field(None, ge=1, description="None: the task kind's")
    stop: tuple[str, ...] | None = Field(None, description="None: the kind's")
    postprocess: PostprocessConfig = Field(default_factory=PostprocessConfig)
    near_gold_cosine: float = Field(0.95, gt=0, le=1, description="leakage guard: embedding cosine to a gold row")
    near_gold_edit: float = Field(0.9, gt=0, le=1, description="leakage guard: character similarity to a gold row")
    drop_near_gold: bool = Field(False, description="drop rows the leakage guard flags (default: flag and count)")


class GoldGenConfig(ExtrapolationConfig):
    version: int = 1


class Extrapolation(SynthesisMethod):
    """The EES step both methods share: one new example like each given gold row, with its gold target."""

    config: ExtrapolationConfig
    citation = S3_CITATION
    dropped_rows: list[dict[str, Any]]  # every filtered row of the current synthesize() call

    def sampling_params(self, task: Task, split_seed: int, *stage: Any) -> SamplingParams:
        return sampling_params(self.config, task, derive_seed(split_seed, self.config.seed, *stage))

    def gold_set(self, ctx: SynthesisContext) -> tuple[list[Example], str]:
        """The gold rows and a line saying where they come from."""
        c = self.config
        if c.gold == "dev":
            if not ctx.dev:
                raise DataError(
                    f"{self.name}: the gold set is the few-shot dev set, and this run has none",
                    hint="run it on a few-shot split (shots in the grid), or set gold: pool",
                )
            return list(ctx.dev), f"few-shot dev set ({len(ctx.dev)} rows)"
        taken = {e.id for e in [*ctx.train, *ctx.dev] if e.id}
        texts = {normalize(" ".join(e.inputs.values())) for e in [*ctx.train, *ctx.dev]}
        rest = [e for e in ctx.pool if e.id not in taken and normalize(" ".join(e.inputs.values())) not in texts]
        if not rest:
            raise DataError(f"{self.name}: gold: pool needs labelled pool rows outside the few-shot split; there are none")
        rng = random.Random(derive_seed(ctx.seed, c.seed, "gold"))
        rows = rng.sample(rest, min(c.gold_size, len(rest)))
        return rows, f"train split sample ({len(rows)} labelled rows outside the few-shot split; reads pool labels)"

    def extrapolate(
        self,
        ctx: SynthesisContext,
        rows: Sequence[tuple[Example, str | None]],
        budget: dict[str, int],
        stage: str,
        round_no: int,
        existing: Sequence[Example],
        progress: Callable[[int], None],
    ) -> tuple[list[Example], dict[str, Any]]:
        """Up to budget[group] new rows per group, each like one of `rows` ((gold row, prediction)), cycled
        so every row gets one child before any gets two; with more rows than budget a seeded sample."""
        c, task = self.config, ctx.task
        params = self.sampling_params(task, ctx.seed, stage, round_no)
        prompts_table = prompts_for(task, c.wording)
        by_group: dict[str, list[tuple[Example, str | None]]] = {}
        for row in rows:
            by_group.setdefault(task.group(row[0]), []).append(row)
        rng = random.Random(derive_seed(ctx.seed, c.seed, stage, round_no, "order"))
        for group_rows in by_group.values():
            rng.shuffle(group_rows)
        seen = {normalize(generated_text(task, _values(task, e))) for e in existing}
        # a child that repeats a gold row word for word would put that gold row into training
        gold_keys = {normalize(generated_text(task, _values(task, e))) for e, _ in rows}
        kept_all: list[Example] = []
        dropped: Counter[str] = Counter()
        dropped_rows: list[dict[str, Any]] = []
        requested = 0
        next_i = dict.fromkeys(by_group, 0)
        want = {g: math.ceil(budget.get(g, 0) * c.oversample) for g in by_group}
        kept_by_group: dict[str, list[Example]] = {g: [] for g in by_group}
        for attempt in range(c.max_rounds):
            plan = [(g, i) for g in by_group for i in range(next_i[g], next_i[g] + want.get(g, 0))]
            if not plan:
                break
            drafts = []
            positions = []
            for n, (g, i) in enumerate(plan):
                gold, predicted = by_group[g][i % len(by_group[g])]
                prompt = ees_prompt(task, prompts_table, gold, c.reply_only)
                position = derive_seed(stage, round_no, g, i) % 10_000_000  # a stable place per child for its seed
                positions.append(position)
                parent = task.spec.condition_values(task, gold) if task.given_fields else {}
                drafts.append((g, i, gold, predicted, prompt, parent, position))
            completions = ctx.generator.generate(
                [d[4] for d in drafts], params, start_index=positions, progress=progress
            )
            requested += len(drafts)
            raw = []
            for (g, i, gold, predicted, prompt, parent, position), completion in zip(drafts, completions):
                cand = completion.candidates[0]
                raw.append(
                    Draft(
                        id=f"{self.name}-{stage}{round_no}-{g or 'x'}-{i:05d}",
                        label=g,
                        text=cand.text,
                        finish_reason=cand.finish_reason,
                        parent=dict(parent),
                        prompt=prompt,
                        lineage={
                            "method": self.name,
                            "method_version": c.version,
                            "stage": stage,
                            "ees_round": round_no,
                            "model": f"{ctx.generator.backend}:{ctx.generator.model_id}",
                            "prompt": prompt,
                            "sampling": params.to_dict(),
                            "request_seed": params.request_seed(position),
                            "raw": cand.text,
                            "finish_reason": cand.finish_reason,
                            "cached": completion.cached,
                            "extrapolates": _parent_record(task, gold, predicted),
                        },
                    )
                )
            kept, report = postprocess(task, raw, c.postprocess, real=ctx.train)
            for reason, n in report.dropped.items():
                dropped[reason] += n
            dropped_rows += report.rows
            for e in kept:
                key = normalize(generated_text(task, _values(task, e)))
                if key in gold_keys:
                    dropped["copy_of_gold"] += 1
                    dropped_rows.append({"reason": "copy_of_gold", "id": e.id, "text": key})
                    continue
                if key in seen:  # a copy of a seed row or an earlier add
                    dropped["duplicate"] += 1
                    continue
                seen.add(key)
                kept_by_group[task.group(e)].append(e)
            for g in by_group:
                next_i[g] += want.get(g, 0)
            short = {g: budget.get(g, 0) - len(kept_by_group[g]) for g in by_group}
            short = {g: n for g, n in short.items() if n > 0}
            if not short:
                break
            # sized from each group's keep rate so far, for a 95% chance of filling (as ZeroGen's top-ups)
            want = {g: top_up_size(n, len(kept_by_group[g]) / max(next_i[g], 1), c.oversample) for g, n in short.items()}
        for g, examples in kept_by_group.items():
            kept_all += examples[: budget.get(g, 0)]
        info = {
            "requested": requested,
            "added": dict(Counter(task.group(e) for e in kept_all)),
            "dropped": {k: v for k, v in dropped.items() if v},
        }
        self.dropped_rows += dropped_rows
        return kept_all, info

    def leakage(self, task: Task, rows: list[Example], gold: Sequence[Example]) -> tuple[list[Example], dict[str, Any]]:
        """Flag rows that nearly copy a gold row (the guard of issue 15); drop them if asked."""
        import numpy as np

        from fewforge.embeddings import embed

        c = self.config
        if not rows or not gold:
            return rows, {"checked": len(rows), "flagged": 0, "dropped": 0}
        fields = task.generated_fields
        row_texts = [generated_text(task, _values(task, e)) for e in rows]
        gold_texts = [generated_text(task, {f: _values(task, g)[f] for f in fields}) for g in gold]
        sims = embed(row_texts) @ embed(gold_texts).T
        out, flagged, samples = [], 0, []
        for e, text, row in zip(rows, row_texts, sims):
            nearest = np.argsort(-row)[:3]
            edit = max(difflib.SequenceMatcher(None, normalize(text), normalize(gold_texts[j])).ratio() for j in nearest)
            best = int(nearest[0])
            if row[best] >= c.near_gold_cosine or edit >= c.near_gold_edit:
                flagged += 1
                mark = {"id": gold[best].id, "cosine": round(float(row[best]), 4), "edit_similarity": round(edit, 4)}
                if len(samples) < 5:
                    samples.append({"row": text, "gold": gold_texts[best], **mark})
                if c.drop_near_gold:
                    continue
                e = Example(inputs=e.inputs, label=e.label, id=e.id, lineage={**e.lineage, "near_gold": mark}, answers=e.answers)
            out.append(e)
        info = {
            "checked": len(rows),
            "flagged": flagged,
            "dropped": flagged if c.drop_near_gold else 0,
            "thresholds": {"cosine": c.near_gold_cosine, "edit_similarity": c.near_gold_edit},
            "samples": samples,
        }
        return out, info

    def card(self, ctx: SynthesisContext, gold_source: str, started: float, **facts: Any) -> dict[str, Any]:
        return {
            "method": self.name,
            "method_version": self.config.version,
            "config": self.config.model_dump(mode="json"),
            "split_seed": ctx.seed,
            "citation": self.citation,
            "task": ctx.task.name,
            "model": {"backend": ctx.generator.backend, "model_id": ctx.generator.model_id},
            "gold": gold_source,
            "wall_time_s": round(time.perf_counter() - started, 2),
            **facts,
        }


class GoldGen(Extrapolation):
    """S3's GoldGen baseline: every gold row extrapolated, no seed, no student, the same budget."""

    name = "goldgen"
    Config = GoldGenConfig

    def synthesize(self, ctx: SynthesisContext) -> SyntheticDataset:
        started = time.perf_counter()
        task = ctx.task
        self.dropped_rows = []
        gold, source = self.gold_set(ctx)
        tracker = Tracker(ctx.progress)
        budget = dict.fromkeys(task.groups, self.config.per_label)
        tracker.total += math.ceil(sum(budget.values()) * self.config.oversample)
        rows, info = self.extrapolate(ctx, [(g, None) for g in gold], budget, "gold", 1, [], tracker.step)
        rows, leak = self.leakage(task, rows, gold)
        card = self.card(ctx, source, started, extrapolation=info, leakage=leak, per_label_requested=self.config.per_label)
        return SyntheticDataset(examples=ordered_rows(task, rows), card=card, dropped=self.dropped_rows)


# -- helpers ---------------------------------------------------------------------------------------------


class Tracker:
    """progress(done, total) across stages (the seed's ZeroGen loop, then each round's requests)."""

    def __init__(self, callback: Callable[[int, int], None] | None) -> None:
        self.callback, self.done, self.total = callback, 0, 0

    def step(self, n: int) -> None:
        self.done += n
        if self.callback is not None:
            self.callback(self.done, max(self.total, self.done))

    def forward(self, done: int, total: int) -> None:  # a sub-loop's own (done, total)
        if self.callback is not None:
            self.callback(self.done + done, max(self.total, self.done + total))
        if done >= total:
            self.done += done
            self.total = max(self.total, self.done)


def _values(task: Task, e: Example) -> dict[str, str]:
    return {f: (e.label if f == "label" else e.inputs.get(f, "")) for f in (*task.input_fields, "label")}


def _parent_record(task: Task, gold: Example, predicted: str | None) -> dict[str, Any]:
    record: dict[str, Any] = {"id": gold.id, "inputs": dict(gold.inputs), "label": gold.label}
    if predicted is not None:
        record["predicted"] = predicted
    return record


def check_disjoint(training: Sequence[Example], gold: Sequence[Example]) -> None:
    """No real training row is a gold row (a bug if one is: the gold set is chosen outside the train split;
    synthetic copies of gold rows are dropped in `extrapolate` and near-copies flagged by `leakage`)."""
    ids = {e.id for e in gold if e.id}
    texts = {normalize(" ".join(e.inputs.values())) for e in gold}
    for e in training:
        if (e.id and e.id in ids) or normalize(" ".join(e.inputs.values())) in texts:
            raise AssertionError(f"gold row {e.id or e.inputs} would enter training")


def ordered_rows(task: Task, rows: list[Example]) -> list[Example]:
    """Seed rows then adds, grouped by label in the task's order (the grid takes the first n per label)."""
    order = {g: i for i, g in enumerate(task.groups)}
    return sorted(rows, key=lambda e: order.get(task.group(e), 0))


def take_after(task: Task, rows: list[Example], skip: int, short: dict[str, int]) -> list[Example]:
    """Rows n = skip .. skip + short[group] - 1 of each group (the part of a bigger seed set not yet used)."""
    seen: Counter[str] = Counter()
    out = []
    for e in rows:
        g = task.group(e)
        if skip <= seen[g] < skip + max(short.get(g, 0), 0):
            out.append(e)
        seen[g] += 1
    return out
