"""Turn raw generator completions into clean, filtered, de-duplicated examples.

Every drop has a reason and is counted (`PostprocessReport`, written to the data card); nothing is
removed silently. The cleaning rules come from reading SmolLM2-135M-Instruct's output for SST-2, BBC,
RTE and MRPC prompts: a small instruct model wraps the example in preambles
("Sure! Here's a ...:"), header labels ("Headline:"), quotes, markdown and hashtags, trailing
commentary ("This headline captures ..."), and for pairs it often echoes "Sentence 1: ..." before
answering after "Sentence 2:" or explains the relation instead of writing a sentence.

Truncation (finish_reason "length"): the text is cut back to its last complete sentence, as ZeroGen's
own post-processing does (`process_output` in jiacheng-ye/ZeroGen cls_generator.py); when no complete
sentence is left the row is dropped as "truncated". `truncated="drop"|"keep"` choose otherwise.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from fewforge.data.schema import Example
from fewforge.tasks.base import DEFAULT_GENERATION, Task

# Reasons in the order the filters run; the text is what the data card says about each.
REASONS: dict[str, str] = {
    "empty": "nothing left after removing the model's chatter",
    "truncated": "hit max_new_tokens with no complete sentence to keep",
    "chatter": "talks about the task (sentence 1/2, the relation, 'as an AI') instead of being an example",
    "prompt_echo": "repeats the instruction it was given instead of following it",
    "too_short": "fewer than min_words words",
    "too_long": "more than max_words words",
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
    parent: Mapping[str, str] = field(default_factory=dict)  # fixed inputs: {"text_a": ...} for pairs
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

    def drop(self, reason: str, raw: str) -> None:
        self.dropped[reason] += 1
        examples = self.samples.setdefault(reason, [])
        if len(examples) < SAMPLES_PER_REASON:
            examples.append(raw[:300])

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


# ---------------------------------------------------------------------------------------------- cleaning

_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")
_ABBREV = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|vs|etc|No|Inc|Ltd|Co)|\b[A-Z](?:\.[A-Z])*)\.$")
# only with punctuation after it: "Certainly one of the best films" is an example, "Certainly!" is not
_PREAMBLE_WORD = re.compile(r"^(?:sure|certainly|of course|okay|ok|alright)[!.,]+\s*", re.I)
_HERE_IS = re.compile(
    r"^(?:(?:here(?:'s| is| are)|below is|i(?:'ve| have) (?:written|created))\b[^\n:]{0,120}|"
    r"this is (?:a|an|my|the) [^\n:]{0,60}\b(?:review|article|summary|headline|sentence|question|example)"
    r"\b[^\n:]{0,40}):\s*",
    re.I,
)
_HELPER = re.compile(  # "I'd be happy to help you write a negative movie review." before the example
    r"^(?:i'd be (?:happy|glad) to|i'd love to|i (?:can|will)|i'll|let me)\s+(?:help|write|create|give|provide|try)"
    r"[^.!?:]{0,120}[.!?:]\s*",
    re.I,
)
# 'A negative movie review: "Awkward."' / "Emotionless: 'The movie failed ...'" -> the quoted part
_INTRO_QUOTE = re.compile(r"^[^\"“':]{0,80}:\s*([\"“'])(.+?)[\"”']([.!?]?)$")
_HEADER = re.compile(
    r"^(?:(?:a|the|my) )?(?:title|headline|heading|review|movie review|article|news article|summary|story|"
    r"body|text|output|response|answer|example|question|sentence|paragraph|premise|background|bbc(?: news)?)"
    r"\s*\d?(?: (?:is|reads))?\s*:\s*",
    re.I,
)
# byline and metadata lines ("Written by: ...", "Published: 03/11/2020") carry no example text
_METADATA = re.compile(
    r"^(?:written|produced|published|posted|retrieved|updated|source|date|image|photo|credit|by)\b[^:]{0,20}:", re.I
)
_SHORT_LABEL = re.compile(r"[A-Za-z' ]{1,20}:\s+(?=\S)")
_URL = re.compile(r"(?:https?://|www\.)\S+")
_CLOSING = re.compile(
    r"^(?:i hope|hope (?:this|you)|let me know|feel free|note:|please note|translated|in summary|overall, this|"
    r"this (?:review|article|headline|sentence|story|summary|piece|title|response|example|rewrite) |"
    r"the (?:headline|article|review|title|sentence|story) (?:captures|highlights|includes|tells|aims|"
    r"is (?:a|an|written)|uses|conveys)|i (?:have|'ve) (?:written|created|tried))",
    re.I,
)
_HASHTAGS = re.compile(r"(?:\s*#\w+)+\s*$")
_QUOTES = "\"“”"
_CHATTER = re.compile(
    r"\b(?:as an ai\b|helpful (?:ai|assistant)|hugging ?face|smollm|the user(?:'s)?\b|i'm sorry|i am sorry|"
    r"i cannot|i can't help|how (?:may|can) i (?:help|assist)|the relation between|"
    r"(?:sentence|question) [12]\b|not_\w+)|^this (?:review|article|headline|summary|response|question)\b|"
    r"\[[A-Z][\w ]{0,40}\]",  # a template placeholder such as "[Project Name]"
    re.I,
)
# Pairs: a second sentence that discusses "the sentence", entailment or equivalence is an explanation.
_PAIR_CHATTER = re.compile(
    r"\b(?:(?:the|this|that|first|second|original|given|above|two|both|each) sentences?\b|entail\w*|"
    r"(?:is|are) (?:not )?(?:equivalent|different|relevant|irrelevant)\W*$)|^(?:yes|no)\b",
    re.I,
)


def _answer_markers(task: Task) -> tuple[list[str], list[str]]:
    """Pair prompts end with e.g. "Sentence 2:" and show the parent as "Sentence 1: {text_a}": the model
    echoes both, so the answer follows the last answer marker and lines starting with a parent marker go."""
    if task.kind != "pair":
        return [], []
    templates = [*task.generation_templates.values(), DEFAULT_GENERATION["pair"]]
    answer, parent = set(), set()
    for template in templates:
        last = template.rstrip().splitlines()[-1].strip()
        if last.endswith(":") and len(last) < 40:
            answer.add(last[:-1].strip())
        parent.update(m.strip() for m in re.findall(r"([A-Za-z][\w ]{0,30}):\s*\{text_a\}", template))
    return sorted(answer, key=len, reverse=True), sorted(parent, key=len, reverse=True)


def _strip_quotes(text: str) -> str:
    """Remove quotes around the whole text ('"Great film."' or '"Great film".'), keeping inner quotes."""
    text = text.strip()
    body = text.rstrip(".!?,;")  # closing punctuation may sit outside the quotes
    if len(body) >= 2 and body[0] in _QUOTES and body[-1] in _QUOTES:
        inner = body[1:-1]
        first = next((i for i, ch in enumerate(inner) if ch in _QUOTES), None)
        # inner quotes must open after a space ('The movie "Titanic" ...'); in '"A" and "B"' the first
        # inner quote closes "A", so the outer pair is not one quotation
        if first is None or (first > 0 and inner[first - 1].isspace()):
            return (inner + text[len(body) :]).strip()
    if sum(text.count(q) for q in _QUOTES) == 1:  # a lone opening or closing quote
        if text[:1] in _QUOTES:
            return text[1:].strip()
        if body[-1:] in _QUOTES:
            return (body[:-1] + text[len(body) :]).strip()
    return text


def _clean_line(line: str) -> str:
    if _METADATA.match(line.strip()):
        return ""
    line = _URL.sub("", line.replace("**", "").replace("__", ""))
    line = re.sub(r"^\s*#+\s+", "", line)  # markdown heading
    line = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", line)  # list marker
    line = _HASHTAGS.sub("", line)
    line = _PREAMBLE_WORD.sub("", line.strip())
    line = _HELPER.sub("", line)
    line = _HERE_IS.sub("", line)
    line = _HEADER.sub("", line)
    quoted = _INTRO_QUOTE.match(line)
    if quoted and len(quoted.group(2).split()) >= 1:
        line = quoted.group(2) + quoted.group(3)
    return _strip_quotes(line)


def first_sentences(text: str, n: int) -> str:
    """The first n sentences of text (all of it when it has fewer)."""
    count = 0
    for match in _SENTENCE_END.finditer(text):
        if _ABBREV.search(text[: match.start() + 1]):
            continue
        count += 1
        if count == n:
            return text[: match.end()].strip()
    return text.strip()


def trim_to_last_sentence(text: str) -> str:
    """Cut a truncated text after its last complete sentence ("" when it has none)."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text) if not _ABBREV.search(text[: m.start() + 1])]
    return text[: ends[-1]].strip() if ends else ""


def clean_completion(text: str, task: Task, config: PostprocessConfig | None = None) -> str:
    """The example inside an instruct model's answer: chatter, headers, quotes and markup removed."""
    config = config or PostprocessConfig()
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    answer_markers, parent_markers = _answer_markers(task)
    if answer_markers:
        pattern = re.compile(r"(?:%s)\s*:" % "|".join(map(re.escape, answer_markers)), re.I)
        tail = [m.end() for m in pattern.finditer(text) if text[m.end() :].strip()]
        if tail:
            text = text[tail[-1] :].strip()
    if parent_markers:
        echo = re.compile(r"^\s*(?:%s)\s*:" % "|".join(map(re.escape, parent_markers)), re.I)
        text = "\n".join(line for line in text.split("\n") if not echo.match(line))
        label = _SHORT_LABEL.match(text.lstrip())  # "Try this: <sentence>"
        text = text.lstrip()[label.end() :] if label and len(label.group().split()) <= 3 else text

    paragraphs: list[str] = []
    # a pair's second sentence is one line; the lines after it explain it
    for block in text.split("\n") if task.kind == "pair" else re.split(r"\n\s*\n", text):
        lines = [_clean_line(line) for line in block.split("\n")]
        # a short line ending in ':' introduces the example ("Here is the review:")
        lines = [
            line
            for line in lines
            if re.search(r"[^\W_]", line)  # drops emoji-only, '---' and empty lines
            and not (line.endswith(":") and (len(line.split()) <= 12 or re.search(r"\bhere\b", line, re.I)))
        ]
        if lines:
            paragraphs.append(" ".join(lines))
    # commentary after the example ("This headline captures ...", "Negative, not positive.") ends it
    # (a short first paragraph like "I hope this helps!" is all chatter: nothing is left)
    verdict = _label_words(task)
    for i, paragraph in enumerate(paragraphs):
        n_words = len(paragraph.split())
        if (_CLOSING.match(paragraph) and (i or n_words <= 8)) or (
            i and (n_words <= 2 or (n_words <= 6 and verdict.search(paragraph)))
        ):
            paragraphs = paragraphs[:i]
            break
    if task.kind == "pair" or config.paragraphs == "first":
        paragraphs = paragraphs[:1]
    out = _strip_quotes(" ".join(paragraphs))
    if config.max_sentences:
        out = first_sentences(out, config.max_sentences)
    return re.sub(r"\s+", " ", out).strip()


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


_EMBEDDERS: dict[str, Any] = {}


def embed(texts: Sequence[str], model_dir: str | Path | None = None) -> Any:
    """Unit-norm sentence embeddings (n, d) as a numpy array; the model loads once per process."""
    from fewforge.packaged import minilm_dir

    key = str(model_dir or minilm_dir())
    if key not in _EMBEDDERS:
        from sentence_transformers import SentenceTransformer

        _EMBEDDERS[key] = SentenceTransformer(key, device="cpu")
    return _EMBEDDERS[key].encode(
        list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )


def _label_words(task: Task, label: str | None = None) -> re.Pattern[str]:
    """Whole-word matcher for one label's name and verbalizer (all labels when label is None)."""
    labels = [label] if label is not None else task.label_names
    words = {w for name in labels for w in (name.replace("_", " "), name, task.labels[name])}
    return re.compile(r"\b(?:%s)\b" % "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)), re.I)


def _row_reason(task: Task, draft: Draft, text: str, config: PostprocessConfig, real_keys: set[str]) -> str:
    if not text:
        return "empty"
    if _CHATTER.search(text) or (task.kind == "pair" and _PAIR_CHATTER.search(text)):
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
    parent = draft.parent.get("text_a", "")
    if parent and (normalize(parent) == normalize(text) or jaccard(parent, text) >= config.parent_copy_threshold):
        return "copy_of_parent"
    if config.drop_label_words and _label_words(task, draft.label).search(text):
        return "label_word"
    if normalize(text) in real_keys:
        return "real_duplicate"
    return ""


def _near_duplicates(
    texts: list[str], labels: list[str], real: list[str], config: PostprocessConfig
) -> list[str]:
    """Greedy in input order: a text is dropped when it is too close to a real input or an earlier kept
    text. Returns one reason per text ("" = keep)."""
    if config.near_dup == "off" or not texts:
        return [""] * len(texts)
    threshold = config.near_dup_threshold
    if config.near_dup == "embedding":
        import numpy as np

        vectors = embed(texts + real, config.embedder)
        sims = vectors[: len(texts)] @ vectors.T  # (n, n + r) cosine
        real_hit = (sims[:, len(texts) :] >= threshold).any(axis=1) if real else np.zeros(len(texts), bool)

        def close(i: int, j: int) -> bool:
            return bool(sims[i, j] >= threshold)
    else:
        real_hit = [any(jaccard(t, r) >= threshold for r in real) for t in texts]

        def close(i: int, j: int) -> bool:
            return jaccard(texts[i], texts[j]) >= threshold

    reasons, kept = [], []
    for i, label in enumerate(labels):
        if real_hit[i]:
            reasons.append("real_duplicate")
            continue
        reason = ""
        for j in kept:
            same = labels[j] == label
            if (same or config.near_dup_scope == "all") and close(i, j):
                reason = "near_duplicate" if same else "near_duplicate_other_label"
                if same:
                    break
        reasons.append(reason)
        if not reason:
            kept.append(i)
    return reasons


def postprocess(
    task: Task,
    rows: Sequence[Draft],
    config: PostprocessConfig | None = None,
    *,
    real: Sequence[Example] = (),
) -> tuple[list[Example], PostprocessReport]:
    """Clean every draft, drop the ones that fail a filter, and count why. Earlier rows win ties."""
    config = config or PostprocessConfig()
    field_name = task.input_fields[-1]  # the generated field: text, or text_b of a pair
    real_texts = [e.inputs[field_name] for e in real if e.inputs.get(field_name)]
    real_keys = {normalize(e.inputs[f]) for e in real for f in task.input_fields if e.inputs.get(f)}
    report = PostprocessReport(seen=len(rows))

    survivors: list[tuple[Draft, str]] = []
    seen_keys: dict[str, str] = {}  # normalized text -> label of its first occurrence
    for draft in rows:
        task.check_label(draft.label)
        raw = draft.text
        if draft.finish_reason == "length" and config.truncated != "keep":
            raw = trim_to_last_sentence(raw) if config.truncated == "trim" else ""
            if not raw:
                report.drop("truncated", draft.text)
                continue
            report.trimmed += raw != draft.text.strip()
        text = clean_completion(raw, task, config)
        report.cleaned += bool(text) and text != " ".join(raw.split())
        reason = _row_reason(task, draft, text, config, real_keys)
        if not reason:
            key = normalize(text)
            if key in seen_keys:
                reason = "duplicate" if seen_keys[key] == draft.label else "duplicate_other_label"
            else:
                seen_keys[key] = draft.label
        if reason:
            report.drop(reason, draft.text)
            continue
        survivors.append((draft, text))

    near = _near_duplicates([t for _, t in survivors], [d.label for d, _ in survivors], real_texts, config)
    kept: list[Example] = []
    for (draft, text), reason in zip(survivors, near):
        if reason:
            report.drop(reason, draft.text)
            continue
        inputs = {**draft.parent, field_name: text}
        kept.append(Example(inputs=inputs, label=draft.label, id=draft.id, lineage=dict(draft.lineage)))
    report.kept = len(kept)
    return kept, report
