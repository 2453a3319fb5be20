"""The SynthesisMethod contract, checked on every registered method for every task kind it declares, through
a scripted generator (plumbing, never quality): it writes a small set whose rows are valid examples of the
task with lineage naming a registered method, a JSON data card, and a rerun in the same work folder over
the same generation cache resumes, making no new generation request and returning the same rows.
Parametrised from `METHODS` and the kind registry, so a new registration is covered without a test.

Methods that tune the generator (`needs_adapters`) train the packaged SmolLM2: those 12 cases, and auto's
search on text-to-text (a causal-LM student per candidate and fold, each generating its dev rows), take longer
than CI allows on 2 cores, so they carry their own marker (run with -m contract_costly) and a 40-minute limit.
Methods that train a fine-tuned student on QA or text-to-text train it 2 steps here (`_small_options`): those
cases run in CI's slow set. Measured on 2 shared cores: s3-extractive-qa 5 s, auto-extractive-qa 41 s (1,070 s
at the students' default steps), s3-text-to-text 83 s, auto-text-to-text 528 s; daftt 46–164 s, fewgen and
dawgen 173–467 s."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import pytest
from kind_tasks import builtin_task_of_kind

from fewforge.data.fewshot import sample_fewshot
from fewforge.generators.base import (
    AdapterRequest,
    Candidate,
    Completion,
    Generator,
    Positions,
    ProgressCallback,
    SamplingParams,
    Score,
    TrainableLM,
    positions,
)
from fewforge.generators.cache import CachedGenerator
from fewforge.learners import student_factory
from fewforge.synthesis import METHODS, get_method
from fewforge.synthesis.base import SynthesisContext
from fewforge.tasks.kinds import KINDS

WORDS = "amber brisk cobalt dune ember fjord glade harbor iris jolt kelp lumen mossy nectar onyx prism quill".split()


# A teacher asked to answer a question about a context (DAFTT's annotation of QA rows; its prompt's last
# "Input:" block): a valid answer is a span of that context, which no scripted question ever is.
ASKS_FOR_A_SPAN = re.compile(r"Context: ([^\n]+)\nQuestion: [^\n]+\nOutput:")


def script(prompt: str, index: int) -> str:
    """A distinct question per position: a valid row of every kind (QA and question generation want a
    question; a classification row is any text), no two sharing a bigram beyond the frame; a word of the
    context where the prompt asks for an answer span."""
    asked = ASKS_FOR_A_SPAN.findall(prompt)
    if asked:
        words = re.findall(r"[A-Za-z]{4,}", asked[-1])
        return words[index % len(words)]
    a, b, c = WORDS[index % 17], WORDS[(index // 17) % 17], WORDS[(index // 289) % 17]
    return f"Why would {a} {b} {c} case {index} matter?"


class Scripted(Generator):
    """Answers every prompt with `script`, records each call; trains the real SmolLM2 when a method tunes
    the generator (the adapters it sends are accepted and recorded, the answers stay scripted), and scores
    continuations through it."""

    backend = "scripted"

    def __init__(self, real: Generator | None = None) -> None:
        self.real = real
        self.supports_adapters = real is not None  # type: ignore[misc]
        # DAFTT's annotation of classification rows scores the verbalizers: through the real SmolLM2 too
        self.supports_scoring = real is not None and real.supports_scoring  # type: ignore[misc]
        self.calls: list[list[str]] = []

    @property
    def model_id(self) -> str:
        return "scripted"

    def trainable(self) -> TrainableLM:
        assert self.real is not None
        return self.real.trainable()

    def score(self, prompts: Sequence[str], continuations: Sequence[str], *, adapter: AdapterRequest | None = None,
              progress: ProgressCallback | None = None) -> list[Score]:
        if self.real is None:
            return super().score(prompts, continuations, adapter=adapter, progress=progress)
        self.calls.append(list(prompts))  # a request like any other: a resumed run must not make it again
        return self.real.score(prompts, continuations, adapter=adapter, progress=progress)

    def generate(self, prompts: Sequence[str], params: SamplingParams, *, start_index: Positions = 0,
                 progress: ProgressCallback | None = None, adapter: AdapterRequest | None = None) -> list[Completion]:
        self.calls.append(list(prompts))
        where = positions(start_index, len(prompts))
        out = [Completion(p, (Candidate(script(p, i), "stop", 8),)) for p, i in zip(prompts, where)]
        if progress is not None:
            progress(len(prompts))
        return out


@pytest.fixture(scope="module")
def hf_smollm2():
    from fewforge.generators import get_generator

    generator = get_generator("hf:smollm2", batch_size=8)
    yield generator
    generator.close()


def _marks(method_cls, kind: str) -> list:
    costly = [pytest.mark.contract_costly, pytest.mark.timeout(2400)]
    if method_cls.needs_adapters:
        return costly
    fields = method_cls.Config.model_fields
    if "student" in fields and not KINDS[kind].classification:  # fine-tuned students, 2 steps each
        searches_with_a_generating_student = "candidates" in fields and KINDS[kind].default_student == "causal-lm"
        return costly if searches_with_a_generating_student else [pytest.mark.slow]
    return []


def _cases() -> list:
    out = []
    for name in METHODS.names():
        cls = METHODS.get(name)
        for kind in cls.kinds:
            out.append(pytest.param(name, kind, marks=_marks(cls, kind), id=f"{name}-{kind}"))
    return out


def _small_options(method_cls, kind: str) -> dict:
    """The smallest run that still exercises the plumbing: 2 rows per label and, where the method trains a
    fine-tuned student (QA, text-to-text), 2 optimizer steps per student (S3's rounds and auto's search fit
    one per fold and candidate; at the learners' default steps auto on text-to-text ran past 40 minutes).
    Auto's S3 candidate gets the same students, and auto leaves out the real-rows-only candidate: students
    trained 2 steps rank nothing, and when `none` wins the set is rightly empty, which would test nothing of
    the chosen method's full run."""
    options: dict = {"per_label": 2}
    if "real_only" in method_cls.Config.model_fields:
        options["real_only"] = False
    if "student_options" in method_cls.Config.model_fields and not KINDS[kind].classification:
        options["student_options"] = {"max_steps": 2}
        if "candidates" in method_cls.Config.model_fields:
            candidates = method_cls.Config.model_fields["candidates"].default
            options["candidates"] = [
                {"name": c.name, "options": {"student_options": {"max_steps": 2}}}
                if "student_options" in METHODS.get(c.name).Config.model_fields else {"name": c.name}
                for c in candidates
            ]
    return options


@pytest.fixture(scope="module")
def kind_data(data_dir):
    cache: dict[str, tuple] = {}

    def get(kind: str):
        if kind not in cache:
            task, pool, test = builtin_task_of_kind(kind, data_dir)
            cache[kind] = (task, sample_fewshot(pool, test, task, 2, seed=13), pool[:60])
        return cache[kind]

    return get


@pytest.mark.parametrize("name, kind", _cases())
def test_method_contract(name: str, kind: str, kind_data, tmp_path: Path, request):
    assert kind in KINDS, f"method {name!r} declares unknown kind {kind!r}"
    task, split, pool = kind_data(kind)
    cls = METHODS.get(name)
    real = request.getfixturevalue("hf_smollm2") if cls.needs_adapters else None
    method = get_method(name, _small_options(cls, kind))

    def run(generator) -> tuple:
        cached = CachedGenerator(generator, tmp_path / "cache.sqlite")
        ctx = SynthesisContext(
            task=task, generator=cached, seed=13, train=split.train, dev=split.dev, pool=pool,
            workdir=tmp_path / "work", train_learner=student_factory(task, 13),
        )
        data = method.synthesize(ctx)
        cached.close()
        return data, generator

    data, first = run(Scripted(real))
    assert first.calls, f"{name} never asked the generator"
    assert data.examples, f"{name} wrote no row for a {kind} task"
    for e in data.examples:
        if task.is_classification:
            assert e.label in task.label_names
        assert e.lineage.get("method") in METHODS, f"{name}: lineage {e.lineage} names no registered method"
    json.dumps(data.card)  # the data card is written as JSON
    assert data.card.get("method") == name

    again, second = run(Scripted(real))  # resume: the same folder and cache
    assert not second.calls, f"{name} asked the generator again on a rerun: {len(second.calls)} calls"

    def record(e) -> dict:
        out = e.to_record()
        return {**out, "lineage": {k: v for k, v in out["lineage"].items() if k != "cached"}}

    # the same rows; `cached` says where a row came from this time (the cache, or a finished inner stage)
    assert [record(e) for e in again.examples] == [record(e) for e in data.examples]
