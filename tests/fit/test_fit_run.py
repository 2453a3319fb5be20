"""`fewforge fit` end to end on a CSV of the packaged BBC News corpus (8 rows per label): the scripted and
the packaged generator, the estimate in the card, no held-out row in any fold's synthesis, the output
folder loading in SetFit as it predicts in `fewforge predict`, the synthetic datasets folder, and a rerun
that resumes (a fit is a run directory like any other)."""

from __future__ import annotations

import json
from pathlib import Path

from scripted import FakeGenerator, bbc_script
from typer.testing import CliRunner

from fewforge.data.io import read_jsonl
from fewforge.fit import fit
from fewforge.fit.estimate import REAL, SYNTHETIC, plan_folds
from fewforge.fit.examples import load_user_rows

# small and fast, same code paths as the defaults: auto (zerogen vs goldgen, re-run inside every fold)
# and the linear probe, whose folder is also a SetFit model
SMALL = {"learner": "linear-probe", "budget": 3, "folds": 2, "repeats": 1, "description": "news article",
         "method_options": {"candidates": ["zerogen", "goldgen"]}}


def done_markers(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("done.json")) if "_stale" not in p.parts}


def test_fit_with_the_scripted_generator_estimates_saves_loads_and_resumes(bbc_csv, bbc_rows, tmp_path) -> None:
    out = tmp_path / "my-model"
    generator = FakeGenerator(bbc_script)
    summary = fit({"examples": str(bbc_csv), **SMALL}, out, generator=generator)

    # the estimate: both conditions, a paired difference, in estimate.json and as the card's table + metadata
    assert set(summary["conditions"]) == {REAL, SYNTHETIC} and summary["rows"] == 40 and summary["folds"] == 2
    assert len(summary["difference"]["per_fold"]) == 2 and summary["final"] in (REAL, SYNTHETIC)
    assert json.loads((out / "estimate.json").read_text())["conditions"][REAL]["estimate"] == summary["conditions"][REAL]["estimate"]
    readme = (out / "README.md").read_text()
    assert "## Estimate without a test set" in readme and "| training data | accuracy (estimate) | 95% CI | macro_f1 |" in readme
    assert "| real rows only |" in readme and "| difference (paired over 2 folds) |" in readme
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "setfit" and card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert card.data.to_dict()["labels"] == ["business", "entertainment", "politics", "sports", "tech"]
    assert card.data.eval_results[0].metric_type == "accuracy"
    assert card.data.eval_results[0].metric_value == round(summary["conditions"][summary["final"]]["estimate"], 4)

    # every fold's synthesis (auto's search included) ran without the fold's held-out rows
    rows = load_user_rows(bbc_csv).examples
    for fold in plan_folds(load_user_rows(bbc_csv).task, rows, 2, 1, 13):
        held = [e.inputs["text"][:80] for e in fold.held]
        fold_files = list((out / "run" / "work" / "folds" / fold.name).rglob("*.jsonl"))
        fold_files += [out / "run" / "folds" / fold.name / "synthetic" / "data.jsonl"]
        prompts = [json.loads(line).get("lineage", {}).get("prompt", "") for f in fold_files for line in f.read_text().splitlines()]
        assert prompts and not any(text in prompt for prompt in prompts for text in held)
        trained = json.loads((out / "run" / "folds" / fold.name / "real" / "record.json").read_text())["ids"]
        assert sorted(trained) == sorted(e.id for e in fold.held)  # predictions cover exactly the held rows
    goldgen = [p for p in (out / "run" / "work").rglob("rows-fold*.jsonl") if "goldgen" in str(p)]
    assert goldgen and any(p.read_text() for p in goldgen)  # goldgen really extrapolated rows in the search

    # the folder loads in SetFit and predicts what `fewforge predict` prints, label names included
    from setfit import SetFitModel

    from fewforge.cli.app import app

    texts = [e.inputs["text"] for e in bbc_rows[1][:12]]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    cli = CliRunner().invoke(app, ["predict", "--model", str(out), "--input", str(tmp_path / "texts.txt")])
    assert cli.exit_code == 0, cli.output
    predicted = [json.loads(line)["label"] for line in cli.stdout.splitlines()]
    assert list(SetFitModel.from_pretrained(str(out)).predict(texts)) == predicted
    assert sum(p == e.label for p, e in zip(predicted, bbc_rows[1][:12])) >= 8  # a real classifier, not a constant
    from fewforge.data.io import write_jsonl

    write_jsonl(tmp_path / "test.jsonl", bbc_rows[1][:12])  # `fewforge evaluate` reads the fit's own task.yaml
    scored = CliRunner().invoke(app, ["evaluate", "--model", str(out), "--test", str(tmp_path / "test.jsonl")])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["accuracy"] == sum(p == e.label for p, e in zip(predicted, bbc_rows[1][:12])) / 12

    # the synthetic set beside it: a datasets folder with its card (when auto kept one)
    if summary["final_method"] != "none":
        import datasets

        assert len(datasets.load_from_disk(str(out / "synthetic" / "hf"))) == len(read_jsonl(out / "synthetic" / "data.jsonl", load_user_rows(bbc_csv).task))
        assert (out / "synthetic" / "README.md").read_text().startswith("---\n")

    # what --push-to-hub would upload: the model, its card, task and estimate, the synthetic set; not run/
    from fewforge.fit.hub import upload_plan

    uploads = dict(upload_plan(out))
    assert {"README.md", "model.safetensors", "model_head.pkl", "config_setfit.json", "task.yaml", "estimate.json",
            "model_card.json"} <= set(uploads) and uploads["model.safetensors"] > 10_000_000
    assert not any(p.startswith("run/") or p.endswith("done.json") for p in uploads)
    if summary["final_method"] != "none":
        assert "synthetic/data.parquet" in uploads and "synthetic/README.md" in uploads

    # a rerun of the same command resumes: every stage reused, nothing generated or trained again
    before = done_markers(out / "run")
    again = FakeGenerator(bbc_script)
    assert fit({"examples": str(bbc_csv), **SMALL}, out, generator=again)["conditions"] == summary["conditions"]
    assert again.calls == [] and done_markers(out / "run") == before
    # a changed budget redoes the synthesis and what depends on it; the real-only folds are reused
    real_before = (out / "run" / "folds" / "r0-f0" / "real" / "done.json").read_text()
    fit({"examples": str(bbc_csv), **SMALL, "budget": 4}, out, generator=FakeGenerator(bbc_script))
    assert (out / "run" / "folds" / "r0-f0" / "real" / "done.json").read_text() == real_before
    assert list((out / "run" / "_stale").rglob("done.json"))


def test_fit_with_the_packaged_generator(bbc_csv, tmp_path) -> None:
    out = tmp_path / "model"
    summary = fit({"examples": str(bbc_csv), **SMALL, "method": "zerogen", "method_options": {}, "budget": 1}, out)
    rows = [json.loads(line) for line in (out / "synthetic" / "data.jsonl").read_text().splitlines()]
    assert rows and all("SmolLM2" in r["lineage"]["model"] for r in rows)
    assert summary["conditions"][SYNTHETIC]["synthetic_rows"] == [len(rows), len(rows)]  # zerogen: one set
    assert "generator `smollm2`" in (out / "README.md").read_text()


def test_a_fit_holds_its_run_directory_lock(bbc_csv, tmp_path) -> None:
    """A second fit (or run) on an output in use stops at once, naming the holder, and writes nothing."""
    import pytest

    from fewforge.lock import RunInUseError, RunLock

    out = tmp_path / "my-model"
    (out / "run").mkdir(parents=True)
    (out / "run" / "config.yaml").write_text("examples: other.csv\n")  # what a fit in progress has written
    with RunLock(out / "run", "fewforge fit other.csv"):
        with pytest.raises(RunInUseError, match="in use by pid .*fewforge fit other.csv"):
            fit({"examples": str(bbc_csv), **SMALL}, out, generator=FakeGenerator(bbc_script))
    assert sorted(p.name for p in (out / "run").iterdir()) == [".lock", "config.yaml"]
    assert (out / "run" / "config.yaml").read_text() == "examples: other.csv\n"
