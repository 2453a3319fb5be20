"""S3, Synthesis Step by Step (Wang et al. 2023), and its GoldGen baseline.

S3 (Alg. 1–3):
1. **Seed data with rationales.** For each label the LLM lists reasons that lead to it (`rationale`
   prompts, top-k sampling); every seed request samples `reasons_per_example` of them uniformly and asks
   for an example with them (single-sentence tasks). Pairs and QA use the no-rationale seed of §2.4 /
   Alg. 3: a context from the pool (a premise; a context and an answer) and the label. The seed runs
   through ZeroGen's loop: the same post-processing, top-up rounds and lineage.
2. **Error extrapolation (EES), R rounds.** Each round trains a fresh student (`ctx.train_learner`) on
   seed ∪ all adds so far, collects its errors on the gold set — misclassified rows; QA rows without an
   exact match; text-to-text rows whose ROUGE-L is below `error_threshold` — and asks the LLM for a new
   example like each error with the error's gold target. Rounds stop early when the student's gold
   score stops improving (`stop_when_flat`); the budget left then goes to more seed rows.
3. The set is seed ∪ adds, `per_label` rows per label in all (the whole size for QA / text-to-text):
   seed ≈ `seed_share` of it (S3 §E: 2/3), the rest split evenly over the rounds (1/6 each for R = 2).

The paper adds one example per error from a gold set of thousands (the train split). A few-shot gold set
has fewer errors than a round's budget, so errors are cycled (each gets one child before any gets two,
with a different seed); with more errors than budget, a seeded sample of them gets one each.

The gold set (PROTOCOLS §5): `gold: dev` (default) is the few-shot dev set — the LM-BFF reading of S3's
"small gold set"; `gold: pool` is S3 §3.2.2's choice, `gold_size` labelled rows of the train split
outside the few-shot split (this reads pool labels; the card says so). Gold rows never enter training:
the student trains on the few-shot train rows (`student_data: real+synthetic`, as the grid's cells do;
`synthetic` is the paper's synthetic-only student) and the synthetic rows, and every synthetic row that
nearly copies a gold row (embedding cosine ≥ `near_gold_cosine` or character similarity ≥
`near_gold_edit`) is flagged in its lineage and counted in the card (`drop_near_gold` drops them).

GoldGen (S3 §3.1): extrapolates every gold row instead of the errors, with no seed and no student, at the
same budget.

Every stage is resumable: rationales and completions come back from the generator cache, and each EES
round's errors and adds are a stage of their own (`s3-round<n>/` in the method's work folder, through
`RunDir.stage`), reused on a rerun and retired to _stale/ when the round's inputs change.
"""

from __future__ import annotations

import difflib
import logging
import math
import random
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from pydantic import Field

from fewforge.data.io import read_jsonl, write_jsonl
from fewforge.data.schema import Example
from fewforge.errors import ConfigError, DataError
from fewforge.files import read_json, write_json
from fewforge.fingerprint import derive_seed, fingerprint
from fewforge.generators.base import SamplingParams
from fewforge.synthesis.base import MethodConfig, SynthesisContext, SynthesisMethod, SyntheticDataset
from fewforge.synthesis.postprocess import Draft, PostprocessConfig, generated_text, normalize, postprocess
from fewforge.synthesis.s3.prompts import Wording, ees_prompt, parse_reasons, prompts_for, rationale_prompt, seed_prompt
from fewforge.synthesis.zerogen import ZeroGen, ZeroGenConfig, top_up_size
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
    max_new_tokens: int | None = Field(None, ge=1, description="None: the task kind's")
    stop: tuple[str, ...] | None = Field(None, description="None: the kind's")
    postprocess: PostprocessConfig = Field(default_factory=PostprocessConfig)
    near_gold_cosine: float = Field(0.95, gt=0, le=1, description="leakage guard: embedding cosine to a gold row")
    near_gold_edit: float = Field(0.9, gt=0, le=1, description="leakage guard: character similarity to a gold row")
    drop_near_gold: bool = Field(False, description="drop rows the leakage guard flags (default: flag and count)")


class S3Config(ExtrapolationConfig):
    version: int = 1
    rounds: int = Field(2, ge=0, description="EES rounds R (S3: 2)")
    ees: bool = Field(True, description="False: the 'without EES' ablation — seed rows only, the same amount")
    rationales: bool = Field(True, description="False: the 'without rationales' ablation — the task's own seed prompt")
    seed_share: float = Field(2 / 3, gt=0, le=1, description="share of the budget spent on seed data (S3 §E: 2/3)")
    rationale_prompts: int = Field(8, ge=1, description="rationale completions per label")
    reasons_asked: int = Field(5, ge=1, description="<x> in the rationale prompt: how many reasons to ask for")
    reasons_per_example: int = Field(2, ge=1, description="reasons sampled into each seed prompt (U_i(S), i)")
    rationale_top_k: int = Field(40, ge=1, description="top-k sampling of rationales (S3: top-K, K not given)")
    student: str | None = Field(
        None, description="the student trained inside each round; None: linear-probe (classification) or the "
        "kind's default student"
    )
    student_options: dict[str, Any] = Field(
        default_factory=dict, description="the student's config options (e.g. {steps: 24} for a faster QA student)"
    )
    student_data: Literal["real+synthetic", "synthetic"] = Field(
        "real+synthetic", description="what the student trains on: the few-shot rows + synthetic (as the grid's "
        "cells), or synthetic only (S3's zero-shot student)"
    )
    error_threshold: float | None = Field(
        None, ge=0, le=1, description="a gold row is an error below this per-example score; None: below 1 for "
        "accuracy and exact match (wrong), 0.5 ROUGE-L for text-to-text"
    )
    stop_when_flat: bool = Field(True, description="stop the rounds when the gold score stops improving")


class GoldGenConfig(ExtrapolationConfig):
    version: int = 1


class _SeedGen(ZeroGen):
    """ZeroGen's loop with S3's seed prompts: rationales sampled into each single-sentence request."""

    name = "s3"

    def __init__(self, config: ZeroGenConfig, owner: "S3", reasons: dict[str, list[str]], task: Task) -> None:
        super().__init__(config)
        self.owner, self.reasons, self.task = owner, reasons, task
        self.prompts = prompts_for(task, owner.config.wording)
        self._calls: Counter[str] = Counter()

    def _prompt(self, task: Task, label: str, parent: Example | None) -> str:
        c = self.owner.config
        reasons = self.reasons.get(label, [])
        picked: list[str] = []
        if reasons:
            # the label's n-th request samples its reasons from its own seed: a bigger set extends a smaller one
            rng = random.Random(derive_seed(self.config.seed, "reasons", label, self._calls[label]))
            picked = rng.sample(reasons, min(c.reasons_per_example, len(reasons)))
        self._calls[label] += 1
        return seed_prompt(task, self.prompts, label, parent, picked, c.reply_only)

    def _lineage(self, label: str) -> dict:
        return {"method": self.owner.name, "method_version": self.owner.config.version, "stage": "seed"}


class _Extrapolation(SynthesisMethod):
    """The EES step both methods share: one new example like each given gold row, with its gold target."""

    config: ExtrapolationConfig
    citation = S3_CITATION
    dropped_rows: list[dict[str, Any]]  # every filtered row of the current synthesize() call

    def sampling_params(self, task: Task, split_seed: int, *stage: Any) -> SamplingParams:
        c = self.config
        return SamplingParams(
            temperature=c.temperature,
            top_k=c.top_k,
            top_p=c.top_p,
            max_new_tokens=c.max_new_tokens or task.spec.max_new_tokens,
            stop=c.stop if c.stop is not None else task.spec.stop,
            seed=derive_seed(split_seed, c.seed, *stage),
        )

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


class GoldGen(_Extrapolation):
    """S3's GoldGen baseline: every gold row extrapolated, no seed, no student, the same budget."""

    name = "goldgen"
    Config = GoldGenConfig

    def synthesize(self, ctx: SynthesisContext) -> SyntheticDataset:
        started = time.perf_counter()
        task = ctx.task
        self.dropped_rows = []
        gold, source = self.gold_set(ctx)
        tracker = _Tracker(ctx.progress)
        budget = dict.fromkeys(task.groups, self.config.per_label)
        tracker.total += math.ceil(sum(budget.values()) * self.config.oversample)
        rows, info = self.extrapolate(ctx, [(g, None) for g in gold], budget, "gold", 1, [], tracker.step)
        rows, leak = self.leakage(task, rows, gold)
        card = self.card(ctx, source, started, extrapolation=info, leakage=leak, per_label_requested=self.config.per_label)
        return SyntheticDataset(examples=_ordered(task, rows), card=card, dropped=self.dropped_rows)


class S3(_Extrapolation):
    name = "s3"
    Config = S3Config
    config: S3Config

    def synthesize(self, ctx: SynthesisContext) -> SyntheticDataset:
        c, task = self.config, ctx.task
        started = time.perf_counter()
        self.dropped_rows = []
        gold, source = self.gold_set(ctx)
        _check_disjoint(ctx.train, gold)
        ees = c.ees and c.rounds > 0
        if ees and ctx.train_learner is None:
            raise ConfigError(
                "s3: error extrapolation trains a student, and this caller gave no learner factory",
                hint="run s3 through `fewforge generate` / `fewforge run`, or set ees: false",
            )
        groups = task.groups
        seed_n = c.per_label if not ees else max(1, round(c.per_label * c.seed_share))
        tracker = _Tracker(ctx.progress)
        workdir = Path(ctx.workdir) if ctx.workdir is not None else None
        key = fingerprint(
            {
                "config": c.model_dump(mode="json"),
                "train": [e.id or e.inputs for e in ctx.train],
                "dev": [e.id or e.inputs for e in ctx.dev],
                "gold": [e.id or e.inputs for e in gold],
                "model": ctx.generator.model_id,
                "seed": ctx.seed,
            }
        )

        reasons, rationale_info = self.rationales(ctx)
        seed_rows, seed_card = self.seed_rows(ctx, reasons, seed_n, tracker)
        rounds: list[dict[str, Any]] = []
        adds: list[Example] = []
        best: float | None = None
        for round_no in range(1, (c.rounds if ees else 0) + 1):
            left = {g: c.per_label - seed_n - sum(task.group(e) == g for e in adds) for g in groups}
            rounds_left = c.rounds - round_no + 1
            budget = {g: max(0, math.ceil(n / rounds_left)) for g, n in left.items()}
            # each round is a stage (`s3-round<n>/`): reused as finished, retired when the inputs change
            stage = ctx.stage(f"s3-round{round_no}", key, outputs=("round.json", "rows.jsonl")) if workdir else None
            if stage is not None and stage.done:
                rows = stage.path / "rows.jsonl"  # empty when the round added nothing: read_jsonl refuses that
                info, added = read_json(stage.path / "round.json"), read_jsonl(rows, task) if rows.stat().st_size else []
            else:
                info, added = self.round(ctx, gold, seed_rows + adds, round_no, budget, tracker, best)
                if stage is not None:
                    with stage:
                        write_jsonl(stage.path / "rows.jsonl", added)
                        write_json(stage.path / "round.json", info)
            rounds.append(info)
            if info.get("stopped"):
                log.info("s3 %s: %s", task.name, info["stopped"])
                break
            best = info["gold_score"] if best is None else max(best, info["gold_score"])
            adds += added
        short = {g: c.per_label - seed_n - sum(task.group(e) == g for e in adds) for g in groups}
        if any(n > 0 for n in short.values()) and ees:  # errors ran out or rounds stopped: more seed rows
            more, _ = self.seed_rows(ctx, reasons, seed_n + max(short.values()), tracker, record_dropped=False)
            extra = _take_after(task, more, seed_n, short)
            seed_rows += [replace(e, lineage={**e.lineage, "fill": True}) for e in extra]
        rows, leak = self.leakage(task, seed_rows + adds, gold)
        card = self.card(
            ctx,
            source,
            started,
            per_label_requested=c.per_label,
            seed_rows=len(seed_rows),
            fill_rows=len([e for e in seed_rows if e.lineage.get("fill")]),
            ees_rows=len([e for e in rows if e.lineage.get("stage") == "ees"]),
            rationales=rationale_info,
            seed=seed_card,
            rounds=rounds,
            leakage=leak,
            student=self.student_name(task) if ees else None,
        )
        return SyntheticDataset(examples=_ordered(task, rows), card=card, dropped=self.dropped_rows)

    # -- stages ----------------------------------------------------------------------------------------

    def rationales(self, ctx: SynthesisContext) -> tuple[dict[str, list[str]], dict[str, Any]]:
        """Alg. 1's rationale lists, per label (single-sentence tasks; §2.4: none for pairs and QA)."""
        c, task = self.config, ctx.task
        prompts = prompts_for(task, c.wording)
        if not c.rationales or not task.spec.rationales or not prompts.rationale:
            why = "off" if not c.rationales else f"not used for {task.kind} tasks (S3 §2.4: no-rationale seed)"
            return {}, {"used": False, "why": why}
        params = SamplingParams(
            temperature=c.temperature, top_k=c.rationale_top_k, top_p=1.0, max_new_tokens=96,
            seed=derive_seed(ctx.seed, c.seed, "rationales"),
        )
        labels = task.label_names
        requests = [rationale_prompt(task, prompts, label, c.reasons_asked, c.reply_only) for label in labels]
        flat = [p for p in requests for _ in range(c.rationale_prompts)]
        completions = ctx.generator.generate(flat, params)
        out: dict[str, list[str]] = {}
        for n, completion in enumerate(completions):
            label = labels[n // c.rationale_prompts]
            for reason in parse_reasons(completion.text):
                if reason.lower() not in {r.lower() for r in out.get(label, [])}:
                    out.setdefault(label, []).append(reason)
        info = {"used": True, "prompts": dict(zip(labels, requests)), "per_label": {k: len(v) for k, v in out.items()},
                "samples": {k: v[:8] for k, v in out.items()}}
        missing = [label for label in labels if not out.get(label)]
        if missing:
            info["missing"] = missing  # those labels fall back to the no-rationale seed prompt
            log.warning("s3 %s: no usable rationales for %s; their seed uses the task's prompt", task.name, missing)
        return out, info

    def seed_rows(
        self,
        ctx: SynthesisContext,
        reasons: dict[str, list[str]],
        per_label: int,
        tracker: "_Tracker",
        record_dropped: bool = True,
    ) -> tuple[list[Example], dict[str, Any]]:
        c = self.config
        config = ZeroGenConfig(
            per_label=per_label, oversample=c.oversample, max_rounds=c.max_rounds, seed=derive_seed(c.seed, "seed"),
            temperature=c.temperature, top_p=c.top_p, top_k=c.top_k, max_new_tokens=c.max_new_tokens,
            stop=c.stop, postprocess=c.postprocess,
        )
        seed_ctx = SynthesisContext(
            task=ctx.task, generator=ctx.generator, seed=ctx.seed, train=ctx.train, dev=ctx.dev, pool=ctx.pool,
            progress=tracker.forward,
        )
        dataset = _SeedGen(config, self, reasons, ctx.task).synthesize(seed_ctx)
        if record_dropped:  # a fill re-runs the seed loop: its first rows' drops are already recorded
            self.dropped_rows += dataset.dropped
        card = {k: dataset.card[k] for k in ("generated", "kept_after_filters", "selected", "rounds", "postprocess", "shortfall")}
        return dataset.examples, card

    def student_name(self, task: Task) -> str:
        if self.config.student:
            return self.config.student
        return task.spec.default_student

    def round(
        self,
        ctx: SynthesisContext,
        gold: list[Example],
        current: list[Example],
        round_no: int,
        budget: dict[str, int],
        tracker: "_Tracker",
        best: float | None = None,
    ) -> tuple[dict[str, Any], list[Example]]:
        """One EES round: train a fresh student on the current set, find its gold errors, extrapolate them —
        unless the student's gold score did not improve on the best earlier round's (`stop_when_flat`)."""
        from fewforge.evaluation.metrics import per_example, primary_metric

        c, task = self.config, ctx.task
        assert ctx.train_learner is not None
        train = list(ctx.train) if c.student_data == "real+synthetic" else []
        t0 = time.perf_counter()
        learner = ctx.train_learner(train, list(ctx.dev), current, self.student_name(task), c.student_options)
        predicted = learner.predict(gold)
        scores = per_example(task, [task.spec.gold(e) for e in gold], predicted) or []
        metric = primary_metric(task)
        threshold = c.error_threshold if c.error_threshold is not None else (0.5 if metric == "rouge_l" else 1.0)
        errors = [(e, p) for e, p, s in zip(gold, predicted, scores) if s < threshold]
        train_seconds = time.perf_counter() - t0
        gold_score = sum(scores) / max(len(scores), 1)
        if c.stop_when_flat and best is not None and gold_score <= best:
            stopped = f"gold {metric} {gold_score:.4f} did not improve on {best:.4f}: no more rounds"
            added, info = [], {"stopped": stopped}
        else:
            tracker.total += math.ceil(sum(budget.values()) * c.oversample)
            added, info = self.extrapolate(ctx, errors, budget, "ees", round_no, current, tracker.step)
        return {
            "round": round_no,
            "trained_on": len(current) + len(train),
            "metric": metric,
            "gold_score": round(gold_score, 4),
            "error_threshold": threshold,
            "errors": dict(Counter(task.group(e) for e, _ in errors)),
            "n_errors": len(errors),
            "error_ids": [e.id for e, _ in errors],
            "budget": budget,
            "student_seconds": round(train_seconds, 2),
            **info,
        }, added


# -- helpers ---------------------------------------------------------------------------------------------


class _Tracker:
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


def _check_disjoint(training: Sequence[Example], gold: Sequence[Example]) -> None:
    """No real training row is a gold row (a bug if one is: the gold set is chosen outside the train split;
    synthetic copies of gold rows are dropped in `extrapolate` and near-copies flagged by `leakage`)."""
    ids = {e.id for e in gold if e.id}
    texts = {normalize(" ".join(e.inputs.values())) for e in gold}
    for e in training:
        if (e.id and e.id in ids) or normalize(" ".join(e.inputs.values())) in texts:
            raise AssertionError(f"gold row {e.id or e.inputs} would enter training")


def _ordered(task: Task, rows: list[Example]) -> list[Example]:
    """Seed rows then adds, grouped by label in the task's order (the grid takes the first n per label)."""
    order = {g: i for i, g in enumerate(task.groups)}
    return sorted(rows, key=lambda e: order.get(task.group(e), 0))


def _take_after(task: Task, rows: list[Example], skip: int, short: dict[str, int]) -> list[Example]:
    """Rows n = skip .. skip + short[group] - 1 of each group (the part of a bigger seed set not yet used)."""
    seen: Counter[str] = Counter()
    out = []
    for e in rows:
        g = task.group(e)
        if skip <= seen[g] < skip + max(short.get(g, 0), 0):
            out.append(e)
        seen[g] += 1
    return out
