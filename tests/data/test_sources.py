"""Where task data comes from: a data folder, FEWFORGE_DATA, the packaged BBC News, or the hub."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from fewforge.data.schema import Example
from fewforge.data.sources import ENV_VAR, load_packaged_bbc, load_task_data
from fewforge.errors import DataError
from fewforge.tasks import load_task

# (pool rows, test rows) from ../shared/data/README.md
SIZES = {
    "sst2": (6920, 872), "rte": (2490, 277), "mrpc": (3668, 408), "qnli": (9999, 5000),
    "trec": (5452, 500), "snli": (9999, 1273), "mnli": (8999, 1000), "qqp": (9999, 5000),
    "agnews": (10001, 5000), "imdb": (1000, 1000), "bbc": (1700, 425), "rt-snippets": (8453, 2113),
}


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_every_task_loads_from_the_data_folder(name: str, data_dir: Path) -> None:
    pool, test = load_task_data(load_task(name), data_dir)
    assert (len(pool), len(test)) == SIZES[name]
    assert pool[0].id == f"{name}-train-0" and test[0].id == f"{name}-dev-0"


def tiny_folder(root: Path, name: str = "sst2", ext: str = "jsonl", test_stem: str = "dev") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    rows = [{"text": f"review {i}", "label": ("negative", "positive")[i % 2]} for i in range(6)]
    for stem in ("train", test_stem):
        if ext == "jsonl":
            (folder / f"{stem}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        else:
            (folder / f"{stem}.csv").write_text("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in rows))
    return folder


def test_environment_variable_is_used_when_no_folder_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny_folder(tmp_path)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    pool, test = load_task_data(load_task("sst2"))
    assert len(pool) == len(test) == 6


def test_folder_may_hold_the_files_directly_in_any_format(tmp_path: Path) -> None:
    folder = tiny_folder(tmp_path, ext="csv", test_stem="test")
    pool, test = load_task_data(load_task("sst2"), str(folder))
    assert (pool[0].id, test[0].id) == ("sst2-train-0", "sst2-test-0")


def test_folder_errors(tmp_path: Path) -> None:
    sst2 = load_task("sst2")
    with pytest.raises(DataError, match=r"data folder .*missing does not exist"):
        load_task_data(sst2, tmp_path / "missing")
    with pytest.raises(DataError, match=r"no train\.jsonl \(the pool\) for task 'sst2'"):
        load_task_data(sst2, tmp_path)
    folder = tiny_folder(tmp_path)
    (folder / "train.csv").write_text("text,label\na,positive\n")
    with pytest.raises(DataError, match=r"both train\.jsonl and train\.csv exist"):
        load_task_data(sst2, tmp_path)
    (folder / "train.csv").unlink()
    (folder / "dev.jsonl").unlink()
    with pytest.raises(DataError, match=r"no dev\.jsonl \(the test set\)"):
        load_task_data(sst2, tmp_path)


def test_no_data_says_how_to_give_it() -> None:
    with pytest.raises(DataError) as info:
        load_task_data(load_task("rte"))
    text = str(info.value)
    assert "no data for task 'rte'" in text and "--data DIR" in text and ENV_VAR in text and "hub:" in text
    assert "\n" not in text


def test_bbc_without_data_uses_the_packaged_corpus_identical_to_shared_data(data_dir: Path) -> None:
    bbc = load_task("bbc")
    pool, test = load_task_data(bbc)
    assert (len(pool), len(test)) == (1700, 425)
    counts = {"sports": 405, "business": 391, "politics": 329, "entertainment": 301, "tech": 274}
    assert Counter(e.label for e in pool) == counts
    shared_pool, shared_test = load_task_data(bbc, data_dir)
    assert pool == shared_pool and test == shared_test  # same texts, labels, order and ids
    assert load_packaged_bbc(bbc) == (pool, test)


def test_bbc_with_an_explicit_folder_never_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(DataError, match=rf"unset {ENV_VAR} to use the packaged data"):
        load_task_data(load_task("bbc"))


def test_hub_source_takes_train_as_pool_and_validation_as_test(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    features = datasets.Features(
        {"question": datasets.Value("string"), "sentence": datasets.Value("string"),
         "label": datasets.ClassLabel(names=["entailment", "not_entailment"])}
    )
    rows = {"question": ["Who?"], "sentence": ["Ann did."], "label": [0]}
    seen: list[tuple[str, str | None, str]] = []

    def fake_load(name, config, split, revision):
        seen.append((name, config, split))
        return datasets.Dataset.from_dict(rows, features=features)

    monkeypatch.setattr(datasets, "get_dataset_split_names", lambda name, config: ["train", "validation", "test"])
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    pool, test = load_task_data(load_task("qnli"), "hub:nyu-mll/glue:qnli")
    assert seen == [("nyu-mll/glue", "qnli", "train"), ("nyu-mll/glue", "qnli", "validation")]
    assert pool == [Example({"text_a": "Who?", "text_b": "Ann did."}, "entailment", id="qnli-train-0")]
    assert test[0].id == "qnli-validation-0"
    assert load_task_data(load_task("qnli"), Path("hub:nyu-mll/glue:qnli")) == (pool, test)  # a Path works too

    monkeypatch.setattr(datasets, "get_dataset_split_names", lambda name, config: ["train"])
    with pytest.raises(DataError, match=r"needs a train split and one of validation, validation_matched, test"):
        load_task_data(load_task("qnli"), "hub:nyu-mll/glue:qnli")
