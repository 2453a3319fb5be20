"""`auto` on real SST-2 rows: the search scores every candidate with a real student (MiniLM linear probe)
and picks the best. The generator is scripted (it proves the choice, not generation quality): ZeroGen's
requests get real reviews of the requested label, GoldGen's get reviews of the opposite label, so the
right choice is known."""

from __future__ import annotations

from pathlib import Path

import pytest

from fewforge.data.fewshot import sample_fewshot
from fewforge.data.sources import load_task_data
from fewforge.learners import student_factory
from fewforge.synthesis import get_method
from fewforge.synthesis.base import SynthesisContext
from fewforge.tasks import load_task


@pytest.fixture(scope="module")
def sst2(data_dir: Path):
    task = load_task("sst2")
    pool, test = load_task_data(task, data_dir)
    split = sample_fewshot(pool, test, task, 8, 13)
    taken = {e.text for e in (*split.train, *split.dev)}
    by_label = {
        label: [e.text for e in pool if e.label == label and e.text not in taken and len(e.text.split()) >= 8]
        for label in task.label_names
    }
    return task, pool, split, by_label


def _script(by_label: dict[str, list[str]], goldgen: str = "flip", zerogen: str = "right"):
    """ZeroGen asks 'Write a <label> movie review'; GoldGen 'Write a <label> movie similar to: ...'."""

    def script(prompt: str, i: int) -> str:
        asked = "positive" if "Write a positive" in prompt else "negative"
        other = "negative" if asked == "positive" else "positive"
        if "similar to" in prompt:
            if goldgen == "fail":
                raise AssertionError("GoldGen was asked again: its search result should have been reused")
            label = other if goldgen == "flip" else asked
        else:
            label = other if zerogen == "flip" else asked
        return by_label[label][(i * 7 + (3 if label == asked else 5)) % len(by_label[label])]

    return script


def _ctx(sst2, generator, workdir: Path) -> SynthesisContext:
    task, pool, split, _ = sst2
    return SynthesisContext(
        task=task, generator=generator, seed=13, train=split.train, dev=split.dev, pool=pool[:400],
        workdir=workdir, train_learner=student_factory(task, 13),
    )


def test_auto_picks_the_candidate_with_the_best_dev_score_and_records_every_candidate(
    sst2, fake_generator, tmp_path: Path
) -> None:
    task, _, split, by_label = sst2
    method = get_method("auto", {"candidates": ["zerogen", "goldgen"], "search_per_label": 8, "per_label": 12,
                                 "selection": "dev"})
    dataset = method.synthesize(_ctx(sst2, fake_generator(_script(by_label)), tmp_path))
    card = dataset.card["auto"]
    scores = {r["id"]: r for r in card["candidates"]}
    assert list(scores) == ["none", "zerogen", "goldgen"]
    assert all(r["status"] == "scored" and r["n_scored"] == len(split.dev) for r in scores.values())
    assert scores["goldgen"]["score"] < scores["zerogen"]["score"]  # flipped labels hurt the student
    best = max(scores.values(), key=lambda r: r["score"])["id"]
    assert card["chosen"] == best == "zerogen"
    assert dataset.card["chosen_method"] == "zerogen"
    assert dataset.label_counts() == {"negative": 12, "positive": 12}  # the full budget, not the search's
    assert all(e.lineage["method"] == "zerogen" and e.lineage["chosen_by"] == "auto" for e in dataset.examples)

    from fewforge.evaluation.report import auto_rows

    _, rows = auto_rows([{"path": "synthetic/sst2/k8/seed13/auto", "card": dataset.card}])
    assert [(r[2], r[-1]) for r in rows] == [("none", ""), ("zerogen", "✓"), ("goldgen", "")]  # the report's table

    # A rerun reuses every finished search: GoldGen is not asked again.
    again = get_method("auto", method.config.model_dump())
    rerun = again.synthesize(_ctx(sst2, fake_generator(_script(by_label, goldgen="fail")), tmp_path))
    assert [r["score"] for r in rerun.card["auto"]["candidates"]] == [r["score"] for r in card["candidates"]]


@pytest.mark.parametrize("selection", ["dev", "cv"])
def test_no_candidate_reads_the_rows_it_is_scored_on(sst2, fake_generator, tmp_path: Path, selection: str) -> None:
    # GoldGen extrapolates the dev rows it is given; scored on those same rows, its copies win the search
    # (RTE: +25-35 points over the real rows alone, then no better at test). Each fold's GoldGen set must
    # come from rows outside that fold's held-out rows, and every held-out row is scored once.
    import json

    task, _, split, by_label = sst2
    method = get_method("auto", {"candidates": ["zerogen", "goldgen"], "search_per_label": 4, "per_label": 4,
                                 "selection": selection})
    ctx = _ctx(sst2, fake_generator(_script(by_label, goldgen="same")), tmp_path)
    folds = method._folds(ctx, selection)
    dataset = method.synthesize(ctx)
    scored = {r["id"]: r for r in dataset.card["auto"]["candidates"]}
    everything = len(split.dev) if selection == "dev" else len(split.train) + len(split.dev)
    assert all(r["n_scored"] == everything for r in scored.values())
    assert sorted(e.id for _, held in folds for e in held) == sorted(
        e.id for e in (split.dev if selection == "dev" else (*split.train, *split.dev)))
    search = tmp_path / "auto-search-goldgen"  # the search's stage folder
    for i, (train, held) in enumerate(folds):
        rows = [json.loads(line) for line in (search / f"rows-fold{i}.jsonl").read_text().splitlines()]
        parents = {r["lineage"]["extrapolates"]["id"] for r in rows}
        assert rows and parents and not parents & {e.id for e in held}  # never a held-out row's paraphrase
        assert not {e.id for e in train} & {e.id for e in held}
    zerogen = tmp_path / "auto-search-zerogen"  # reads no few-shot row: one set for every fold
    assert len({(zerogen / f"rows-fold{i}.jsonl").read_text() for i in range(len(folds))}) == 1


def test_auto_returns_no_rows_when_no_method_beats_the_real_rows(sst2, fake_generator, tmp_path: Path) -> None:
    _, _, _, by_label = sst2
    method = get_method("auto", {"candidates": ["zerogen"], "search_per_label": 8, "per_label": 12, "selection": "dev"})
    dataset = method.synthesize(_ctx(sst2, fake_generator(_script(by_label, zerogen="flip")), tmp_path))
    card = dataset.card["auto"]
    assert card["chosen"] == "none" and dataset.examples == []
    assert "did not beat the real rows" in card["note"]


def test_cv_folds_are_stratified_disjoint_and_cover_train_and_dev(sst2, fake_generator, tmp_path: Path) -> None:
    task, _, split, by_label = sst2
    method = get_method("auto", {"candidates": ["zerogen"], "folds": 4})
    ctx = _ctx(sst2, fake_generator(_script(by_label)), tmp_path)
    folds = method._folds(ctx, "cv")
    held = [e.id for _, h in folds for e in h]
    assert sorted(held) == sorted(e.id for e in (*split.train, *split.dev))  # every row held out once
    for train, h in folds:
        assert not {e.id for e in train} & {e.id for e in h}
        assert {task.group(e) for e in h} == set(task.label_names)  # each fold holds both labels
        assert len(h) == (len(split.train) + len(split.dev)) // 4


def test_candidates_that_cannot_run_here_are_skipped_with_the_reason(sst2, fake_generator, tmp_path: Path) -> None:
    _, _, _, by_label = sst2
    method = get_method("auto", {"candidates": ["zerogen", "daftt-generate", "fewgen"], "search_per_label": 4,
                                 "per_label": 4, "selection": "cv", "time_budget_s": 1e-6})
    dataset = method.synthesize(_ctx(sst2, fake_generator(_script(by_label)), tmp_path))
    rows = {r["id"]: r for r in dataset.card["auto"]["candidates"]}
    assert rows["none"]["status"] == "scored"  # the first candidate always runs
    assert all(rows[x]["status"] == "skipped" and "time budget" in rows[x]["reason"] for x in ("zerogen", "fewgen"))
    assert dataset.card["auto"]["chosen"] == "none"

    method = get_method("auto", {"candidates": ["daftt-generate"], "search_per_label": 4, "per_label": 4,
                                 "selection": "cv", "real_only": False})
    with pytest.raises(Exception, match="no candidate could run.*daftt-generate skipped: .*cannot load adapters"):
        method.synthesize(_ctx(sst2, fake_generator(_script(by_label)), tmp_path / "b"))


def _scored(id_: str, per_row: list[float], seconds: float) -> dict:
    n = len(per_row)
    mean = sum(per_row) / n
    se = (sum((x - mean) ** 2 for x in per_row) / (n - 1)) ** 0.5 / n**0.5
    return {"id": id_, "status": "scored", "score": mean, "se": se, "seconds": seconds, "per_row": per_row}


def test_ties_go_to_the_earlier_listed_candidate_whatever_the_seconds() -> None:
    # Measured seconds depend on the generation cache (ZeroGen's search took 0.01 s in a grid that had
    # already generated its rows, less than scoring `none`): the cost of a tie is the list order.
    none = _scored("none", [1, 1, 0, 1], seconds=0.2)
    zerogen = _scored("zerogen", [1, 0, 1, 1], seconds=0.01)
    goldgen = _scored("goldgen", [0, 1, 0, 1], seconds=18.0)
    assert get_method("auto", {})._choose([none, zerogen, goldgen])["id"] == "none"
    assert get_method("auto", {})._choose([zerogen, none, goldgen])["id"] == "zerogen"
    assert get_method("auto", {"tolerance": 0.3})._choose([goldgen, none])["id"] == "goldgen"  # within 0.25


def test_tolerance_se_compares_candidates_row_by_row() -> None:
    # Both score 24/32 vs 26/32 on the same rows. Paired, `b` is right on every row `a` is right, and on
    # two more: the difference's SE is 0.044 and 0.0625 is beyond it. Unpaired (the best score's SE,
    # 0.07) would call them tied and take the cheaper `a`.
    a = _scored("a", [1.0] * 24 + [0.0] * 8, seconds=0)
    b = _scored("b", [1.0] * 26 + [0.0] * 6, seconds=9)
    assert b["se"] > b["score"] - a["score"]
    assert get_method("auto", {"tolerance": "se"})._choose([a, b])["id"] == "b"
    # Disagreeing on many rows, the same two totals are a tie, and the cheaper `a` wins.
    c = _scored("c", [0.0] * 8 + [1.0] * 24, seconds=0)
    assert get_method("auto", {"tolerance": "se"})._choose([c, b])["id"] == "c"
    # A search saved before per-row scores falls back to the best score's SE.
    old = {k: v for k, v in a.items() if k != "per_row"}
    assert get_method("auto", {"tolerance": "se"})._choose([old, b])["id"] == "a"


def test_a_changed_search_is_retired_and_restored_like_any_stage(sst2, fake_generator, tmp_path: Path) -> None:
    _, _, _, by_label = sst2
    options = {"candidates": ["zerogen"], "real_only": False, "per_label": 4, "selection": "dev"}

    def search(rows: int):
        method = get_method("auto", {**options, "search_per_label": rows})
        return method.synthesize(_ctx(sst2, fake_generator(_script(by_label)), tmp_path))

    first = search(4)
    search(3)  # another search budget (both within per_label, which caps it): the 4-row search is retired to
    # _stale/, not overwritten
    (retired,) = (tmp_path / "_stale" / "auto-search-zerogen").iterdir()
    assert (retired / "result.json").is_file()
    (retired / "marker").write_text("this folder")
    back = search(4)  # the 4-row budget returns: its search comes back instead of running again
    assert (tmp_path / "auto-search-zerogen" / "marker").read_text() == "this folder"
    assert back.card["auto"]["candidates"] == first.card["auto"]["candidates"]
