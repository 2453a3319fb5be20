"""Extractive question answering: {context}, {question} → an answer span of the context.

Rows use the SQuAD layout, `answers: {"text": [...], "answer_start": [...]}` (several references allowed,
each checked against its context). The label is the first reference's text; `Example.answers` keeps them
all, and metrics take the best over references (SQuAD's official evaluation). Few-shot sets are k
examples, no per-class quota (S3 §3.2.2).

Generation follows S3's QA seed synthesis (§2.4: "a set of conditional contexts ... context & answer in
QA task"; Table 1's AdQA prompt): a pool context and an answer span are given, the generator writes the
question. The answer is a span of the context chosen without labels (`answer_spans`: names, numbers and
dates, as answer-aware question generation does) or, as S3 did, the pool row's own answer
(`answers: pool`, which reads the pool's labels). A row whose answer is not in its context is dropped as
`answer_not_in_context` (`align_answer`).
"""

from __future__ import annotations

import random
import re
import unicodedata
from typing import Any, Mapping

from fewforge.errors import DataError
from fewforge.tasks.kinds.base import FileLayout, TaskKind, sample_k_examples, text_value

_TRIM = " \t\n.,;:!?\"'“”‘’()[]"


def align_answer(context: str, answer: str) -> tuple[str, int] | None:
    """(the span as written in the context, its character offset), or None when the answer is not in it.

    Tries the answer as given, then without surrounding quotes/punctuation, then case-insensitively, then
    with whitespace, quotes and dashes normalised on both sides (offsets map back to the context). The
    first occurrence wins: a generator copies the phrase it read first as often as any later one.
    """
    candidates = [answer.strip(), answer.strip(_TRIM)]
    for candidate in candidates:
        if candidate and (at := context.find(candidate)) >= 0:
            return context[at : at + len(candidate)], at
    for candidate in candidates:
        if candidate and (at := context.lower().find(candidate.lower())) >= 0:
            return context[at : at + len(candidate)], at
    # normalised search with an offset map back into the original context
    norm_ctx, offsets = _normalise_with_offsets(context)
    target, _ = _normalise_with_offsets(answer.strip(_TRIM))
    if not target:
        return None
    at = norm_ctx.find(target)
    if at < 0:
        return None
    start, end = offsets[at], offsets[at + len(target) - 1] + 1
    return context[start:end], start


# Answer candidates without labels: multi-word capitalised names ("Notre Dame", "Duke of York"), numbers
# with an optional unit or scale, and years; single capitalised words only away from a sentence start.
_NAME = re.compile(r"\b[A-Z][\w'’-]+(?:\s+(?:of|the|de|la|von|and|for)?\s*[A-Z][\w'’-]+)+")
_NUMBER = re.compile(
    r"\b\d[\d,.]*(?:\s+(?:percent|per cent|million|billion|thousand|hundred|years?|months?|days?|hours?|"
    r"km|kilometres|kilometers|miles|metres|meters|feet|people|students|members))?\b"
)
_WORD = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z][\w'’-]+")


def answer_spans(context: str, rng: random.Random, n: int) -> list[tuple[str, int]]:
    """Up to n distinct (span, offset) answer candidates of a context, drawn with rng: names and numbers
    first (the answers SQuAD-style questions mostly have), single capitalised words when those run out."""
    strong = [(m.group().strip(), m.start()) for p in (_NAME, _NUMBER) for m in p.finditer(context)]
    weak = [(m.group(), m.start()) for m in _WORD.finditer(context)]
    chosen: list[tuple[str, int]] = []
    for pool in (strong, weak):
        pool = [c for c in dict.fromkeys(pool) if len(c[0]) > 1 and c[0] not in {t for t, _ in chosen}]
        rng.shuffle(pool)
        chosen.extend(pool[: n - len(chosen)])
        if len(chosen) >= n:
            break
    return chosen


# the question begins after the last sentence end or colon before its '?' ('The answer is 2014. Who ...?')
_QUESTION_START = re.compile(r"(?<=[.!:])\s+(?=\S)")

_FOLD = {"“": '"', "”": '"', "‘": "'", "’": "'", "–": "-", "—": "-"}


def _normalise_with_offsets(text: str) -> tuple[str, list[int]]:
    """NFKC, lowercase, folded quotes/dashes, runs of whitespace as one space; offsets[i] is the index in
    `text` of output character i."""
    out: list[str] = []
    offsets: list[int] = []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKC", ch).lower():
            c = _FOLD.get(c, c)
            if c.isspace():
                if not out or out[-1] == " ":
                    continue
                c = " "
            out.append(c)
            offsets.append(i)
    while out and out[-1] == " ":
        out.pop()
        offsets.pop()
    return "".join(out), offsets


class ExtractiveQAKind(TaskKind):
    name = "extractive-qa"
    classification = False
    default_learners = ("qa-encoder",)
    default_student = "qa-encoder"
    fit_learner = "qa-encoder"
    s3_prompts = "qa"
    file_layouts = (FileLayout(("context", "question", "answers")),)
    fit_description = "paragraph"
    card_words = "extractive question answering"
    pipeline_tag = "question-answering"
    input_fields = ("context", "question")
    given_fields = ("context",)
    target_given = True
    one_line = True  # a question; SmolLM2 explains it on the lines after
    # S3 Table 1's AdQA seed prompt ("Given a context: <context> \n<answer> is the answer to the following
    # question:") asks a base model to continue; an instruct generator (the packaged SmolLM2) needs the
    # request spelled out, as the classification prompts do (docs/fidelity.md).
    default_generation = (
        "Given a context: {context}\n\n"
        'Write a question about the context whose answer is "{answer}". Reply with the question only.'
    )
    max_new_tokens = 48
    stop = ("\n\n",)
    metrics = ("exact_match", "f1")
    # A few-shot student almost never copies a span exactly, so on the few held-out rows of `auto`'s search
    # exact match is 0 for every candidate and the real rows alone win every tie; token F1 credits a span
    # that overlaps the answer, and is what the student's own best-on-dev selection uses (run_qa's).
    ranking_metric = "f1"
    target_column = "answers"
    chatter = re.compile(r"\b(?:the (?:given )?(?:context|passage|text)|this (?:context|passage))\b", re.I)

    def read_target(self, task, value: Any, inputs: Mapping[str, str], column: str, where: str) -> tuple[str, tuple]:
        from fewforge.data.schema import Answer

        answers = value
        if not isinstance(answers, Mapping) or not isinstance(answers.get("text"), list):
            raise DataError(
                f"{where}: field {column!r} must be {{'text': [...], 'answer_start': [...]}}",
                hint="use the SQuAD layout: answers with their texts and character offsets",
            )
        texts, starts = answers["text"], answers.get("answer_start")
        if not texts:
            raise DataError(f"{where}: no answer", hint="give at least one answer text with its answer_start")
        if not isinstance(starts, list) or len(starts) != len(texts):
            raise DataError(f"{where}: answers need one answer_start per text", hint="SQuAD layout: parallel lists")
        context = inputs.get("context", "")
        out = []
        for text, start in zip(texts, starts):
            text_value(text, "answers.text", where)
            if not isinstance(start, int) or isinstance(start, bool) or start < 0:
                raise DataError(f"{where}: answer_start {start!r} is not a character offset", hint="use an integer >= 0")
            if isinstance(context, str) and context[start : start + len(text)] != text:
                raise DataError(
                    f"{where}: answer {text!r:.60} is not in the context at {start}",
                    hint="answer_start must be the character offset of the answer text in the context",
                )
            out.append(Answer(text, start))
        return out[0].text, tuple(out)

    sample = staticmethod(sample_k_examples)  # type: ignore[assignment]

    def teacher_definition(self, task, mode) -> str:
        d = task.description
        if mode == "annotate":
            return f"Answer the question about the context ({d}) with a span copied from the context."
        return f"Given a context ({d}) and an answer copied from it, write a question about the context whose answer it is."

    def teacher_inputs(self, task, mode, example, label: str):
        if mode == "annotate":
            return super().teacher_inputs(task, mode, example, label)
        assert example is not None
        return [("Context", example.inputs["context"]), ("Answer", example.label)]

    def answer_limits(self) -> tuple[int, tuple[str, ...]]:
        return 32, ("\n",)  # a span: one short line

    def decode_answer(self, task, row, raw: str) -> tuple[str, tuple] | str:
        """The first line of the completion, aligned to a span of the row's context."""
        from fewforge.data.schema import Answer

        target = " ".join(raw.strip().split("\n")[0].split())
        if not target:
            return "empty"
        found = align_answer(row.inputs["context"], target)
        if found is None:
            return "answer_not_in_context"
        return found[0], (Answer(*found),)

    def finish(self, task, fields: Mapping[str, str]) -> tuple[dict[str, str], tuple] | str:
        """The question is its text up to the first '?' (a small generator often answers it or explains
        it in the same line); a row without a '?' is not a question. The answer is aligned to the context."""
        from fewforge.data.schema import Answer

        question = fields.get("question", "")
        if "?" not in question:
            return "not_a_question"
        question = question[: question.index("?") + 1]
        quote = max(question.rfind(q) for q in "\"“")  # 'The answer to the question "Who ...?'
        question = question[quote + 1 :] if quote >= 0 else _QUESTION_START.split(question)[-1]
        question = question.strip()
        found = align_answer(fields.get("context", ""), fields.get("label", ""))
        if found is None:
            return "answer_not_in_context"
        return {**fields, "question": question, "label": found[0]}, (Answer(*found),)

    def conditions(self, task, rows, rng: random.Random, answers: str = "spans", **options: Any) -> list:
        """(context, answer) conditions: per distinct context, up to two answer spans chosen from its text
        (`spans`) or its pool rows' own answers (`pool`), in the caller's order."""
        from fewforge.data.schema import Answer, Example

        by_context: dict[str, list] = {}
        for e in rows:
            by_context.setdefault(e.inputs.get("context", ""), []).append(e)
        out = []
        for context, group in by_context.items():
            if not context.strip():
                continue
            if answers == "pool":
                spans = list(dict.fromkeys((a.text, a.start) for e in group for a in e.answers))
            else:
                spans = answer_spans(context, rng, 2)
            out.extend(
                Example({"context": context, "question": ""}, text, id=f"{group[0].id}-a{start}", answers=(Answer(text, start),))
                for text, start in spans
            )
        return out

    def gold(self, example) -> list[str]:
        return [a.text for a in example.answers] or [example.label]
