"""Cleaning and filtering on hand-made strings shaped like SmolLM2-135M-Instruct's real output."""

from __future__ import annotations

import pytest

from fewforge.data.schema import Example
from fewforge.synthesis.postprocess import (
    REASONS,
    Draft,
    PostprocessConfig,
    clean_completion,
    first_sentences,
    jaccard,
    normalize,
    postprocess,
    trim_to_last_sentence,
)
from fewforge.tasks import load_task

NGRAM = PostprocessConfig(near_dup="ngram", near_dup_threshold=0.6)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Sure! Here's a positive movie review: A warm, funny film.", "A warm, funny film."),
        ("Here is a negative movie review:\n\nThe plot drags on.", "The plot drags on."),
        ('"This film was an absolute must-watch movie."', "This film was an absolute must-watch movie."),
        ('"The movie is a delight".', "The movie is a delight."),
        ("Review: **Stunning** visuals and a moving score.", "Stunning visuals and a moving score."),
        ("# A Quiet Triumph\n\nThe cast is superb.", "A Quiet Triumph The cast is superb."),
        ("A gentle comedy that works.\n\nI hope this helps! Let me know.", "A gentle comedy that works."),
        ("A gentle comedy that works.\n\nNegative, not positive.", "A gentle comedy that works."),
        ("A gentle comedy that works. 🎬🍿\n🎬🍿🎉", "A gentle comedy that works. 🎬🍿"),
        ('A negative movie review: "A tedious, joyless slog."', "A tedious, joyless slog."),
        ("I'd be happy to help you write a review. The film is dull.", "The film is dull."),
        ('"The movie "Titanic" moved me to tears."', 'The movie "Titanic" moved me to tears.'),
        ('"Titanic" and "Alien" are both classics.', '"Titanic" and "Alien" are both classics.'),
        ("A bold film.\n\n#Movies #MustWatch", "A bold film."),
        ('A dull film with a thin plot."', "A dull film with a thin plot."),
    ],
)
def test_clean_single(raw: str, clean: str) -> None:
    assert clean_completion(raw, load_task("sst2")) == clean


def test_clean_news_keeps_headline_and_body_and_cuts_commentary() -> None:
    raw = (
        'Headline: "Markets Rally as Rates Hold"\n\nArticle: Shares rose on Tuesday after the central bank '
        "held rates.\n\nThis headline captures the optimism of investors."
    )
    assert clean_completion(raw, load_task("bbc")) == (
        "Markets Rally as Rates Hold Shares rose on Tuesday after the central bank held rates."
    )


def test_clean_news_drops_bylines_urls_and_header_phrases() -> None:
    raw = (
        "The headline is: Rates Hold Steady\nWritten by: Ben Cohen\nhttps://www.bbc.com/news/123\n\n"
        "BBC News: The bank kept rates at 4% on Tuesday."
    )
    assert clean_completion(raw, load_task("bbc")) == "Rates Hold Steady The bank kept rates at 4% on Tuesday."


def test_clean_paragraphs_first_and_max_sentences() -> None:
    task = load_task("sst2")
    raw = "Great acting. Weak plot. Fine score.\n\nAlso, the ending is long."
    assert clean_completion(raw, task, PostprocessConfig(paragraphs="first")) == "Great acting. Weak plot. Fine score."
    assert clean_completion(raw, task, PostprocessConfig(max_sentences=2)) == "Great acting. Weak plot."


def test_clean_pair_takes_the_answer_after_the_marker() -> None:
    rte = load_task("rte")
    raw = "Sentence 1: The dam failed in May.\nSentence 2: Floods followed the dam failure."
    assert clean_completion(raw, rte) == "Floods followed the dam failure."
    assert clean_completion("The sentence is: Sentence 2: Rain fell all week.", rte) == "Rain fell all week."
    # the explanation after the first line is not part of sentence 2
    assert clean_completion("Rain fell all week.\nThis is because the weather was bad.", rte) == "Rain fell all week."
    assert clean_completion("Try this: Rain fell all week.", rte) == "Rain fell all week."
    qnli = load_task("qnli")
    assert clean_completion("Paragraph: Paris is the capital of France.", qnli) == "Paris is the capital of France."


def test_sentence_helpers() -> None:
    assert trim_to_last_sentence("One full sentence. And a cut-off one that") == "One full sentence."
    assert trim_to_last_sentence('He said "yes." Then the') == 'He said "yes."'
    assert trim_to_last_sentence("no sentence end at all") == ""
    assert first_sentences("Dr. Smith left the U.S. today. He was sad.", 1) == "Dr. Smith left the U.S. today."
    assert normalize("  The Movie, was GREAT!! ") == "the movie was great"
    assert jaccard("a b c d", "a b c d") == 1.0
    assert jaccard("a b c d", "w x y z") == 0.0


def _drafts(label: str, *texts: str, finish: str = "stop") -> list[Draft]:
    return [Draft(id=f"{label}-{i}", label=label, text=t, finish_reason=finish) for i, t in enumerate(texts)]


def test_each_filter_drops_and_counts_its_reason() -> None:
    task = load_task("sst2")
    real = [Example({"text": "A real few-shot review that exists."}, "positive")]
    rows = [
        *_drafts("positive", "The acting is wonderful and the story moving."),
        *_drafts("positive", "I hope this helps!"),  # all chatter -> empty after cleaning
        *_drafts("positive", "As an AI, I cannot watch movies but it is great."),  # chatter
        *_drafts("positive", "The [Movie Title] is a great film for [Audience]."),  # placeholder chatter
        Draft("echo", "positive", "A positive movie review!", prompt="Write a positive movie review."),
        *_drafts("positive", "Good fun."),  # too short
        *_drafts("positive", " ".join(["word"] * 30) + "."),  # too long (max_words=20)
        *_drafts("positive", "A real few-shot review that exists!"),  # real duplicate (normalized)
        *_drafts("positive", "The acting is WONDERFUL, and the story moving!"),  # duplicate
        *_drafts("negative", "The acting is wonderful and the story moving."),  # duplicate, other label
        *_drafts("negative", "this text is cut off before its first sentence ends", finish="length"),
        *_drafts("negative", "A dull, lifeless remake. The second half never", finish="length"),  # trimmed, kept
    ]
    kept, report = postprocess(task, rows, PostprocessConfig(max_words=20, near_dup="off"), real=real)
    assert [e.inputs["text"] for e in kept] == [
        "The acting is wonderful and the story moving.",
        "A dull, lifeless remake.",
    ]
    assert report.seen == 12 and report.kept == 2 and report.trimmed == 1
    assert {k: v for k, v in report.dropped.items() if v} == {
        "empty": 1,
        "chatter": 2,
        "prompt_echo": 1,
        "too_short": 1,
        "too_long": 1,
        "real_duplicate": 1,
        "duplicate": 1,
        "duplicate_other_label": 1,
        "truncated": 1,
    }
    card = report.to_dict()
    assert card["dropped_total"] == 10 and set(card["reasons"]) == set(card["dropped"])
    assert card["samples"]["too_short"] == ["Good fun."]


def test_truncation_policies() -> None:
    task = load_task("sst2")
    rows = _drafts("positive", "A bright, clever comedy. Its ending drags on and", finish="length")
    off = dict(near_dup="off")
    assert [e.text for e in postprocess(task, rows, PostprocessConfig(**off))[0]] == ["A bright, clever comedy."]
    kept, report = postprocess(task, rows, PostprocessConfig(truncated="drop", **off))
    assert kept == [] and report.dropped["truncated"] == 1
    kept, _ = postprocess(task, rows, PostprocessConfig(truncated="keep", **off))
    assert kept[0].text == "A bright, clever comedy. Its ending drags on and"


def test_near_duplicates_ngram_within_and_across_labels() -> None:
    task = load_task("sst2")
    rows = [
        *_drafts("positive", "The cast is great and the score soars over every scene.",
                 "The cast is great and the score soars over every single scene."),
        *_drafts("negative", "The cast is great and the score soars over every scene tonight.",
                 "A tedious plot with nothing at stake for anyone."),
    ]
    kept, report = postprocess(task, rows, NGRAM)
    assert [e.id for e in kept] == ["positive-0", "negative-1"]
    assert report.dropped["near_duplicate"] == 1 and report.dropped["near_duplicate_other_label"] == 1
    kept, report = postprocess(task, rows, NGRAM.model_copy(update={"near_dup_scope": "label"}))
    assert [e.id for e in kept] == ["positive-0", "negative-0", "negative-1"]


def test_near_duplicates_by_embedding_with_the_packaged_minilm() -> None:
    task = load_task("sst2")
    rows = [
        *_drafts("positive", "The film is a joyful, moving triumph."),
        *_drafts("positive", "The film is a joyful and moving triumph."),
        *_drafts("positive", "Tax policy dominated the budget debate in parliament."),
    ]
    real = [Example({"text": "Tax policy dominated the budget debate in the parliament."}, "negative", id="real-7")]
    kept, report = postprocess(task, rows, PostprocessConfig(near_dup_threshold=0.9), real=real)
    assert [e.id for e in kept] == ["positive-0"]
    assert report.dropped["near_duplicate"] == 1 and report.dropped["real_duplicate"] == 1
    # every dropped row names what it duplicates, and how close it is
    near, copy = report.rows
    assert near["reason"] == "near_duplicate" and near["partner_id"] == "positive-0"
    assert near["partner_text"] == "The film is a joyful, moving triumph." and 0.9 <= near["similarity"] <= 1
    assert copy["reason"] == "real_duplicate" and copy["partner_id"] == "real-7"
    assert copy["raw"] == "Tax policy dominated the budget debate in parliament."


def test_pairs_drop_copies_of_the_parent_and_explanations() -> None:
    task = load_task("rte")
    parent = {"text_a": "The bridge in Ayacucho collapsed because too many people were on it."}
    rows = [
        Draft("p0", "entailment", f"Sentence 2: {parent['text_a']}", parent=parent),
        Draft("p1", "entailment", "The sentence is about the bridge and the people on it.", parent=parent),
        Draft("p2", "not_entailment", "The relation between the two sentences is not_entailment.", parent=parent),
        Draft("p3", "entailment", "A bridge in Peru collapsed.", parent=parent),
    ]
    kept, report = postprocess(task, rows, PostprocessConfig(near_dup="off"))
    assert [(e.id, e.inputs["text_a"], e.inputs["text_b"]) for e in kept] == [
        ("p3", parent["text_a"], "A bridge in Peru collapsed.")
    ]
    assert report.dropped["copy_of_parent"] == 1 and report.dropped["chatter"] == 2


def test_label_words_are_dropped_only_when_asked() -> None:
    task = load_task("sst2")
    rows = _drafts("positive", "A great film with a positive message for kids.")
    assert len(postprocess(task, rows, PostprocessConfig(near_dup="off"))[0]) == 1
    kept, report = postprocess(task, rows, PostprocessConfig(near_dup="off", drop_label_words=True))
    assert kept == [] and report.dropped["label_word"] == 1


def test_unknown_label_and_config_typos_are_errors() -> None:
    from pydantic import ValidationError

    from fewforge.errors import TaskError

    with pytest.raises(TaskError):
        postprocess(load_task("sst2"), _drafts("neutral", "A film."), NGRAM)
    with pytest.raises(ValidationError):
        PostprocessConfig(min_word=3)  # type: ignore[call-arg]
    assert set(REASONS) >= {"empty", "truncated", "duplicate", "near_duplicate", "real_duplicate"}
