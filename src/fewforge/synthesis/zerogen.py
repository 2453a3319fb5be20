"""ZeroGen (Ye et al. 2022): label-conditional generation from the task prompt alone, then filtering.

For each label the generator answers `task.generation_prompt(label)` many times (a different seed per
prompt position); pair tasks condition each prompt on a real first sentence (ZeroGen "uses the given
rather than generated context/premise" for NLI, scripts/run_cls.sh) and generate the second. The raw
completions are cleaned and filtered (`postprocess.py`, every drop counted), then exactly `per_label`
examples per label are kept: the first ones in prompt order. Labels left short after filtering get
top-up rounds (at most `max_rounds` in all), sized from that label's observed keep rate.

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
from typing import Callable, Iterator, Sequence

from pydantic import Field

from fewforge.data.schema import Example
from fewforge.errors import DataError
from fewforge.generators.base import Completion, Generator, SamplingParams
from fewforge.synthesis.base import MethodConfig, SynthesisMethod, SyntheticDataset
from fewforge.synthesis.postprocess import Draft, PostprocessConfig, PostprocessReport, postprocess
from fewforge.tasks.base import Task

log = logging.getLogger(__name__)

# Generated-token budget and stop strings by task kind (used when the config leaves them unset).
DEFAULT_MAX_NEW_TOKENS = {"single": 64, "pair": 48}
DEFAULT_STOP: dict[str, tuple[str, ...]] = {"single": (), "pair": ("\n\n",)}


class ZeroGenConfig(MethodConfig):
    version: int = 1
    per_label: int = Field(100, ge=1, description="examples kept per label")
    oversample: float = Field(
        1.1, ge=1.0, description="prompts per label = ceil(per_label * oversample); SmolLM2 on BBC kept 97%"
    )
    max_rounds: int = Field(3, ge=1, description="generation rounds in all (the first plus top-ups)")
    seed: int = Field(0, description="sampling seed (per-prompt seeds derive from it) and parent draw seed")
    temperature: float = Field(0.9, ge=0, description="S3 §4: nucleus sampling, temperature 0.9")
    top_p: float = Field(0.9, gt=0, le=1, description="ZeroGen scripts/run_cls.sh: top_p 0.9")
    top_k: int = Field(0, ge=0, description="0 = off (ZeroGen: top_k 0)")
    repetition_penalty: float = Field(1.0, gt=0)
    max_new_tokens: int | None = Field(None, ge=1, description="None: 64 for single-input tasks, 48 for pairs")
    stop: tuple[str, ...] | None = Field(None, description="None: none for single tasks, blank line for pairs")
    postprocess: PostprocessConfig = Field(default_factory=PostprocessConfig)


class ZeroGen(SynthesisMethod):
    name = "zerogen"
    Config = ZeroGenConfig
    config: ZeroGenConfig

    def sampling_params(self, task: Task) -> SamplingParams:
        c = self.config
        return SamplingParams(
            temperature=c.temperature,
            top_k=c.top_k,
            top_p=c.top_p,
            max_new_tokens=c.max_new_tokens or DEFAULT_MAX_NEW_TOKENS[task.kind],
            stop=c.stop if c.stop is not None else DEFAULT_STOP[task.kind],
            seed=c.seed,
            repetition_penalty=c.repetition_penalty,
        )

    def synthesize(
        self,
        task: Task,
        real: Sequence[Example],
        generator: Generator,
        *,
        pool: Sequence[Example] = (),
        progress: Callable[[int, int], None] | None = None,
    ) -> SyntheticDataset:
        c = self.config
        params = self.sampling_params(task)
        model = f"{generator.backend}:{generator.model_id}"
        parents = _parent_stream(task, real, pool, c.seed)
        tracker = _Progress(progress)

        drafts: list[Draft] = []
        rounds: list[dict] = []
        want = {label: math.ceil(c.per_label * c.oversample) for label in task.label_names}
        tokens = fresh_tokens = cached = 0
        gen_seconds = 0.0
        started = time.perf_counter()
        kept: list[Example] = []
        report = PostprocessReport()
        for round_no in range(1, c.max_rounds + 1):
            plan = self._plan(task, want, parents)
            tracker.add_total(len(plan))
            t0 = time.perf_counter()
            completions = generator.generate(
                [prompt for _, prompt, _ in plan], params, start_index=len(drafts), progress=tracker.step
            )
            gen_seconds += time.perf_counter() - t0
            for (label, prompt, parent), completion in zip(plan, completions, strict=True):
                candidate = completion.candidates[0]
                tokens += candidate.n_tokens
                cached += completion.cached
                fresh_tokens += 0 if completion.cached else candidate.n_tokens
                drafts.append(self._draft(len(drafts), round_no, label, prompt, parent, completion, params, model))
            # Re-filter everything generated so far: de-duplication must see earlier rounds, and one
            # pass over all drafts in prompt order keeps the result independent of how rounds split.
            kept, report = postprocess(task, drafts, c.postprocess, real=real)
            counts = dict(Counter(e.label for e in kept))
            counts = {label: counts.get(label, 0) for label in task.label_names}
            rounds.append({"round": round_no, "prompts": dict(Counter(l for l, _, _ in plan)), "kept": counts})
            short = {label: c.per_label - n for label, n in counts.items() if n < c.per_label}
            if not short or round_no == c.max_rounds:
                break
            generated = Counter(d.label for d in drafts)
            want = {
                label: math.ceil(need * c.oversample / max(counts[label] / generated[label], 0.2))
                for label, need in short.items()
            }

        examples = [e for label in task.label_names for e in [e for e in kept if e.label == label][: c.per_label]]
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
        return SyntheticDataset(examples=examples, card=card)

    def _draft(
        self,
        index: int,
        round_no: int,
        label: str,
        prompt: str,
        parent: Example | None,
        completion: Completion,
        params: SamplingParams,
        model: str,
    ) -> Draft:
        """One raw completion with its full lineage (what a reader needs to regenerate or audit it)."""
        candidate = completion.candidates[0]
        return Draft(
            id=f"zerogen-{index:06d}",
            label=label,
            text=candidate.text,
            finish_reason=candidate.finish_reason,
            parent={"text_a": parent.inputs["text_a"]} if parent else {},
            prompt=prompt,
            lineage={
                "method": self.name,
                "method_version": self.config.version,
                "model": model,
                "prompt": prompt,
                "sampling": params.to_dict(),
                "prompt_index": index,
                "request_seed": params.request_seed(index),
                "round": round_no,
                "parent_id": (parent.id or None) if parent else None,
                "raw": candidate.text,
                "finish_reason": candidate.finish_reason,
                "n_tokens": candidate.n_tokens,
                "cached": completion.cached,
            },
        )

    def _plan(
        self, task: Task, want: dict[str, int], parents: Iterator[Example] | None
    ) -> list[tuple[str, str, Example | None]]:
        """(label, prompt, parent) per request, label by label. For pairs, prompt i of every label
        conditions on the same first sentence, so labels differ by the relation, not the premise."""
        firsts = [next(parents) for _ in range(max(want.values()))] if parents is not None else []
        plan: list[tuple[str, str, Example | None]] = []
        for label in task.label_names:
            for i in range(want.get(label, 0)):
                parent = firsts[i] if firsts else None
                plan.append((label, task.generation_prompt(label, parent), parent))
        return plan


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


def _parent_stream(task: Task, real: Sequence[Example], pool: Sequence[Example], seed: int) -> Iterator[Example] | None:
    """First sentences for a pair task: the pool (or the real few-shot set when the pool is empty),
    shuffled with random.Random(seed) and cycled, so every sentence is used before any repeats."""
    if task.kind != "pair":
        return None
    source = [e for e in pool if e.inputs.get("text_a", "").strip()] or [
        e for e in real if e.inputs.get("text_a", "").strip()
    ]
    if not source:
        raise DataError(
            f"task {task.name!r} is a pair task: zerogen needs first sentences to condition on",
            hint="pass a pool (or real examples) with a non-empty text_a",
        )
    rng = random.Random(seed)

    def cycle() -> Iterator[Example]:
        while True:
            order = list(source)
            rng.shuffle(order)
            yield from order

    return cycle()


def _check(task: Task, examples: list[Example]) -> None:
    """The method's promise: every example has a task label and non-empty inputs."""
    for e in examples:
        task.check_label(e.label)
        if any(not e.inputs.get(f, "").strip() for f in task.input_fields):
            raise AssertionError(f"zerogen produced an empty input in {e.id}")  # a bug, not a user error
