"""S3's prompts (Wang et al. 2023, Table 1; PROTOCOLS §2), per task, with task-derived fallbacks.

Three prompts per task: `rationale` asks for reasons that lead to a label (Alg. 1, kinds whose
`rationales` is set: single-sentence tasks), `seed` writes one example from sampled rationales or from a
given context (pairs, QA: Alg. 3 / §2.4, no rationales), and `ees` writes an example like a misclassified
one with its gold label (Alg. 2 / 3). The kind's `s3_prompts` picks the table's shape, a task's
`published_prompts` a verbatim table. Table 1 covers IMDb, QNLI, RTE and Adversarial QA:
- movie-review tasks (SST-2, IMDb, Rotten Tomatoes: `published_prompts: s3-imdb`) take the IMDb
  prompts verbatim;
- RTE (`published_prompts: s3-rte`) takes its prompts verbatim (label words correct / wrong);
- other single-sentence tasks take the IMDb prompts with "movie"/"review" replaced by the task's
  description; other pair tasks and text-to-text tasks take an EES prompt of the same shape built on the
  task's own generation prompt; extractive QA takes the AdQA EES prompt (verbatim with `reply_only:
  false`; reworded for an instruct generator otherwise, as the QA seed prompt is). S3's QNLI prompts ask
  for the question from a paragraph, while our QNLI rows hold (question, sentence): they do not apply.
`wording: body` picks the two prompts §2.2/§2.3 word differently in the body text. Every prompt gets one
last line telling an instruct generator to reply with the example only (`reply_only`), the same line
the task's own generation prompts carry; the paper prompted GPT-3.5, which needed none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Mapping

from fewforge.data.schema import Example
from fewforge.tasks.base import Task, field_title

Wording = Literal["table", "body"]


@dataclass(frozen=True)
class S3Prompts:
    rationale: str = ""  # {n} reasons, {label}
    seed: str = ""  # {rationales}, {label}, {word}, given fields
    ees: str = ""  # the misclassified example's fields, {label}, {word}
    words: Mapping[str, str] | None = None  # label -> the word the prompts use (RTE: correct / wrong)
    reply: str = ""  # the instruct line
    seed_from: Literal["rationales", "context"] = "rationales"  # what `seed` is filled from
    target_as: str = ""  # the placeholder the error's target fills in `ees` (AdQA: "answer")
    ees_instruct: str = ""  # `ees` reworded for an instruct generator (`reply_only`)


_MOVIE = S3Prompts(
    rationale="Imagine you are watching a movie; consider {n} reasons that may lead to {word} impression of the movie.",
    seed="Now imagine that you just watched a movie that has {rationales}. Now you should write a {word} review "
    "about this movie.",
    ees="Write a {word} movie similar to: \n {text}",
    reply="Reply with the review only.",
)
_MOVIE_BODY = {
    "rationale": "What is the reason that may lead to a {word} movie review.",
    "ees": "Write a {word} movie review like {text}",
}
_RTE = S3Prompts(
    seed="{text_a} \nBased on the above description, the following sentence is definitely {word}:",
    ees="{text_a} \nBased on the above description, the following sentence: {text_b} is definitely {word}. Now write "
    "a sentence similar to the given sentence and is definitely {word} based on the given description.",
    words={"entailment": "correct", "not_entailment": "wrong"},
    reply="Reply with the sentence only.",
    seed_from="context",
)
_ADQA_EES = (
    "Given a context: {context} \n{answer} is the answer to: {question}.\n"
    "A question that has the same answer in the context is:"
)
# For an instruct generator (`reply_only`), reworded as the QA seed prompt is (tasks/kinds/extractive_qa.py):
# on 8 gold rows of an Adversarial QA split, SmolLM2-135M answered Table 1's wording with no question at all
# 8 times ("The answer to this question is: ..."); this wording gave 7 questions in 16.
_ADQA_EES_INSTRUCT = (
    'Given a context: {context}\n\n"{answer}" is the answer to the question: {question}\n'
    'Write a different question about the context whose answer is also "{answer}".'
)


def _single(description: str) -> tuple[S3Prompts, dict[str, str]]:
    prompts = S3Prompts(
        rationale=f"Imagine you are reading a {description}; consider {{n}} reasons that may lead to a {{word}} "
        f"{description}.",
        seed=f"Now imagine a {description} that has {{rationales}}. Now you should write a {{word}} {description}.",
        ees=f"Write a {{word}} {description} similar to: \n {{text}}",
        reply=f"Reply with the {description} only.",
    )
    body = {
        "rationale": f"What is the reason that may lead to a {{word}} {description}.",
        "ees": f"Write a {{word}} {description} like {{text}}",
    }
    return prompts, body


def _rationale_table(task: Task, wording: Wording) -> S3Prompts:
    if task.published_prompts == "s3-imdb":
        prompts, body = _MOVIE, _MOVIE_BODY
    else:
        prompts, body = _single(task.description)
    return S3Prompts(**{**prompts.__dict__, **body}) if wording == "body" else prompts


# by the kind's `s3_prompts`; see the module docstring for where each comes from
_TABLES: dict[str, Callable[[Task, Wording], S3Prompts]] = {
    "rationale": _rationale_table,
    # see ees_prompt
    "qa": lambda task, wording: S3Prompts(
        ees=_ADQA_EES, ees_instruct=_ADQA_EES_INSTRUCT, target_as="answer", reply="Reply with the question only."
    ),
    # pairs and text-to-text: built on the task's generation prompt (ees_prompt)
    "generation": lambda task, wording: S3Prompts(),
}
_PUBLISHED = {"s3-rte": _RTE}  # a task's `published_prompts` naming a verbatim table outside `_TABLES`' shapes


def prompts_for(task: Task, wording: Wording = "table") -> S3Prompts:
    """The task's S3 prompts (see the module docstring for where each comes from)."""
    if task.published_prompts in _PUBLISHED:
        return _PUBLISHED[task.published_prompts]
    return _TABLES[task.spec.s3_prompts](task, wording)


def word(task: Task, prompts: S3Prompts, label: str) -> str:
    """The word a prompt uses for `label`: Table 1's (RTE) or the label name in words (positive)."""
    if prompts.words and label in prompts.words:
        return prompts.words[label]
    return label.replace("_", " ")


def _with_reply(text: str, prompts: S3Prompts, reply_only: bool) -> str:
    return f"{text}\n{prompts.reply}" if reply_only and prompts.reply else text


def rationale_prompt(task: Task, prompts: S3Prompts, label: str, n: int, reply_only: bool) -> str:
    text = prompts.rationale.format(n=n, word=word(task, prompts, label), label=label)
    return f"{text}\nList the reasons, one per line." if reply_only else text


def seed_prompt(
    task: Task, prompts: S3Prompts, label: str, parent: Example | None, rationales: list[str], reply_only: bool
) -> str:
    """Alg. 1's T_query(r, y) with rationales (single-sentence tasks), Table 1's T_query^(2)(c, y) where the
    task has one (RTE), else the task's own generation prompt (the no-rationale seed)."""
    if prompts.seed_from == "rationales" and rationales and prompts.seed:
        text = prompts.seed.format(rationales=join_reasons(rationales), word=word(task, prompts, label), label=label)
        return _with_reply(text, prompts, reply_only)
    if prompts.seed_from == "context" and prompts.seed and parent is not None:
        text = prompts.seed.format(**parent.inputs, word=word(task, prompts, label), label=label)
        return _with_reply(text, prompts, reply_only)
    return task.generation_prompt(label, parent)


def ees_prompt(task: Task, prompts: S3Prompts, error: Example, reply_only: bool) -> str:
    """T_mis(x_mis, y_mis): write an example like the misclassified one, with its gold label."""
    label = task.group(error)
    values = {**error.inputs, "word": word(task, prompts, label), "label": label}
    if prompts.target_as:
        values[prompts.target_as] = error.label
    if reply_only and prompts.ees_instruct:
        return _with_reply(prompts.ees_instruct.format(**values), prompts, reply_only)
    if prompts.ees:
        return _with_reply(prompts.ees.format(**values), prompts, reply_only)
    # Pairs and text-to-text without a Table 1 prompt: the task's own generation prompt (conditioned on
    # the error's given fields), shown the error's generated part as the example to be similar to.
    shown = "\n".join(
        f"{field_title(f) if f != 'label' else task.target.capitalize()}: {error.label if f == 'label' else error.inputs[f]}"
        for f in task.generated_fields
    )
    base = task.generation_prompt(task.group(error), error)
    return f"Here is an example:\n{shown}\n\nWrite another one similar to it, but not the same.\n{base}"


def join_reasons(reasons: list[str]) -> str:
    """"great acting, intriguing plot, and beautiful cinematography" (the paper's example)."""
    reasons = [r.rstrip(".").strip() for r in reasons]
    reasons = [r[0].lower() + r[1:] if r[:1].isupper() and not r[1:2].isupper() else r for r in reasons]
    if len(reasons) <= 2:
        return " and ".join(reasons)
    return ", ".join(reasons[:-1]) + ", and " + reasons[-1]


def parse_reasons(text: str, max_words: int = 16) -> list[str]:
    """The reasons of one rationale completion: one per line (numbering and bullets removed), kept when
    1..max_words words; a single-paragraph answer is split at its sentences."""
    import re

    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) <= 1:
        lines = re.split(r"(?<=[.;])\s+", text.strip())
    out = []
    for line in lines:
        if line.rstrip().endswith(":"):  # "Here are 5 reasons ...:" introduces the list
            continue
        line = re.sub(r"^\s*(?:[-*•]|\d+[.)]|[a-z][.)])\s*", "", line).strip()
        line = re.sub(r"\*\*(.+?)\*\*", r"\1", line).strip()
        line = re.split(r"\s+[-–—]\s+|:\s", line, maxsplit=1)[0]  # "Acting - the cast ..." -> its head
        line = re.sub(r"\s*\([^)]*\)", "", line).strip().strip("\"'“”").rstrip(".").strip()
        lowered = line.lower()
        if lowered.startswith(_PREAMBLE) or not 1 <= len(line.split()) <= max_words:
            continue
        out.append(line)
    return out


_PREAMBLE = ("here", "sure", "reasons", "in this", "when i", "these", "the following", "i ", "as a", "overall")
