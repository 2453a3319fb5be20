"""A scripted generator for synthesis plumbing tests (it proves wiring, never output quality)."""

from __future__ import annotations

from typing import Callable, Sequence

import pytest

from fewforge.data.schema import Example
from fewforge.generators.base import (
    Candidate,
    Completion,
    Generator,
    Positions,
    ProgressCallback,
    SamplingParams,
    positions,
)
from fewforge.tasks.base import Task

# script(prompt, seed_index) -> (text, finish_reason)
Script = Callable[[str, int], "tuple[str, str] | str"]


class FakeGenerator(Generator):
    """Returns `script(prompt, position_i)` for prompt i: deterministic, position-dependent like a real
    seeded backend, and it records every call (prompts, params, positions)."""

    backend = "fake"

    def __init__(self, script: Script) -> None:
        self.script = script
        self.calls: list[tuple[list[str], SamplingParams, int]] = []

    @property
    def model_id(self) -> str:
        return "scripted"

    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        start_index: Positions = 0,
        progress: ProgressCallback | None = None,
    ) -> list[Completion]:
        where = positions(start_index, len(prompts))
        self.calls.append((list(prompts), params, where))
        out = []
        for i, prompt in enumerate(prompts):
            result = self.script(prompt, where[i])
            text, finish = (result, "stop") if isinstance(result, str) else result
            out.append(Completion(prompt=prompt, candidates=(Candidate(text, finish, len(text.split())),)))
            if progress is not None:
                progress(1)
        return out


WORDS = "amber brisk cobalt dune ember fjord glade harbor iris jolt kelp lumen mossy nectar onyx prism quill".split()


def unique_sentence(index: int, label: str) -> str:
    """A distinct sentence per index (no two share a word bigram beyond the fixed frame)."""
    a, b, c = WORDS[index % 17], WORDS[(index // 17) % 17], WORDS[(index // 289) % 17]
    return f"Sure! Here is a {label} example:\n\n**{a.title()} {b} {c} number {index} feels {label} today.**"


@pytest.fixture
def fake_generator() -> Callable[[Script], FakeGenerator]:
    return FakeGenerator


@pytest.fixture
def sentence() -> Callable[[int, str], str]:
    return unique_sentence


@pytest.fixture
def single_task() -> Task:
    return Task(name="toy", kind="single", labels={"negative": "bad", "positive": "good"}, description="movie review")


@pytest.fixture
def pair_task() -> Task:
    return Task(
        name="toy-pair",
        kind="pair",
        labels={"entailment": "Yes", "not_entailment": "No"},
        description="sentence pair",
    )


@pytest.fixture
def pair_pool() -> list[Example]:
    return [
        Example({"text_a": f"The harbor {w} opened on day {i}.", "text_b": "x"}, "entailment", id=f"pool-{i}")
        for i, w in enumerate(WORDS[:6])
    ]


@pytest.fixture(scope="module")
def smollm2(smollm2_path):
    """The packaged SmolLM2 GGUF through llama.cpp (real output)."""
    from fewforge.generators.llamacpp import LlamaCppGenerator

    gen = LlamaCppGenerator(model_path=smollm2_path, n_parallel=8, n_ctx_per_slot=384)
    yield gen
    gen.close()
