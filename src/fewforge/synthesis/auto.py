"""`auto`: try the landed methods at a small budget on the user's own few examples, then spend the full
budget on the one that helps most.

The search (issue 16; the question distilabel #827 users ask: which method helps on *my* task?):
1. Every candidate method (and, by default, `none`: the real rows alone) synthesizes `search_per_label`
   rows; a fresh student (the linear probe for classification, the kind's student otherwise) trains on
   the real few-shot rows + those rows and is scored on rows it did not train on:
   * `selection: dev` — the split's few-shot dev set (LM-BFF's model-selection set), in two stratified
     halves: each half is scored by a student trained on the train rows, the other half being all of
     the dev set the candidate may read;
   * `selection: cv` — k-fold cross-validation over train ∪ dev, stratified by label, for splits whose
     dev set is too small to rank anything (`auto`: below `min_dev` rows).
   No candidate reads the rows it is scored on: a method that reads the few-shot rows (GoldGen and S3
   extrapolate the dev rows, DAFTT tunes its teacher on the train rows) synthesizes once per fold, from
   that fold's other rows. Scoring GoldGen on the dev rows it had just paraphrased made it win every
   RTE search by 25–35 points and lose at test time (docs/results/curation.md).
   The student picks its own hyperparameters on those same rows (the linear probe's C), so a score is
   optimistic for every candidate alike: the scores rank candidates, they do not estimate test accuracy.
   The score is the kind's ranking metric (`TaskKind.ranking_metric`; the task's primary metric unless the
   kind names a finer one: on a few held-out QA rows exact match is 0 for every candidate, token F1 is not).
2. The choice is the best score; among candidates within `tolerance` of it (default 0: exact ties only;
   `se`: within one standard error of their paired per-row difference from the best, i.e. "these held-out
   rows cannot tell them apart"), the cheapest — the best score per unit of cost. Cost is the candidate's
   place in the list (`none` first, then the candidates as listed; the defaults are listed cheapest
   first), not its measured seconds: those depend on what the generation cache already held (a grid
   that ran ZeroGen elsewhere makes ZeroGen's search take 0 s), so a rerun would choose differently.
3. The chosen method runs again at the full `per_label`. If `none` wins, the set is empty: the cells
   train on the real rows alone, and the card says synthetic data did not help on this split.

A candidate that cannot run here (a backend without adapters for FewGen/DawGen/DAFTT, a task kind it
does not serve, no pool to annotate) is recorded as skipped with the reason; one that fails is recorded
as failed. `time_budget_s` bounds the search: candidates run in the listed order (cheapest first by
default) and those left when the budget is spent are skipped. Each candidate's search is a stage in the
work folder (`auto-search-<id>/`, through `RunDir.stage`), so an interrupted search resumes at the next
candidate, and a search whose inputs changed is retired to _stale/ (and comes back if they return).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import statistics
import time
from pathlib import Path
from typing import Any, ClassVar, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fewforge.data.io import write_jsonl
from fewforge.data.schema import Example
from fewforge.errors import ConfigError, FewforgeError
from fewforge.files import read_json, write_json
from fewforge.fingerprint import derive_seed, fingerprint
from fewforge.generators.base import AdapterRequest
from fewforge.synthesis.base import MethodConfig, SynthesisContext, SynthesisMethod, SyntheticDataset
from fewforge.tasks.base import Task

log = logging.getLogger(__name__)

NONE = "none"  # the real-rows-only candidate


class Candidate(BaseModel):
    """One method to try: a registered name, its options, and an id when a method appears twice."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    id: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.id or self.name

    @field_validator("id")
    @classmethod
    def _folder(cls, value: str | None) -> str | None:  # the id names the candidate's search folder
        if value is not None:
            from fewforge.names import check_name

            try:
                check_name(value, "candidate id")
            except FewforgeError as exc:
                raise ValueError(f"{exc.message} ({exc.hint})") from None
        return value


# Cheapest first, so a time budget cuts the expensive ones: ZeroGen (generation only), GoldGen (one
# generation per gold row), S3 (+ students), DAFTT (+ a teacher), FewGen (+ prompt tuning).
DEFAULT_CANDIDATES: tuple[str, ...] = ("zerogen", "goldgen", "s3", "daftt-annotate", "daftt-generate", "fewgen")


class AutoConfig(MethodConfig):
    # 2: ties go to the earlier-listed candidate, not the faster one; paired `se`. 3: no candidate reads
    # the rows it is scored on. 4: ranked on the kind's ranking metric (QA: F1, not exact match); the
    # search makes at most per_label rows
    version: int = 4
    per_label: int = Field(100, ge=1, description="rows per label of the chosen method (QA and text-to-text: in all)")
    candidates: tuple[Candidate, ...] = Field(
        tuple(Candidate(name=n) for n in DEFAULT_CANDIDATES),
        description="methods tried, in this order: names or {name, id, options}",
    )
    real_only: bool = Field(True, description="also score the real rows alone (the 'none' candidate)")
    search_per_label: int = Field(
        8, ge=1, description="rows per label each candidate synthesizes in the search (at most per_label)"
    )
    student: str | None = Field(None, description="learner scored in the search (None: linear-probe, or the kind's)")
    student_options: dict[str, Any] = Field(default_factory=dict, description="options of that learner")
    selection: Literal["auto", "dev", "cv"] = Field(
        "auto", description="score on the few-shot dev set, by cross-validation over train + dev, or auto: cv "
        "when the dev set has fewer than min_dev rows"
    )
    min_dev: int = Field(16, ge=1, description="selection auto: dev sets smaller than this use cv")
    folds: int = Field(4, ge=2, description="cv folds")
    tolerance: float | Literal["se"] = Field(
        0.0, description="scores within this of the best count as ties, broken by cost (list order); 'se': "
        "within one standard error of the paired per-row difference from the best"
    )
    time_budget_s: float | None = Field(None, gt=0, description="search seconds; later candidates are skipped")
    seed: int = Field(0, description="mixed with the split seed into the cv folds")

    @field_validator("candidates", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:  # a plain name is shorthand for {name: ...}
        return [{"name": v} if isinstance(v, str) else v for v in value] if isinstance(value, (list, tuple)) else value

    @model_validator(mode="after")
    def _distinct(self) -> "AutoConfig":
        labels = [c.label for c in self.candidates]
        duplicates = sorted({x for x in labels if labels.count(x) > 1})
        if duplicates:
            raise ValueError(f"candidates appear twice: {duplicates}; give them distinct ids")
        if any(c.name in ("auto", NONE) for c in self.candidates):
            raise ValueError(f"a candidate cannot be auto itself or {NONE!r} (that is real_only)")
        return self


class Auto(SynthesisMethod):
    name = "auto"
    Config = AutoConfig
    config: AutoConfig
    reads_fewshot = True
    citation: ClassVar[str] = ""

    def synthesize(self, ctx: SynthesisContext) -> SyntheticDataset:
        c, task = self.config, ctx.task
        if ctx.train_learner is None:
            raise ConfigError("auto scores candidates with a student, and this context has no learner factory",
                              hint="run auto through `fewforge run` or `fewforge generate`")
        if not ctx.train:
            raise ConfigError("auto chooses on the real few-shot examples, and there are none",
                              hint="run it with shots (a grid or --shots)")
        started = time.perf_counter()
        workdir = Path(ctx.workdir) if ctx.workdir is not None else _tempdir()
        selection = c.selection if c.selection != "auto" else ("cv" if len(ctx.dev) < c.min_dev else "dev")
        folds = self._folds(ctx, selection)
        candidates = ([Candidate(name=NONE)] if c.real_only else []) + list(c.candidates)
        results: list[dict[str, Any]] = []
        for i, cand in enumerate(candidates):
            spent = time.perf_counter() - started
            if i > 0 and c.time_budget_s is not None and spent > c.time_budget_s:  # the first always runs
                results.append(_row(cand, "skipped", reason=f"time budget spent ({spent:.0f} s of {c.time_budget_s:g})"))
            else:
                results.append(self._search(ctx, cand, folds, selection, workdir))
            if ctx.progress is not None:
                ctx.progress(i + 1, len(candidates) + 1)
            log.info("auto: %s -> %s", cand.label, _describe(results[-1]))
        chosen = self._choose(results)
        search_seconds = time.perf_counter() - started
        if chosen is None:
            raise ConfigError(
                f"auto: no candidate could run on {task.name!r} ({'; '.join(r['id'] + ' ' + _describe(r) for r in results)})",
                hint="list candidates this backend and task kind can run, or set real_only: true",
            )
        dataset = self._full(ctx, candidates, chosen, workdir)
        if ctx.progress is not None:
            ctx.progress(len(candidates) + 1, len(candidates) + 1)
        dataset.card["auto"] = {
            "selection": selection,
            "folds": len(folds),
            "scored_on": sum(len(held) for _, held in folds),
            "student": self._student(task),
            "metric": _metric(task),
            "search_per_label": self._search_size(),
            "tolerance": c.tolerance,
            "candidates": [{k: v for k, v in r.items() if k != "per_row"} for r in results],
            "chosen": chosen["id"],
            "search_seconds": round(search_seconds, 2),
            "full_seconds": round(time.perf_counter() - started - search_seconds, 2),
            "note": ("synthetic data did not beat the real rows alone on this split: the set is empty"
                     if chosen["id"] == NONE else f"{chosen['id']} scored best ({chosen['score']:.4f})"),
        }
        dataset.card["method"] = "auto"
        return dataset

    # -- search ------------------------------------------------------------------------------------------

    def _search_size(self) -> int:
        # The search is the small budget: a set smaller than the default search (per_label 2, say) is searched
        # at its own size, not with 8 rows the full run never makes (each search student then trained on 4x
        # the synthetic rows of the set it was choosing).
        return min(self.config.search_per_label, self.config.per_label)

    def _student(self, task: Task) -> str:
        return self.config.student or task.spec.default_student

    def _folds(self, ctx: SynthesisContext, selection: str) -> list[tuple[list[Example], list[Example]]]:
        """(student's train rows, held-out rows) pairs: two halves of dev for `dev`, else k stratified folds
        of train + dev. A candidate that reads the few-shot rows reads those outside the fold's held-out."""
        if selection == "dev":
            if len(ctx.dev) < 2:
                raise ConfigError("auto selection: dev needs a few-shot dev set of 2 rows or more", hint="use selection: cv")
            return [(list(ctx.train), held) for held in self._stratified(ctx, ctx.dev, 2)]
        rows = [*ctx.train, *ctx.dev]
        held_out = self._stratified(ctx, rows, min(self.config.folds, len(rows)))
        folds = []
        for held in held_out:
            ids = {id(h) for h in held}
            folds.append(([e for e in rows if id(e) not in ids], held))
        return folds

    def _stratified(self, ctx: SynthesisContext, rows: Sequence[Example], k: int) -> list[list[Example]]:
        return stratified_folds(ctx.task, rows, k, derive_seed(ctx.seed, self.config.seed, "auto-folds"))

    def _search(
        self, ctx: SynthesisContext, cand: Candidate, folds: list[tuple[list[Example], list[Example]]],
        selection: str, workdir: Path,
    ) -> dict[str, Any]:
        c, task = self.config, ctx.task
        key = fingerprint({"candidate": cand.model_dump(mode="json"), "per_label": self._search_size(),
                           "selection": selection, "folds": [[e.id for e in held] for _, held in folds],
                           "student": self._student(task), "student_options": c.student_options,
                           "metric": _metric(task)})
        # The search is a stage (`auto-search-<id>/`); the candidate's own inner stages (a FewGen tuning, S3
        # rounds) live outside it, so an interrupted search keeps them when its folder is retired.
        stage = dataclasses.replace(ctx, workdir=workdir).stage(f"auto-search-{cand.label}", key, outputs=("result.json",))
        if stage.done:
            return read_json(stage.path / "result.json")
        work = workdir / f"auto-work-{cand.label}"
        t0 = time.perf_counter()
        sets: list[list[Example]] = [[] for _ in folds]  # the synthetic rows each fold's student trains on
        shortfall: dict[str, Any] = {}
        if cand.name != NONE:
            try:
                method = self._method(ctx, cand, self._search_size())
            except _Skip as skip:
                return _row(cand, "skipped", reason=str(skip))
            try:
                if method.reads_fewshot:  # once per fold, never from the rows the fold scores
                    for i, (_, held) in enumerate(folds):
                        sets[i], card = self._synthesize(method, ctx, work / f"fold{i}", held)
                        shortfall.update(card.get("shortfall") or {})
                else:  # ZeroGen reads no few-shot row: one set serves every fold
                    rows, card = self._synthesize(method, ctx, work, [])
                    sets, shortfall = [rows] * len(folds), card.get("shortfall") or {}
            except FewforgeError as exc:
                log.warning("auto: candidate %s failed: %s", cand.label, exc)
                return _row(cand, "failed", reason=str(exc), seconds=time.perf_counter() - t0)
        scores = self._score(ctx, sets, folds)
        result = _row(
            cand, "scored",
            score=round(statistics.fmean(scores), 4),
            se=round(statistics.stdev(scores) / math.sqrt(len(scores)), 4) if len(scores) > 1 else 0.0,
            n_scored=len(scores),
            rows=round(statistics.fmean(len(rows) for rows in sets), 1),
            seconds=time.perf_counter() - t0,
            shortfall=shortfall or None,
            per_row=scores,  # the paired comparison of `tolerance: se` needs them
        )
        with stage:  # finished (done.json) only once every file is written
            for i, rows in enumerate(sets):
                write_jsonl(stage.path / f"rows-fold{i}.jsonl", rows)
            write_json(stage.path / "result.json", result)
        return result

    @staticmethod
    def _synthesize(
        method: SynthesisMethod, ctx: SynthesisContext, workdir: Path, held: Sequence[Example]
    ) -> tuple[list[Example], dict[str, Any]]:
        """The candidate's rows from the few-shot rows outside `held` (its card too)."""
        dataset = synthesize_outside(method, ctx, workdir, held)
        return dataset.examples, dataset.card

    def _method(self, ctx: SynthesisContext, cand: Candidate, per_label: int) -> SynthesisMethod:
        from fewforge.synthesis import get_method

        if "per_label" in cand.options:
            raise ConfigError(f"auto candidate {cand.label}: per_label is auto's to set",
                              hint="set search_per_label (the search) and the grid's per_label (the full run)")
        method = get_method(cand.name, {**cand.options, "per_label": per_label})
        if ctx.task.kind not in method.kinds:
            raise _Skip(f"{cand.name} does not serve {ctx.task.kind} tasks")
        if method.needs_adapters:
            try:
                ctx.generator.check_adapter(AdapterRequest(cand.name, "", kind="lora"))
            except FewforgeError as exc:
                raise _Skip(exc.message) from None
        return method

    def _score(
        self, ctx: SynthesisContext, sets: Sequence[Sequence[Example]], folds: list[tuple[list[Example], list[Example]]]
    ) -> list[float]:
        """Per-example scores of the task's ranking metric over every held-out row of every fold, each fold's
        student trained on its real rows + its synthetic set."""
        from fewforge.evaluation.metrics import per_example, score

        task, metric = ctx.task, _metric(ctx.task)
        assert ctx.train_learner is not None
        out: list[float] = []
        for (train, held), rows in zip(folds, sets, strict=True):
            learner = ctx.train_learner(train, held, list(rows), self._student(task), self.config.student_options)
            predicted = learner.predict(held)
            gold = [task.spec.gold(e) for e in held]
            values = per_example(task, gold, predicted, metric)
            out.extend(values if values is not None else [score(task, gold, predicted)[metric]] * len(held))
        return out

    def _choose(self, results: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The best score; among the candidates tied with it, the earliest listed (the cheapest)."""
        scored = [r for r in results if r["status"] == "scored"]
        if not scored:
            return None
        best = max(scored, key=lambda r: r["score"])
        ties = [r for r in scored if best["score"] - r["score"] <= self._tolerance(best, r) + 1e-12]
        return ties[0]  # `results` is in list order: `none`, then the candidates cheapest first

    def _tolerance(self, best: dict[str, Any], other: dict[str, Any]) -> float:
        if self.config.tolerance != "se":
            return float(self.config.tolerance)
        a, b = best.get("per_row"), other.get("per_row")
        if not a or not b or len(a) != len(b) or len(a) < 2:  # a search saved before per-row scores
            return float(best["se"])
        # Every candidate is scored on the same held-out rows, so the rows' own difficulty cancels in the
        # per-row difference: its standard error is far below either score's, and only a difference the
        # rows cannot resolve counts as a tie.
        diffs = [x - y for x, y in zip(a, b)]
        return statistics.stdev(diffs) / math.sqrt(len(diffs))

    def _full(
        self, ctx: SynthesisContext, candidates: list[Candidate], chosen: dict[str, Any], workdir: Path
    ) -> SyntheticDataset:
        if chosen["id"] == NONE:
            return SyntheticDataset([], {"method": "auto"})
        cand = next(c for c in candidates if c.label == chosen["id"])
        method = self._method(ctx, cand, self.config.per_label)
        dataset = method.synthesize(dataclasses.replace(ctx, workdir=workdir / f"auto-full-{cand.label}", progress=None))
        dataset.examples = [dataclasses.replace(e, lineage={**e.lineage, "chosen_by": "auto"}) for e in dataset.examples]
        dataset.card = {**dataset.card, "chosen_method": cand.name, "chosen_options": cand.options}
        return dataset


def stratified_folds(task: Task, rows: Sequence[Example], k: int, seed: int) -> list[list[Example]]:
    """`rows` in k folds, each label (group) dealt round-robin over them in a seeded order, each fold in
    the rows' order: every fold holds each label's rows in proportion. Shared with `fewforge fit`'s
    repeated k-fold estimate (fit/estimate.py)."""
    rng = random.Random(seed)
    by_group: dict[str, list[Example]] = {}
    for e in rows:
        by_group.setdefault(task.group(e), []).append(e)
    fold_of: dict[int, int] = {}
    position = 0
    for group in sorted(by_group):
        members = by_group[group][:]
        rng.shuffle(members)
        for e in members:
            fold_of[id(e)] = position % k
            position += 1
    return [[e for e in rows if fold_of[id(e)] == f] for f in range(k)]


def synthesize_outside(
    method: SynthesisMethod, ctx: SynthesisContext, workdir: Path, held: Sequence[Example]
) -> SyntheticDataset:
    """`method`'s set made from the few-shot rows outside `held` only (train and dev both lose them): the
    one way a score on `held` stays honest for a method that reads labeled rows. Used per fold by auto's
    search and by `fewforge fit`'s estimate."""
    out = {id(e) for e in held}
    visible = dataclasses.replace(
        ctx, train=[e for e in ctx.train if id(e) not in out], dev=[e for e in ctx.dev if id(e) not in out],
        workdir=workdir, progress=None,
    )
    return method.synthesize(visible)


class _Skip(Exception):
    """A candidate that cannot run in this context (said once in the card, not an error)."""


def _row(cand: Candidate, status: str, **facts: Any) -> dict[str, Any]:
    if "seconds" in facts:
        facts["seconds"] = round(facts["seconds"], 2)
    return {"id": cand.label, "method": cand.name, "options": cand.options, "status": status, **facts}


def _metric(task: Task) -> str:
    from fewforge.evaluation.metrics import ranking_metric

    return ranking_metric(task)


def _describe(r: dict[str, Any]) -> str:
    if r["status"] == "scored":
        return f"{r['score']:.4f} ± {r['se']:.4f} in {r['seconds']:.0f} s"
    return f"{r['status']}: {r.get('reason', '')}"


def _tempdir() -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix="fewforge-auto-"))

