"""The contamination check on real SST-2 test sentences: planted exact copies, n-gram copies and hand-written
paraphrases are found, clean same-topic rows are not; pair and QA rows are compared field by field; the
drop option removes exactly the flagged rows and records them; and a grid records the counts in each set's
card, results.json and the report (with a warning line) without redoing finished work."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from fewforge.data.schema import Example
from fewforge.evaluation.contamination import (
    CONTAMINATION_FILE,
    ContaminationConfig,
    check,
    check_set,
    contamination_key,
    drop_contaminated,
    summarize,
)
from fewforge.generators.base import Candidate, Completion, Generator, positions
from fewforge.tasks import load_task

# Rows planted in a synthetic set, by the SST-2 test sentence (dev.jsonl line) each copies.
EXACT = {  # detokenized and re-cased, as a generator would write them
    272: "It's too self-important and plodding to be funny, and too clipped and abbreviated to be an epic.",
    0: "One long string of clichés!",
    399: "This movie seems to have been written using Mad-Libs.",
}
NGRAM = {  # a long span of a test sentence inside new words; 780 is short (8 words) and copied whole
    483: "Honestly, it's so good that its relentless, polished wit can withstand not only inept school productions, wow.",
    780: "Sadly this film manages to be both repulsively sadistic and mundane, and I left early.",
}
PARAPHRASES = {  # hand-written; MiniLM cosine to the source 0.94-0.97, no shared 10-word span
    261: "Seldom has a film matched the spirit of a man and his work this closely.",
    272: "Too plodding and self-important to be funny, too abbreviated and clipped to be an epic.",
    2: "K-19 uses our shared fear of a nuclear holocaust to create cheap Hollywood suspense.",
    223: "It takes talent to make such a lifeless movie about the most heinous man in history.",
    41: "Detox is, in the end, a pointless endeavour.",
}
CLEAN = [  # what a generator writes for "a movie review": same topic, copies nothing
    "The acting was wooden and the plot made no sense at all.",
    "A heartfelt, beautifully shot drama with a terrific lead performance.",
    "I was bored from start to finish; the jokes never land.",
    "This film is a delightful surprise, funny and warm throughout.",
    "The special effects are impressive, but the story is paper thin.",
    "A tedious, overlong mess that wastes a talented cast.",
    "An uplifting story about friendship that will stay with you.",
    "The director's vision is bold, and the cinematography is stunning.",
    "Predictable and clichéd, this thriller offers no real thrills.",
    "One of the best films of the year, with a moving score.",
    "The movie is a complete waste of time and money.",
    "A charming romantic comedy with sharp dialogue and great chemistry.",
    "The script is lazy and the characters are impossible to care about.",
    "Visually gorgeous but emotionally empty.",
    "It's a smart, witty and thoroughly entertaining ride.",
    "The pacing drags, and the ending feels rushed and unearned.",
]


def _rows(path: Path, n: int | None = None) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[:n] if line]


@pytest.fixture(scope="module")
def sst2(data_dir):
    task = load_task("sst2")
    test = [Example({"text": r["text"]}, r["label"], id=f"test-{i}") for i, r in enumerate(_rows(data_dir / "sst2" / "dev.jsonl"))]
    pool = [Example({"text": r["text"]}, r["label"], id=f"pool-{i}") for i, r in enumerate(_rows(data_dir / "sst2" / "train.jsonl", 40))]
    return task, test, pool


def _synthetic(test: list[Example], pool: list[Example]) -> tuple[list[Example], dict[str, str]]:
    """The planted rows (id -> the kind of copy) followed by clean rows."""
    rows, kinds = [], {}
    for kind, planted in (("exact", EXACT), ("ngram", NGRAM), ("embedding", PARAPHRASES)):
        for index, text in planted.items():
            rows.append(Example({"text": text}, test[index].label, id=f"{kind}-{index}"))
            kinds[rows[-1].id] = kind
    rows += [Example({"text": t}, "positive", id=f"clean-{i}") for i, t in enumerate(CLEAN)]
    rows += [Example(e.inputs, e.label, id=f"clean-{e.id}") for e in pool]  # real SST-2 train sentences
    return rows, kinds


def test_key_joins_ptb_tokens_case_punctuation_and_accents() -> None:
    assert contamination_key("it 's a movie that wo n't stop , and does n't .") == contamination_key(
        "It's a movie that WON'T stop -- and doesn't!"
    )
    assert contamination_key("One long string of clichés.") == contamination_key("one long string of cliches .")
    assert contamination_key("it will stop") != contamination_key("it won't stop")


def test_planted_copies_and_paraphrases_of_sst2_test_sentences_are_found(sst2) -> None:
    task, test, pool = sst2
    synthetic, kinds = _synthetic(test, pool)
    flags = check(task, synthetic, {"test": test})
    by_check: dict[str, set[str]] = {}
    for f in flags:
        by_check.setdefault(f["check"], set()).add(f["id"])
        assert f["reference"] == "test" and f["partner_id"] == f"test-{f['id'].split('-')[1]}"  # the copied row
    planted = set(kinds)
    assert {f["id"] for f in flags} == planted  # every planted row, and no clean row (16 written, 40 real)
    assert by_check["exact"] == {i for i, k in kinds.items() if k == "exact"}
    assert {i for i, k in kinds.items() if k == "ngram"} <= by_check["ngram"]
    assert by_check["ngram"] <= {i for i, k in kinds.items() if k in ("exact", "ngram")}  # paraphrases share no span
    assert {i for i, k in kinds.items() if k == "embedding"} <= by_check["embedding"]
    short = next(f for f in flags if f["id"] == "ngram-780" and f["check"] == "ngram")
    assert short["span"] == "manages to be both repulsively sadistic and mundane"  # the whole 8-word sentence
    assert all(f["similarity"] >= 0.9 for f in flags if f["check"] == "embedding")

    summary = summarize(flags, {"test": test}, len(synthetic), ContaminationConfig(), task)
    counts = summary["references"]["test"]
    assert (counts["size"], counts["exact"], counts["rows"]) == (872, 3, len(planted))
    assert counts["embedding"] == len(by_check["embedding"]) and len(counts["examples"]) <= 3 * 3


def test_threshold_and_ngram_length_are_what_flag(sst2) -> None:
    """Looser settings flag clean rows, stricter ones miss planted rows: the defaults sit between."""
    task, test, pool = sst2
    synthetic, kinds = _synthetic(test, pool)
    loose = check(task, synthetic, {"test": test}, ContaminationConfig(threshold=0.75, ngram=6, ngram_min=3))
    assert any(f["id"].startswith("clean") for f in loose)
    strict = check(task, synthetic, {"test": test}, ContaminationConfig(threshold=0.99, ngram=13, embedding=True))
    assert {f["id"] for f in strict} < set(kinds)


def test_pairs_compare_the_written_sentence_and_count_copied_premises_apart(data_dir) -> None:
    task = load_task("rte")
    test = [Example({"text_a": r["text_a"], "text_b": r["text_b"]}, r["label"], id=f"t{i}") for i, r in enumerate(_rows(data_dir / "rte" / "dev.jsonl", 20))]
    pool = _rows(data_dir / "rte" / "train.jsonl", 3)
    synthetic = [
        Example({"text_a": pool[0]["text_a"], "text_b": test[3].inputs["text_b"]}, "entailment", id="hypothesis-copy"),
        Example({"text_a": test[5].inputs["text_a"], "text_b": "A brand new claim about it."}, "entailment", id="premise-copy"),
        Example({"text_a": pool[1]["text_a"], "text_b": "Nothing here comes from the test rows."}, "entailment", id="clean"),
    ]
    flags = check(task, synthetic, {"test": test}, ContaminationConfig(embedding=False))
    assert {(f["id"], f["check"]) for f in flags} >= {("hypothesis-copy", "exact"), ("premise-copy", "given")}
    assert {f["id"] for f in flags} == {"hypothesis-copy", "premise-copy"}
    given = next(f for f in flags if f["check"] == "given")
    assert given["partner_id"] == "t5" and given["text"] == test[5].inputs["text_a"]


def test_qa_compares_questions_and_counts_copied_test_contexts(data_dir) -> None:
    from fewforge.data.sources import load_task_data

    task = load_task("squad")
    pool, test = load_task_data(task, data_dir)
    test = test[:30]
    synthetic = [
        Example({"context": pool[0].inputs["context"], "question": test[2].inputs["question"]}, "x", id="question-copy"),
        Example({"context": test[7].inputs["context"], "question": "Which novel question is this?"}, "x", id="context-copy"),
        Example({"context": pool[0].inputs["context"], "question": "What did nobody ask before?"}, "x", id="clean"),
    ]
    flags = check(task, synthetic, {"test": test}, ContaminationConfig(embedding=False))
    assert {f["id"] for f in flags} == {"question-copy", "context-copy"}
    assert {f["check"] for f in flags if f["id"] == "context-copy"} == {"given"}  # counted apart
    assert "exact" in {f["check"] for f in flags if f["id"] == "question-copy"}


def test_drop_removes_exactly_the_rows_flagged_against_the_cells_references(sst2) -> None:
    task, test, pool = sst2
    rows = [Example({"text": t}, "negative", id=f"s{i}") for i, t in enumerate(CLEAN[:6])]
    rows[1] = Example({"text": EXACT[272]}, "negative", id="s1")  # a test copy
    rows[3] = Example({"text": pool[0].text}, "negative", id="s3")  # a copy of a k4 dev row
    rows[4] = Example({"text": pool[1].text}, "negative", id="s4")  # a copy of a k16 dev row only
    references = {"test": test[270:275], "dev-k4": pool[:1], "dev-k16": pool[:2]}
    stored = {"flags": check(task, rows, references, ContaminationConfig(embedding=False))}
    kept, dropped = drop_contaminated(rows, stored, ("test", "dev-k4"))
    assert [e.id for e in kept] == ["s0", "s2", "s4", "s5"]
    assert [(d["id"], d["reason"], d["partner_id"]) for d in dropped] == [
        ("s1", "contamination_test_exact", "test-272"),
        ("s3", "contamination_dev_k4_exact", "pool-0"),
    ]
    assert [e.id for e in drop_contaminated(rows, stored, ("test", "dev-k16"))[0]] == ["s0", "s2", "s5"]


def test_check_set_writes_the_card_once_and_again_when_settings_change(tmp_path, sst2, monkeypatch) -> None:
    task, test, pool = sst2
    rows = [Example({"text": EXACT[399]}, "negative", id="s0"), Example({"text": CLEAN[0]}, "negative", id="s1")]
    (tmp_path / "card.json").write_text(json.dumps({"method": "zerogen", "count": 2}))
    (tmp_path / "README.md").write_text("# card\n\n## Files\n\n`data.jsonl`\n")
    config = ContaminationConfig(embedding=False)
    out = check_set(tmp_path, task, rows, {"test": test}, config, "setfp")
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["method"] == "zerogen" and card["contamination"]["references"]["test"]["exact"] == 1
    assert out["flags"][0]["partner_id"] == "test-399" and (tmp_path / CONTAMINATION_FILE).is_file()
    readme = (tmp_path / "README.md").read_text()
    assert "## Files" in readme and "## Contamination check" in readme and "| test | 872 | 1 | 1 | 1 |" in readme

    import fewforge.evaluation.contamination as module

    monkeypatch.setattr(module, "check", lambda *a, **k: pytest.fail("a stored check was recomputed"))
    assert check_set(tmp_path, task, rows, {"test": test}, config, "setfp")["flags"] == out["flags"]
    monkeypatch.undo()
    changed = check_set(tmp_path, task, rows, {"test": test[:10]}, config, "setfp")  # other test rows
    assert changed["flags"] == [] and (tmp_path / "README.md").read_text().count("## Contamination check") == 1
    assert json.loads((tmp_path / "card.json").read_text())["contamination"]["references"]["test"]["rows"] == 0


# -- the grid: card, results.json and report, resume, drop -----------------------------------------------


class ScriptedGenerator(Generator):
    """A generator backend that writes the given texts: prompt j of label k sits at position 2j + k
    (ZeroGen's order), so `texts[label][j]` is the j-th row of that label."""

    backend = "fake"

    def __init__(self, texts: dict[str, list[str]]) -> None:
        self.texts = texts

    @property
    def model_id(self) -> str:
        return "scripted"

    def generate(self, prompts, params, *, start_index=0, progress=None):
        out = []
        for prompt, where in zip(prompts, positions(start_index, len(prompts))):
            label = "positive" if "positive" in prompt else "negative"
            text = self.texts[label][where // 2]
            out.append(Completion(prompt=prompt, candidates=(Candidate(text, "stop", len(text.split())),)))
            if progress is not None:
                progress(1)
        return out


def test_grid_records_counts_warns_resumes_and_drops(tmp_path, data_dir, monkeypatch) -> None:
    from rich.console import Console

    import fewforge.grid
    from fewforge.config import RunConfig
    from fewforge.pipeline import run_experiment

    test = _rows(data_dir / "sst2" / "dev.jsonl")
    assert 266 in random.Random(0).sample(range(872), 60)  # max_test 60 keeps it; line 2 is left out
    texts = {
        "negative": [
            # an exact copy of a scored test row, a paraphrase of one, a copy of a test row max_test left out
            "If there's one thing this world needs less of, it's movies about college that are written and "
            "directed by people who couldn't pass an entrance exam.",
            "It takes talent to make such a lifeless movie about the most heinous man in history.",
            test[2]["text"],
            *CLEAN[0:10:2],
        ],
        "positive": [
            # a long span of a test row, an exact copy of a dev row of the k4 seed-13 split
            "Honestly, the emotions are raw and will strike a nerve with anyone who's ever had family trauma, I loved it.",
            "Serious movie-goers embarking upon this journey will find that the road to Perdition leads to a "
            "satisfying destination.",
            *CLEAN[1:11:2],
        ],
    }
    monkeypatch.setattr(fewforge.grid, "_generator", lambda cfg: ScriptedGenerator(texts))
    base = {
        "tasks": ["sst2"], "data": str(data_dir), "shots": [4], "seeds": [13], "per_label": [6], "max_test": 60,
        "learners": ["linear-probe"], "conditions": ["real", "real+synthetic"],
    }  # fmt: skip
    run, console = tmp_path / "run", Console(file=open(tmp_path / "console.txt", "w"), width=300)
    run_experiment(RunConfig(**base), run, console=console)

    set_dir = run / "synthetic" / "sst2" / "seed13" / "zerogen"
    cells = run / "cells" / "sst2" / "k4" / "seed13" / "linear-probe"
    synthetic_cell = cells / "real_synthetic-zerogen-n6"
    card = json.loads((set_dir / "card.json").read_text())["contamination"]
    test_counts, dev_counts = card["references"]["test"], card["references"]["dev-k4"]
    assert (test_counts["size"], test_counts["exact"], test_counts["rows"]) == (60, 1, 3)
    assert test_counts["embedding"] >= 2 and test_counts["ngram"] == 2 and (dev_counts["exact"], dev_counts["rows"]) == (1, 1)
    flagged = {f["id"]: f for f in json.loads((set_dir / CONTAMINATION_FILE).read_text())["flags"]}
    assert len(flagged) == 4 and all(test[2]["text"] not in f["text"].lower() for f in flagged.values())
    results = json.loads((run / "results.json").read_text())
    (warning,) = results["meta"]["contamination"]["warnings"]
    assert "3 of its 12 rows that copy test rows" in warning and "kept in training" in warning
    report = (run / "report.md").read_text()
    assert f"> **Warning: {warning}.**" in report and "## Contamination check" in report
    assert "| synthetic/sst2/seed13/zerogen | test (60) | 12 | 1 | 2 |" in report
    assert "class='warn'" in (run / "report.html").read_text()
    assert "warning: synthetic set" in (tmp_path / "console.txt").read_text()
    assert json.loads((synthetic_cell / "record.json").read_text())["train"]["synthetic"] == 12

    # a run finished before the check: its sets and cells are reused, the check is made on load
    done = {p: (p / "done.json").read_text() for p in (set_dir, cells / "real", synthetic_cell)}
    (set_dir / CONTAMINATION_FILE).unlink()
    stripped = {k: v for k, v in json.loads((set_dir / "card.json").read_text()).items() if k != "contamination"}
    (set_dir / "card.json").write_text(json.dumps(stripped))
    run_experiment(RunConfig(**base), run, console=console)
    assert all((p / "done.json").read_text() == text for p, text in done.items())
    assert json.loads((set_dir / "card.json").read_text())["contamination"]["references"] == card["references"]

    # drop: the set and the real-only cell are reused; the synthetic cell trains without the 4 flagged rows
    results = run_experiment(RunConfig(**base, contamination={"drop": True}), run, console=console)
    assert (set_dir / "done.json").read_text() == done[set_dir]
    assert (cells / "real" / "done.json").read_text() == done[cells / "real"]
    assert (synthetic_cell / "done.json").read_text() != done[synthetic_cell]
    record = json.loads((synthetic_cell / "record.json").read_text())
    assert record["train"]["synthetic"] == 8 and record["train"]["contamination_dropped"] == 4
    dropped = [json.loads(line) for line in (synthetic_cell / "dropped.jsonl").read_text().splitlines()]
    assert {d["id"] for d in dropped} == set(flagged)
    assert {d["reason"] for d in dropped} >= {"contamination_test_exact", "contamination_dev_k4_exact"}
    assert "dropped before training" in results["meta"]["contamination"]["warnings"][0]
