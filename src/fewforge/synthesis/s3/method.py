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

The gold set, the extrapolation step and GoldGen (S3 §3.1): extrapolation.py.

Every stage is resumable: rationales and completions come back from the generator cache, and each EES
round's errors and adds are a stage of their own (`s3-round<n>/` in the method's work folder, through
`RunDir.stage`), reused on a rerun and retired to _stale/ when the round's inputs change.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from fewforge.data.io import read_jsonl, write_jsonl
from fewforge.data.schema import Example
from fewforge.errors import ConfigError
from fewforge.files import read_json, write_json
from fewforge.fingerprint import derive_seed, fingerprint
from fewforge.synthesis.base import (
    SynthesisContext,
    SyntheticDataset,
)
from fewforge.synthesis.s3.extrapolation import (
    Extrapolation,
    ExtrapolationConfig,
    Tracker,
    check_disjoint,
    ordered_rows,
    take_after,
)
from fewforge.synthesis.s3.prompts import parse_reasons, prompts_for, rationale_prompt, seed_prompt
from fewforge.synthesis.zerogen import ZeroGen, ZeroGenConfig
from fewforge.tasks.base import Task

log = logging.getLogger(__name__)


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


class S3(Extrapolation):
    name = "s3"
    Config = S3Config
    config: S3Config

    def synthesize(self, ctx: SynthesisContext) -> SyntheticDataset:
        c, task = self.config, ctx.task
        started = time.perf_counter()
        self.dropped_rows = []
        gold, source = self.gold_set(ctx)
        check_disjoint(ctx.train, gold)
        ees = c.ees and c.rounds > 0
        if ees and ctx.train_learner is None:
            raise ConfigError(
                "s3: error extrapolation trains a student, and this caller gave no learner factory",
                hint="run s3 through `fewforge generate` / `fewforge run`, or set ees: false",
            )
        groups = task.groups
        seed_n = c.per_label if not ees else max(1, round(c.per_label * c.seed_share))
        tracker = Tracker(ctx.progress)
        workdir = Path(ctx.workdir) if ctx.workdir is not None else None
        key = fingerprint(
            {
                "config": c.identity(),
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
            extra = take_after(task, more, seed_n, short)
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
        return SyntheticDataset(examples=ordered_rows(task, rows), card=card, dropped=self.dropped_rows)

    # -- stages ----------------------------------------------------------------------------------------

    def rationales(self, ctx: SynthesisContext) -> tuple[dict[str, list[str]], dict[str, Any]]:
        """Alg. 1's rationale lists, per label (single-sentence tasks; §2.4: none for pairs and QA)."""
        c, task = self.config, ctx.task
        prompts = prompts_for(task, c.wording)
        if not c.rationales or not task.spec.rationales or not prompts.rationale:
            why = "off" if not c.rationales else f"not used for {task.kind} tasks (S3 §2.4: no-rationale seed)"
            return {}, {"used": False, "why": why}
        # the method's sampling with top-k instead of a nucleus, room for a list, no stop string
        params = dataclasses.replace(
            self.sampling_params(task, ctx.seed, "rationales"), top_k=c.rationale_top_k, top_p=1.0,
            max_new_tokens=96, stop=(),
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
        tracker: "Tracker",
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
        tracker: "Tracker",
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
