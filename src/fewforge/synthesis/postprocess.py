"""Turn raw generator completions into clean, filtered, de-duplicated examples.

Every drop has a reason and is counted (`PostprocessReport`, written to the data card); nothing is
removed silently. Cleaning one completion lives in `clean.py`; this module runs it over all rows, then
the filters, in the order of `REASONS`.

Truncation (finish_reason "length"): the text is cut back to its last complete sentence, as ZeroGen's
own post-processing does (`process_output` in jiacheng-ye/ZeroGen cls_generator.py); when no complete
sentence is left the row is dropped as "truncated". `truncated="drop"|"keep"` choose otherwise.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from fewforge.data.schema import Example
from fewforge.embeddings import embed
from fewforge.synthesis.clean import (  # re-exported: the cleaning half of postprocessing
    clean_completion,
    first_sentences,
    is_chatter,
    label_words,
    split_fields,
    trim_to_last_sentence,
)
from fewforge.synthesis.dedup import Match, near_duplicates, near_duplicates_ngram
from fewforge.tasks.base import Task

__all__ = [
    "REASONS",
    "Draft",
    "PostprocessConfig",
    "PostprocessReport",
    "clean_completion",
    "embed",
    "first_sentences",
    "jaccard",
    "normalize",
    "postprocess",
    "trim_to_last_sentence",
]

# Reasons in the order the filters run; the text is what the data card says about each.
REASONS: dict[str, str] = {
    "request_failed": "the request failed for good (failures.jsonl says why); a rerun asks for it again",
    "empty": "nothing left after removing the model's chatter",
    "truncated": "hit max_new_tokens with no complete sentence to keep",
    "chatter": "talks about the task (sentence 1/2, the relation, 'as an AI') instead of being an example",
    "prompt_echo": "repeats the instruction it was given instead of following it",
    "too_short": "fewer than min_words words",
    "too_long": "more than max_words words",
    "missing_field": "lacks one of the fields the generator was asked to write (e.g. no 'Answer:' line)",
    "not_a_question": "the generated question has no question mark (extractive QA)",
    "answer_not_in_context": "the answer does not occur in the context (extractive QA)",
    "copy_of_parent": "the generated sentence (nearly) copies the first sentence it was conditioned on",
    "label_word": "contains the label name or verbalizer (drop_label_words)",
    "real_duplicate": "duplicates (or near-duplicates) a real few-shot input",
    "duplicate": "exact duplicate (normalized) of an earlier example with the same label",
    "duplicate_other_label": "exact duplicate (normalized) of an earlier example with another label",
    "near_duplicate": "near-duplicate of an earlier example with the same label",
    "near_duplicate_other_label": "near-duplicate of an earlier example with another label",
}
SAMPLES_PER_REASON = 3


class PostprocessConfig(BaseModel):
    """Thresholds of the cleaning and filtering steps (all recorded in the data card)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_words: int = Field(4, ge=1, description="drop shorter texts (ZeroGen uses min_length 10 tokens)")
    max_words: int = Field(200, ge=1, description="drop longer texts (a guard against run-on output)")
    paragraphs: Literal["all", "first"] = Field(
        "all", description="'all' joins the kept paragraphs (headline + body); 'first' keeps the first one"
    )
    max_sentences: int = Field(0, ge=0, description="keep at most this many sentences (0 = no limit)")
    truncated: Literal["trim", "drop", "keep"] = Field(
        "trim", description="finish_reason 'length': cut to the last full sentence, drop, or keep as is"
    )
    near_dup: Literal["embedding", "ngram", "off"] = Field(
        "embedding", description="near-duplicate test: MiniLM cosine, word-bigram Jaccard, or none"
    )
    near_dup_threshold: float = Field(
        0.95, gt=0, le=1, description="cosine (or Jaccard) at which two texts are near-duplicates"
    )
    near_dup_scope: Literal["all", "label"] = Field(
        "all", description="'all' also drops near-duplicates across labels (ambiguous texts)"
    )
    parent_copy_threshold: float = Field(
        0.8, gt=0, le=1, description="pairs: word-bigram Jaccard with the first sentence counted as a copy"
    )
    drop_label_words: bool = Field(False, description="drop texts that contain the label name or word")
    embedder: str | None = Field(None, description="sentence-transformers model dir (None = packaged MiniLM)")


@dataclass(frozen=True)
class Draft:
    """One raw completion waiting to be cleaned and filtered."""

    id: str
    label: str
    text: str  # the raw completion
    finish_reason: str = "stop"
    parent: Mapping[str, str] = field(default_factory=dict)  # given inputs: {"text_a": ...}, {"context": ...}
    prompt: str = ""  # the instruction, to catch echoes of it ("A headline, then the article.")
    lineage: Mapping[str, Any] = field(default_factory=dict)  # copied onto the kept Example


@dataclass
class PostprocessReport:
    seen: int = 0
    kept: int = 0
    cleaned: int = 0  # rows whose text the cleaning changed (beyond whitespace)
    trimmed: int = 0  # truncated rows cut back to their last complete sentence
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    samples: dict[str, list[str]] = field(default_factory=dict)  # a few dropped raw texts per reason
    rows: list[dict[str, Any]] = field(default_factory=list)  # every dropped row: reason, texts, partner

    def drop(
        self,
        reason: str,
        draft: "Draft",
        text: str = "",
        partner: tuple[str, str] | None = None,
        similarity: float | None = None,
    ) -> None:
        """Count a drop; `partner` is (id, text) of the row or real input it duplicates."""
        self.dropped[reason] += 1
        examples = self.samples.setdefault(reason, [])
        if len(examples) < SAMPLES_PER_REASON:
            examples.append(draft.text[:300])
        row: dict[str, Any] = {"id": draft.id, "label": draft.label, "reason": reason, "raw": draft.text, "text": text}
        if partner is not None:
            row.update(partner_id=partner[0], partner_text=partner[1])
        if similarity is not None:
            row["similarity"] = round(similarity, 4)
        self.rows.append(row)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "kept": self.kept,
            "cleaned": self.cleaned,
            "trimmed": self.trimmed,
            "dropped": {k: v for k, v in self.dropped.items() if v},
            "dropped_total": sum(self.dropped.values()),
            "reasons": {k: REASONS[k] for k, v in self.dropped.items() if v},
            "samples": self.samples,
        }


# ---------------------------------------------------------------------------------------------- filters

_PUNCT = str.maketrans({c: " " for c in string.punctuation + "“”‘’…–—"})


def normalize(text: str) -> str:
    """Case-, punctuation- and whitespace-insensitive key for exact de-duplication."""
    return " ".join(text.lower().translate(_PUNCT).split())


def _bigrams(text: str) -> set[tuple[str, str]]:
    words = normalize(text).split()
    return set(zip(words, words[1:])) or {(w, "") for w in words}


def jaccard(a: str, b: str) -> float:
    x, y = _bigrams(a), _bigrams(b)
    return len(x & y) / len(x | y) if x or y else 1.0


def generated_text(task: Task, values: Mapping[str, str]) -> str:
    """What filters and de-duplication compare: the generated fields' texts, in order, joined."""
    return " ".join(values.get(f, "") for f in task.generated_fields).strip()


def _generated_values(task: Task, raw: str, config: PostprocessConfig) -> dict[str, str]:
    fields = task.generated_fields
    if len(fields) == 1:
        text = clean_completion(raw, task, config)
        return {fields[0]: text} if text else {}
    return split_fields(task, raw)


def _row_reason(
    task: Task, draft: Draft, values: Mapping[str, str], config: PostprocessConfig, real_keys: Mapping[str, Any]
) -> str:
    text = generated_text(task, values)
    if not text:
        return "empty"
    if any(f not in values for f in task.generated_fields):
        return "missing_field"
    if any(is_chatter(v, task) for v in values.values()):
        return "chatter"
    if draft.prompt:
        instruction = draft.prompt
        for value in draft.parent.values():  # the parent sentence is not part of the instruction
            instruction = instruction.replace(value, " ")
        if normalize(text) in normalize(instruction) or jaccard(text, instruction) >= 0.5:
            return "prompt_echo"
    n_words = len(text.split())
    if n_words < config.min_words:
        return "too_short"
    if n_words > config.max_words:
        return "too_long"
    for parent in draft.parent.values():
        if normalize(parent) == normalize(text) or jaccard(parent, text) >= config.parent_copy_threshold:
            return "copy_of_parent"
    if config.drop_label_words and task.is_classification and label_words(task, draft.label).search(text):
        return "label_word"
    if normalize(text) in real_keys:
        return "real_duplicate"
    return ""


def _near_duplicates(
    texts: list[str], labels: list[str], real: list[str], config: PostprocessConfig
) -> list[Match | None]:
    """Greedy in input order (see dedup.py): one Match per dropped text, None for a kept one."""
    if config.near_dup == "off" or not texts:
        return [None] * len(texts)
    if config.near_dup == "embedding":
        vectors = embed(texts + real, config.embedder)
        return near_duplicates(
            vectors[: len(texts)], labels, vectors[len(texts) :], config.near_dup_threshold, config.near_dup_scope
        )
    return near_duplicates_ngram(texts, labels, real, config.near_dup_threshold, config.near_dup_scope, jaccard)


def postprocess(
    task: Task,
    rows: Sequence[Draft],
    config: PostprocessConfig | None = None,
    *,
    real: Sequence[Example] = (),
) -> tuple[list[Example], PostprocessReport]:
    """Clean every draft, drop the ones that fail a filter, and count why. Earlier rows win ties."""
    config = config or PostprocessConfig()
    real_rows = [e for e in real if all(_value(e, f) for f in task.generated_fields)]
    real_texts = [generated_text(task, {f: _value(e, f) for f in task.generated_fields}) for e in real_rows]
    real_keys = {
        normalize(e.inputs[f]): (e.id, e.inputs[f]) for e in real for f in task.input_fields if e.inputs.get(f)
    }
    real_keys.update({normalize(t): (e.id, t) for e, t in zip(real_rows, real_texts)})
    report = PostprocessReport(seen=len(rows))

    survivors: list[tuple[Draft, str]] = []
    generated: dict[str, tuple[Mapping[str, str], tuple]] = {}  # draft id -> (field values, QA answers)
    seen_keys: dict[str, Draft] = {}  # normalized text -> its first occurrence
    for draft in rows:
        task.check_label(draft.label)
        raw = draft.text
        if draft.finish_reason == "error":  # no answer at all: the method tops up from other prompts
            report.drop("request_failed", draft)
            continue
        if draft.finish_reason == "length" and config.truncated != "keep":
            raw = trim_to_last_sentence(raw) if config.truncated == "trim" else ""
            if not raw:
                report.drop("truncated", draft)
                continue
            report.trimmed += raw != draft.text.strip()
        values = _generated_values(task, raw, config)
        answers: tuple = ()
        reason = ""
        if values and all(f in values for f in task.generated_fields):
            # the kind's last word (QA: the question cut at its '?', the given answer aligned to the context)
            finished = task.spec.finish(task, {**draft.parent, **values})
            if isinstance(finished, str):
                reason = finished
            else:
                fields, answers = finished
                values = {f: fields[f] for f in (*values, *(("label",) if "label" in fields else ()))}
        text = generated_text(task, values)
        report.cleaned += bool(text) and text != " ".join(raw.split())
        reason = reason or _row_reason(task, draft, values, config, real_keys)
        partner = real_keys.get(normalize(text)) if reason == "real_duplicate" else None
        if not reason:
            key = normalize(text)
            if key in seen_keys:
                first = seen_keys[key]
                reason = "duplicate" if first.label == draft.label else "duplicate_other_label"
                partner = (first.id, first.text)
            else:
                seen_keys[key] = draft
        if reason:
            report.drop(reason, draft, text, partner)
            continue
        survivors.append((draft, text))
        generated[draft.id] = (values, answers)

    near = _near_duplicates([t for _, t in survivors], [d.label for d, _ in survivors], real_texts, config)
    kept: list[Example] = []
    for (draft, text), match in zip(survivors, near):
        if match is not None:
            if match.reason == "real_duplicate":
                partner = (real_rows[match.partner].id, real_texts[match.partner])
            else:
                partner = (survivors[match.partner][0].id, survivors[match.partner][1])
            report.drop(match.reason, draft, text, partner, match.similarity)
            continue
        values, answers = generated[draft.id]
        merged = {**draft.parent, **values}
        inputs = {f: merged[f] for f in task.input_fields}
        label = merged.get("label", draft.label)
        kept.append(Example(inputs=inputs, label=label, id=draft.id, lineage=dict(draft.lineage), answers=answers))
    report.kept = len(kept)
    return kept, report


def _value(example: Example, field: str) -> str:
    return example.label if field == "label" else example.inputs.get(field, "")
