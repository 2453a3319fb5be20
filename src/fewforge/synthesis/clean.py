"""Clean one raw completion: the example inside an instruct model's answer.

The rules come from reading SmolLM2-135M-Instruct's output for SST-2, BBC, RTE and MRPC prompts: a small
instruct model wraps the example in preambles ("Sure! Here's a ...:"), header labels ("Headline:"),
quotes, markdown, hashtags, URLs and bylines, adds commentary after it ("This headline captures ..."),
and for pairs it often echoes "Sentence 1: ..." before answering after "Sentence 2:", or explains the
relation instead of writing a sentence (`is_chatter` flags what cleaning cannot rescue).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fewforge.tasks.base import Task, field_title

if TYPE_CHECKING:
    from fewforge.synthesis.postprocess import PostprocessConfig

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
    r"i cannot|i can't help|how (?:may|can) i (?:help|assist)|i'm here to help|the relation between|"
    r"(?:sentence|question) [12]\b|not_\w+)|^this (?:review|article|headline|summary|response|question)\b|"
    r"\[[A-Z][\w ]{0,40}\]",  # a template placeholder such as "[Project Name]"
    re.I,
)
def _answer_markers(task: Task) -> tuple[list[str], list[str]]:
    """Prompts that show a pool row (a pair's "Sentence 1: {text_a}") end with e.g. "Sentence 2:": the
    model echoes both, so the answer follows the last answer marker and lines starting with a parent
    marker go."""
    if not task.given_fields:
        return [], []
    templates = [*task.generation_templates.values(), task.spec.default_generation]
    given = "|".join(re.escape(f) for f in task.given_fields)
    answer, parent = set(), set()
    for template in templates:
        last = template.rstrip().splitlines()[-1].strip()
        if last.endswith(":") and len(last) < 40:
            answer.add(last[:-1].strip())
        parent.update(m.strip() for m in re.findall(r"([A-Za-z][\w ]{0,30}):\s*\{(?:%s)\}" % given, template))
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


def clean_completion(text: str, task: Task, config: "PostprocessConfig | None" = None) -> str:
    """The example inside an instruct model's answer: chatter, headers, quotes and markup removed."""
    paragraphs_mode = config.paragraphs if config is not None else "all"
    max_sentences = config.max_sentences if config is not None else 0
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
    one_line = task.spec.one_line
    for block in text.split("\n") if one_line else re.split(r"\n\s*\n", text):
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
    verdict = label_words(task) if task.is_classification else None
    for i, paragraph in enumerate(paragraphs):
        n_words = len(paragraph.split())
        if (_CLOSING.match(paragraph) and (i or n_words <= 8)) or (
            i and (n_words <= 2 or (n_words <= 6 and verdict is not None and verdict.search(paragraph)))
        ):
            paragraphs = paragraphs[:i]
            break
    if one_line or paragraphs_mode == "first":
        paragraphs = paragraphs[:1]
    out = _strip_quotes(" ".join(paragraphs))
    if max_sentences:
        out = first_sentences(out, max_sentences)
    return re.sub(r"\s+", " ", out).strip()


def is_chatter(text: str, task: Task) -> bool:
    """Whether a cleaned text talks about the task ("as an AI", "sentence 1", a placeholder) instead of
    being an example of it."""
    chatter = task.spec.chatter
    return bool(_CHATTER.search(text) or (chatter is not None and chatter.search(text)))


def label_words(task: Task, label: str | None = None) -> re.Pattern[str]:
    """Whole-word matcher for one label's name and verbalizer (all labels when label is None)."""
    labels = [label] if label is not None else task.label_names
    words = {w for name in labels for w in (name.replace("_", " "), name, task.labels[name])}
    return re.compile(r"\b(?:%s)\b" % "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)), re.I)


def split_fields(task: Task, text: str) -> dict[str, str]:
    """The generated fields of a multi-field completion (QA: question, then "Answer: ..."): the prompt
    ends with the first field's title, so the text starts with its value; each later field follows its
    own "Title:" line. A title seen twice means a second example has begun: the rest is ignored. Values
    are cleaned line by line; a missing field is absent from the result."""
    fields = task.generated_fields
    titles = {field_title(task.target if f == "label" else f).lower(): f for f in fields}
    marker = re.compile(r"^\s*\**\s*(%s)\s*\**\s*:\s*(.*)$" % "|".join(map(re.escape, titles)), re.I)
    values: dict[str, list[str]] = {fields[0]: []}
    current = fields[0]
    for line in text.replace("\r\n", "\n").split("\n"):
        match = marker.match(line)
        if match:
            field = titles[match.group(1).lower()]
            if field in values and (values[field] or field != current):
                break
            current = field
            values.setdefault(field, [])
            line = match.group(2)
        values[current].append(line)
    out = {}
    for field, lines in values.items():
        cleaned = " ".join(c for c in (_clean_line(line) for line in lines) if c)
        cleaned = re.sub(r"\s+", " ", _strip_quotes(cleaned)).strip()
        if cleaned:
            out[field] = cleaned
    return out
