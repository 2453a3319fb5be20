"""ZeroGen (Ye et al. 2022): label-conditional generation from the task prompt alone, then filtering.

For each label (one group for QA and text-to-text) the generator answers `task.generation_prompt(label)`
many times (a different seed per prompt position); kinds with given fields condition each prompt on a
pool row: a pair's real first sentence (ZeroGen "uses the given rather than generated context/premise"
for NLI, scripts/run_cls.sh), a QA context and an answer span (S3 §2.4), and generate the rest. The raw
completions are cleaned and filtered (`postprocess.py`, every drop counted), then exactly `per_label`
examples per label are kept: the first ones in prompt order. Labels left short after filtering get
top-up rounds (at most `max_rounds` in all), sized from that label's observed keep rate.

Seeds: the sampling seed of every request derives from the few-shot split seed (`ctx.seed`) and the
`seed` option, so the seeds of a grid differ in their synthetic data too, and the std over seeds covers
generation. ZeroGen never reads the few-shot examples, so one set per (task, seed) serves every shots
value of a grid (`reads_fewshot = False`).

Decoding defaults: nucleus sampling with temperature 0.9 (S3 §4, PROTOCOLS §2: S3 ran ZeroGen as its
baseline with this setting); top_p 0.9 and top_k 0 as in ZeroGen's released scripts/run_cls.sh.
ZeroGen generates at most 40 tokens; here single-input tasks get 80 (a BBC headline plus two or three
sentences, then cut at the last full sentence) and pairs 48 (one sentence; "\n\n" stops the
explanation SmolLM2 likes to add after it).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import Counter
from typing import Callable, Iterator, Literal, Mapping, Sequence

from pydantic import Field
from scipy.stats import binom

from fewforge.data.schema import Example
from fewforge.errors import DataError
from fewforge.fingerprint import derive_seed
from fewforge.generators.base import AdapterRequest, Completion, Generator, SamplingParams
from fewforge.synthesis.base import (
    MethodConfig,
    RequestPlan,
    SynthesisContext,
    SynthesisMethod,
    SyntheticDataset,
    sampling_params,
)
from fewforge.synthesis.postprocess import Draft, PostprocessConfig, PostprocessReport, postprocess
from fewforge.tasks.base import Task

log = logging.getLogger(__name__)

class ZeroGenConfig(MethodConfig):
    version: int = 3  # 2: seeds derive from the split seed; 3: top-ups sized for a 95% chance of filling
    per_label: int = Field(100, ge=1, description="examples kept per label")
    oversample: float = Field(
        1.1, ge=1.0, description="prompts per label = ceil(per_label * oversample); SmolLM2 on BBC kept 97%"
    )
    max_rounds: int = Field(3, ge=1, description="generation rounds in all (the first plus top-ups)")
    seed: int = Field(0, description="mixed with the split seed into the sampling seed (per-prompt seeds derive "
                      "from it) and the seed that draws pair tasks' first sentences")
    temperature: float = Field(0.9, ge=0, description="S3 §4: nucleus sampling, temperature 0.9")
    top_p: float = Field(0.9, gt=0, le=1, description="ZeroGen scripts/run_cls.sh: top_p 0.9")
    top_k: int = Field(0, ge=0, description="0 = off (ZeroGen: top_k 0)")
    repetition_penalty: float = Field(1.0, gt=0)
    max_new_tokens: int | None = Field(
        None, ge=1, description="None: the task kind's (64 single, 48 pair and QA, 64 text-to-text)"
    )
    stop: tuple[str, ...] | None = Field(None, description="None: the kind's (a blank line, none for single tasks)")
    postprocess: PostprocessConfig = Field(default_factory=PostprocessConfig)
    answers: Literal["spans", "pool"] = Field(
        "spans", description="extractive QA: answers are spans chosen from the context without labels (names, "
        "numbers, dates), or 'pool': the pool rows' own answers, as S3 conditions on context & answer (reads labels)"
    )


CITATION = """@inproceedings{ye-etal-2022-zerogen,
  title = {{ZeroGen}: Efficient Zero-shot Learning via Dataset Generation},
  author = {Ye, Jiacheng and Gao, Jiahui and Li, Qintong and Xu, Hang and Feng, Jiangtao and Wu, Zhiyong and Yu, Tao and Kong, Lingpeng},
  booktitle = {Proceedings of EMNLP},
  year = {2022}
}"""


class ZeroGen(SynthesisMethod):
    name = "zerogen"
    Config = ZeroGenConfig
    config: ZeroGenConfig
    reads_fewshot = False
    citation = CITATION

    def sampling_params(self, task: Task, split_seed: int = 0) -> SamplingParams:
        return sampling_params(self.config, task, derive_seed(split_seed, self.config.seed))

    def synthesize(self, ctx: SynthesisContext) -> SyntheticDataset:
        c = self.config
        task, generator, real = ctx.task, ctx.generator, ctx.train
        params = self.sampling_params(task, ctx.seed)
        model = f"{generator.backend}:{generator.model_id}"
        parent_at = _Parents(_parent_stream(task, real, ctx.pool, params.seed, answers=c.answers))
        tracker = _Progress(ctx.progress)
        labels = task.groups  # the labels; one group "" for QA and text-to-text

        drafts: list[tuple[tuple[int, int], Draft]] = []  # ((j, label index), draft)
        rounds: list[dict] = []
        next_j = dict.fromkeys(labels, 0)
        want = {label: math.ceil(c.per_label * c.oversample) for label in labels}
        tokens = fresh_tokens = cached = 0
        gen_seconds = 0.0
        started = time.perf_counter()
        kept: list[Example] = []
        report = PostprocessReport()
        for round_no in range(1, c.max_rounds + 1):
            plan = _round(labels, next_j, want)
            tracker.add_total(len(plan))
            prompts = [self._prompt(task, labels[k], parent_at(j)) for j, k in plan]
            where = [j * len(labels) + k for j, k in plan]
            t0 = time.perf_counter()
            completions = self._generate(generator, plan, prompts, params, where, tracker.step)
            gen_seconds += time.perf_counter() - t0
            for (j, k), prompt, position, completion in zip(plan, prompts, where, completions, strict=True):
                candidate = completion.candidates[0]
                tokens += candidate.n_tokens
                cached += completion.cached
                fresh_tokens += 0 if completion.cached else candidate.n_tokens
                parent = parent_at(j)
                given = task.spec.condition_values(task, parent) if parent is not None else {}
                draft = self._draft(position, j, round_no, labels[k], prompt, parent, completion, params, model, given)
                drafts.append(((j, k), draft))
            for label in labels:
                next_j[label] += want.get(label, 0)
            # Re-filter everything generated so far, in (j, label) order: de-duplication must see earlier
            # rounds, and one pass in a fixed order keeps the result independent of how rounds split.
            drafts.sort(key=lambda item: item[0])
            kept, report = postprocess(task, [d for _, d in drafts], c.postprocess, real=real)
            counts = dict(Counter(task.group(e) for e in kept))
            counts = {label: counts.get(label, 0) for label in labels}
            asked = {labels[k]: n for k, n in Counter(k for _, k in plan).items()}
            rounds.append({"round": round_no, "prompts": asked, "kept": counts})
            short = {label: c.per_label - n for label, n in counts.items() if n < c.per_label}
            if not short or round_no == c.max_rounds:
                break
            want = {
                label: top_up_size(need, counts[label] / next_j[label], c.oversample) for label, need in short.items()
            }

        examples = [e for label in labels for e in [e for e in kept if task.group(e) == label][: c.per_label]]
        _check(task, examples)
        shortfall = {label: c.per_label - n for label, n in counts.items() if n < c.per_label}
        if shortfall:
            log.warning(
                "zerogen: %s has fewer than %d examples per label after %d rounds (missing %s); "
                "raise oversample/max_rounds or loosen the postprocess filters",
                task.name, c.per_label, len(rounds), shortfall,
            )
        card = {
            "method": self.name,
            "method_version": c.version,
            "config": c.model_dump(mode="json"),
            "seed": params.seed,
            "split_seed": ctx.seed,
            "citation": self.citation,
            "task": task.name,
            "model": {"backend": generator.backend, "model_id": generator.model_id},
            "sampling": params.to_dict(),
            "per_label_requested": c.per_label,
            "per_label": {label: min(n, c.per_label) for label, n in counts.items()},
            "shortfall": shortfall,
            "generated": len(drafts),
            "kept_after_filters": len(kept),
            "selected": len(examples),
            "rounds": rounds,
            "postprocess": report.to_dict(),
            "tokens_generated": tokens,
            "cached_prompts": cached,
            "generation_time_s": round(gen_seconds, 2),
            "tokens_per_s": round(fresh_tokens / gen_seconds, 1) if gen_seconds and fresh_tokens else None,
            "wall_time_s": round(time.perf_counter() - started, 2),
        }
        return SyntheticDataset(examples=examples, card=card, dropped=report.rows)

    def request_plan(self, ctx: SynthesisContext) -> RequestPlan | None:
        """Round 1 as `synthesize` sends it, when this class generates as ZeroGen does (a subclass that
        changes prompts, adapters or the generation call is not planned: its requests depend on tuning)."""
        own = (type(self)._prompt, type(self)._generate, type(self)._adapter)
        if own != (ZeroGen._prompt, ZeroGen._generate, ZeroGen._adapter):
            return None
        c, task = self.config, ctx.task
        params = self.sampling_params(task, ctx.seed)
        parent_at = _Parents(_parent_stream(task, ctx.train, ctx.pool, params.seed, answers=c.answers))
        labels = task.groups
        plan = _round(labels, dict.fromkeys(labels, 0), {label: math.ceil(c.per_label * c.oversample) for label in labels})
        prompts = [self._prompt(task, labels[k], parent_at(j)) for j, k in plan]
        return RequestPlan(prompts, params, [j * len(labels) + k for j, k in plan])

    def _prompt(self, task: Task, label: str, parent: Example | None) -> str:
        """The request for one example of `label` (a subclass may send less: the context after a tuned prompt)."""
        return task.generation_prompt(label, parent)

    def _generate(
        self,
        generator: Generator,
        plan: Sequence[tuple[int, int]],
        prompts: list[str],
        params: SamplingParams,
        where: list[int],
        progress: Callable[[int], None],
    ) -> list[Completion]:
        """Completions of `prompts` (plan entry (j, label index) each), in order; one call for every label."""
        adapter = self._adapter()
        extra = {"adapter": adapter} if adapter is not None else {}
        return generator.generate(prompts, params, start_index=where, progress=progress, **extra)

    def _adapter(self) -> AdapterRequest | None:
        """One adapter sent with every request (a subclass's tuned teacher); None: the bare generator."""
        return None

    def _lineage(self, label: str) -> dict:
        """What a subclass adds to (or overrides in) a row's lineage: the adapter that wrote it."""
        return {}

    def _draft(
        self,
        index: int,
        label_index: int,
        round_no: int,
        label: str,
        prompt: str,
        parent: Example | None,
        completion: Completion,
        params: SamplingParams,
        model: str,
        given: Mapping[str, str] | None = None,
    ) -> Draft:
        """One raw completion with its full lineage (what a reader needs to regenerate or audit it)."""
        candidate = completion.candidates[0]
        return Draft(
            id=f"{self.name}-{index:06d}",
            label=label,
            text=candidate.text,
            finish_reason=candidate.finish_reason,
            parent=dict(given or {}),
            prompt=prompt,
            lineage={
                "method": self.name,
                "method_version": self.config.version,
                "model": model,
                "prompt": prompt,
                "sampling": params.to_dict(),
                "prompt_index": index,
                "label_prompt_index": label_index,
                "request_seed": params.request_seed(index),
                "round": round_no,
                "parent_id": (parent.id or None) if parent else None,
                "raw": candidate.text,
                "finish_reason": candidate.finish_reason,
                "n_tokens": candidate.n_tokens,
                "cached": completion.cached,
                **self._lineage(label),
            },
        )


def top_up_size(need: int, keep_rate: float, oversample: float = 1.0, confidence: float = 0.95) -> int:
    """Prompts for a top-up round: enough that `need` rows survive the filters with probability
    `confidence` if each prompt is kept independently at `keep_rate` (floored at 0.2), and never fewer
    than need * oversample / keep_rate. Sizing by the expected keep rate alone fails about half the time
    when only a row or two is missing (a CI machine's RTE set came up one row short after 3 rounds)."""
    rate = max(keep_rate, 0.2)
    n = math.ceil(need * oversample / rate)
    while binom.sf(need - 1, n, rate) < confidence:
        n += 1
    return n


def _round(labels: Sequence[str], next_j: Mapping[str, int], want: Mapping[str, int]) -> list[tuple[int, int]]:
    """A round's requests as (j, label index), in (j, label) order. Prompt j of label k sits at position
    j * n_labels + k: a label's j-th request has the same prompt and seed whatever per_label is, so a
    bigger set extends a smaller one (and the cache serves the common part), and in pair tasks prompt j
    of every label shares first sentence j."""
    return sorted(
        (j, k) for k, label in enumerate(labels) for j in range(next_j[label], next_j[label] + want.get(label, 0))
    )


class _Parents:
    """Rows to condition on by request index j, drawn from the stream as far as needed (None when the
    kind conditions on nothing)."""

    def __init__(self, stream: Iterator[Example] | None) -> None:
        self.stream, self.rows = stream, []

    def __call__(self, j: int) -> Example | None:
        if self.stream is None:
            return None
        while len(self.rows) <= j:
            self.rows.append(next(self.stream))
        return self.rows[j]


class _Progress:
    """Adapts the generator's per-prompt increments (called from worker threads) to progress(done, total)."""

    def __init__(self, callback: Callable[[int, int], None] | None) -> None:
        self.callback, self.done, self.total = callback, 0, 0
        self._lock = threading.Lock()

    def add_total(self, n: int) -> None:
        self.total += n

    def step(self, n: int) -> None:
        with self._lock:
            self.done += n
            if self.callback is not None:
                self.callback(self.done, self.total)


def _parent_stream(
    task: Task, real: Sequence[Example], pool: Sequence[Example], seed: int, **options: str
) -> Iterator[Example] | None:
    """Rows to condition on when the kind copies fields into the prompt (a pair's first sentence, a QA
    context and answer): the kind's conditions from the pool (or from the real few-shot set when the pool
    has none), shuffled with random.Random(seed) and cycled, so every one is used before any repeats."""
    if not task.given_fields:
        return None
    rng = random.Random(seed)
    source = task.spec.conditions(task, pool, rng, **options) or task.spec.conditions(task, real, rng, **options)
    if not source:
        raise DataError(
            f"task {task.name!r}: zerogen needs {', '.join(task.given_fields)} to condition on",
            hint=f"pass a pool (or real examples) with a non-empty {' and '.join(task.given_fields)}",
        )

    def cycle() -> Iterator[Example]:
        while True:
            order = list(source)
            rng.shuffle(order)
            yield from order

    return cycle()


def _check(task: Task, examples: list[Example]) -> None:
    """The method's promise: every example has a task label (a target) and non-empty inputs."""
    for e in examples:
        task.check_label(e.label)
        if not e.label.strip() or any(not e.inputs.get(f, "").strip() for f in task.input_fields):
            raise AssertionError(f"synthesis produced an empty input in {e.id}")  # a bug, not a user error
