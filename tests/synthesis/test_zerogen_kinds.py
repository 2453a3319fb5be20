"""ZeroGen for extractive QA and text-to-text tasks: conditions from the pool, the kind's filters (a
question, an answer inside its context), aligned spans and lineage; plumbing with a scripted generator,
then real output from the packaged SmolLM2."""

from __future__ import annotations

import re
from pathlib import Path

from fewforge.data.schema import Answer, Example
from fewforge.synthesis.base import SynthesisContext
from fewforge.synthesis.postprocess import Draft, PostprocessConfig, postprocess
from fewforge.synthesis.zerogen import ZeroGen, ZeroGenConfig
from fewforge.tasks import load_task

FAST = PostprocessConfig(near_dup="ngram")
CONTEXTS = [
    "The Amazon River in South America carries more water than any other river. It flows through Brazil, "
    "Peru and Colombia, and its basin covers 7,000,000 square kilometres.",
    "Marie Curie won the Nobel Prize in Physics in 1903 and the Nobel Prize in Chemistry in 1911. She was "
    "born in Warsaw and worked in Paris.",
    "The Great Wall of China was built over many centuries. The Ming dynasty rebuilt much of it in the 1500s, "
    "and today it attracts 10 million visitors a year.",
]


def _pool(n_questions: int = 3) -> list[Example]:
    return [
        Example({"context": c, "question": f"Question {j} about passage {i}?"}, "", id=f"p{i}-{j}")
        for i, c in enumerate(CONTEXTS)
        for j in range(n_questions)
    ]


def _answer_in(prompt: str) -> str:
    return re.search(r'whose answer is "(.+?)"', prompt).group(1)


def test_qa_rows_keep_the_given_answer_aligned_and_drop_what_is_not_a_question(fake_generator) -> None:
    task = load_task("adversarialqa")

    def script(prompt: str, i: int) -> str:
        if i % 4 == 3:
            return "The passage describes a long river and its basin."  # no question mark: not_a_question
        return f'Sure! The question "What is linked to {_answer_in(prompt)} in text {i}?" fits.\nIt asks about it.'

    gen = fake_generator(script)
    ctx = SynthesisContext(task=task, generator=gen, seed=13, pool=_pool())
    data = ZeroGen(ZeroGenConfig(per_label=6, postprocess=FAST)).synthesize(ctx)
    assert len(data.examples) == 6 and data.card["postprocess"]["dropped"]["not_a_question"] > 0
    for e in data.examples:
        (answer,) = e.answers
        assert e.label == answer.text and e.inputs["context"][answer.start :].startswith(answer.text)
        assert e.inputs["context"] in CONTEXTS
        assert e.inputs["question"].startswith("What is linked to") and e.inputs["question"].endswith("?")
        assert e.lineage["method"] == "zerogen" and e.lineage["prompt"].startswith("Given a context:")
    # answers are chosen without the pool's labels: spans of the context, several per context
    assert len({e.label for e in data.examples}) >= 4
    prompts = gen.calls[0][0]
    assert all(any(c in p for c in CONTEXTS) for p in prompts)


def test_qa_answers_from_the_pool_are_s3s_conditions(fake_generator) -> None:
    task = load_task("adversarialqa")
    pool = [
        Example({"context": c, "question": "What?"}, "Nobel Prize", answers=(Answer("Nobel Prize", c.find("Nobel Prize")),))
        for c in CONTEXTS[1:2]
    ]
    gen = fake_generator(lambda prompt, i: f"Which prize, number {i}, is named in {_answer_in(prompt)}?")
    ctx = SynthesisContext(task=task, generator=gen, seed=13, pool=pool)
    data = ZeroGen(ZeroGenConfig(per_label=2, postprocess=FAST, answers="pool")).synthesize(ctx)
    assert {e.label for e in data.examples} == {"Nobel Prize"}
    assert all(e.answers == (Answer("Nobel Prize", CONTEXTS[1].find("Nobel Prize")),) for e in data.examples)


def test_postprocess_drops_an_answer_outside_its_context() -> None:
    task = load_task("squad")
    drafts = [
        Draft(id="a", label="", text="Where does the river flow?", parent={"context": CONTEXTS[0], "label": "Brazil"}),
        Draft(id="b", label="", text="Where does the river flow now?", parent={"context": CONTEXTS[0], "label": "Chile"}),
        Draft(id="c", label="", text="", parent={"context": CONTEXTS[0], "label": "Peru"}),
    ]
    kept, report = postprocess(task, drafts, FAST)
    assert [e.id for e in kept] == ["a"] and kept[0].answers == (Answer("Brazil", CONTEXTS[0].find("Brazil")),)
    assert report.dropped["answer_not_in_context"] == 1 and report.dropped["empty"] == 1


def test_text_to_text_rows_take_the_given_inputs_and_write_the_target(fake_generator) -> None:
    task = load_task("squad-qg")
    pool = [
        Example({"context": c, "answer": a}, "Original question?", id=f"p{i}")
        for i, (c, a) in enumerate(zip(CONTEXTS, ["Brazil", "1903", "Ming dynasty"]))
    ]
    gen = fake_generator(lambda prompt, i: f"What about {_answer_in(prompt)} is described, case {i}?")
    data = ZeroGen(ZeroGenConfig(per_label=3, postprocess=FAST)).synthesize(
        SynthesisContext(task=task, generator=gen, seed=13, pool=pool)
    )
    assert len(data.examples) == 3
    for e in data.examples:
        assert (e.inputs["context"], e.inputs["answer"]) in {(p.inputs["context"], p.inputs["answer"]) for p in pool}
        assert e.label.startswith(f"What about {e.inputs['answer']} is described")


def test_real_smollm2_writes_qa_rows(data_dir: Path) -> None:
    from fewforge.data.sources import load_task_data
    from fewforge.generators.llamacpp import LlamaCppGenerator
    from fewforge.packaged import smollm2_gguf

    task = load_task("adversarialqa")
    pool, _ = load_task_data(task, data_dir)
    gen = LlamaCppGenerator(model_path=str(smollm2_gguf()), n_parallel=8, n_ctx_per_slot=768)
    try:
        data = ZeroGen(ZeroGenConfig(per_label=4, seed=1)).synthesize(
            SynthesisContext(task=task, generator=gen, seed=13, pool=pool[:60])
        )
    finally:
        gen.close()
    assert len(data.examples) == 4
    for e in data.examples:
        (answer,) = e.answers
        assert e.inputs["context"][answer.start : answer.start + len(answer.text)] == answer.text == e.label
        assert e.inputs["question"].endswith("?") and len(e.inputs["question"].split()) >= 4
