"""The LM-BFF sampler: reproduces LM-BFF's released split, deterministic, disjoint, k per class, recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from fewforge.data.fewshot import LMBFF_SEEDS, ids_sha256, load_split, sample_fewshot, save_split
from fewforge.data.io import read_examples
from fewforge.data.schema import Example
from fewforge.errors import ConfigError, DataError
from fewforge.tasks import load_task

RTE = load_task("rte")
SST2 = load_task("sst2")

# LM-BFF's released RTE split for k=16, seed 42 (data/k-shot/RTE/16-42/{train,dev}.tsv, `index` column =
# row of GLUE RTE train = line of ../shared/data/rte/train.jsonl), entailment rows first as in those files.
LMBFF_RTE_16_42 = {
    "train": [1057, 976, 1399, 1447, 1937, 2064, 654, 410, 252, 450, 387, 952, 903, 1437, 1997, 2063,
              478, 422, 2329, 2476, 2020, 509, 1862, 1646, 1498, 1316, 246, 1078, 1767, 1533, 2013, 1681],
    "dev": [927, 572, 1861, 1805, 56, 650, 637, 1855, 1989, 1820, 1786, 298, 1302, 729, 1665, 239,
            2104, 1177, 1452, 1616, 2207, 879, 1427, 632, 111, 1736, 1288, 1362, 1005, 1567, 2005, 218],
}


@pytest.fixture(scope="module")
def rte(data_dir: Path) -> tuple[list[Example], list[Example]]:
    return read_examples(data_dir / "rte" / "train.jsonl", RTE), read_examples(data_dir / "rte" / "dev.jsonl", RTE)


def test_reproduces_lmbff_released_split(rte: tuple[list[Example], list[Example]]) -> None:
    pool, test = rte
    split = sample_fewshot(pool, test, RTE, shots=16, seed=42)
    assert [e.id for e in split.train] == [f"rte-train-{i}" for i in LMBFF_RTE_16_42["train"]]
    assert [e.id for e in split.dev] == [f"rte-train-{i}" for i in LMBFF_RTE_16_42["dev"]]


@pytest.mark.parametrize("seed", LMBFF_SEEDS)
def test_k_per_class_disjoint_from_pool_test_untouched(rte: tuple[list[Example], list[Example]], seed: int) -> None:
    pool, test = rte
    split = sample_fewshot(pool, test, RTE, shots=8, seed=seed)
    assert (split.seed, split.shots) == (seed, 8)
    per_class = {"entailment": 8, "not_entailment": 8}
    assert Counter(e.label for e in split.train) == Counter(e.label for e in split.dev) == per_class
    train_ids, dev_ids = {e.id for e in split.train}, {e.id for e in split.dev}
    assert len(train_ids) == len(dev_ids) == 16 and not train_ids & dev_ids
    assert train_ids | dev_ids <= {e.id for e in pool}
    assert split.test == test


def test_deterministic_and_different_across_seeds(rte: tuple[list[Example], list[Example]]) -> None:
    pool, test = rte
    assert sample_fewshot(pool, test, RTE, 16, 13) == sample_fewshot(list(pool), test, RTE, 16, 13)
    trains = {seed: tuple(e.id for e in sample_fewshot(pool, test, RTE, 16, seed).train) for seed in LMBFF_SEEDS}
    assert len(set(trains.values())) == len(LMBFF_SEEDS)


def test_same_split_under_any_hash_seed(data_dir: Path) -> None:
    code = (
        "import sys; from fewforge.tasks import load_task; from fewforge.data.io import read_examples;"
        "from fewforge.data.fewshot import sample_fewshot, ids_sha256; t = load_task('trec');"
        "p = read_examples(sys.argv[1], t); s = sample_fewshot(p, [], t, 4, 87); print(ids_sha256(s.train + s.dev))"
    )
    trec = str(data_dir / "trec" / "train.jsonl")
    digests = {
        subprocess.run(
            [sys.executable, "-c", code, trec], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        ).stdout.strip()
        for hash_seed in ("0", "12345")
    }
    assert len(digests) == 1 and len(next(iter(digests))) == 64


def tiny_pool(counts: dict[str, int]) -> list[Example]:
    return [
        Example({"text": f"{label} {i}"}, label, id=f"t-{label}-{i}") for label, n in counts.items() for i in range(n)
    ]


def test_too_few_examples_names_the_classes() -> None:
    with pytest.raises(DataError) as info:
        sample_fewshot(tiny_pool({"negative": 40, "positive": 5}), [], SST2, shots=16, seed=13)
    text = str(info.value)
    assert "'positive' has 5; each class needs 32" in text and "lower --shots to at most 2" in text
    assert "'negative' has" not in text and "\n" not in text
    with pytest.raises(DataError, match=r"'positive' has 0"):
        sample_fewshot(tiny_pool({"negative": 40}), [], SST2, shots=16, seed=13)


def test_empty_pool_and_bad_arguments() -> None:
    with pytest.raises(DataError, match="the pool is empty"):
        sample_fewshot([], [], SST2, shots=16, seed=13)
    with pytest.raises(ConfigError, match="shots must be at least 1"):
        sample_fewshot(tiny_pool({"negative": 4, "positive": 4}), [], SST2, shots=0, seed=13)
    with pytest.raises(ConfigError, match="seed -1 is out of range"):
        sample_fewshot(tiny_pool({"negative": 4, "positive": 4}), [], SST2, shots=1, seed=-1)


def test_save_and_load_split_with_record(tmp_path: Path, rte: tuple[list[Example], list[Example]]) -> None:
    pool, test = rte
    split = sample_fewshot(pool, test, RTE, shots=4, seed=21)
    folder = save_split(split, tmp_path / "fewshot")
    assert folder == tmp_path / "fewshot" / "seed21"
    assert sorted(p.name for p in folder.iterdir()) == ["dev.jsonl", "split.json", "train.jsonl"]
    record = json.loads((folder / "split.json").read_text())
    assert (record["seed"], record["shots"]) == (21, 4)
    assert record["sizes"] == {"train": 8, "dev": 8, "test": len(test)}
    assert record["per_label"]["train"] == {"entailment": 4, "not_entailment": 4}
    assert record["ids_sha256"]["train"] == ids_sha256(split.train)
    assert load_split(tmp_path / "fewshot", 21, RTE, test) == split
    assert load_split(tmp_path / "fewshot", 21, RTE).train == split.train  # the test set is optional

    with pytest.raises(DataError, match="test set differs from the one this split was sampled with"):
        load_split(tmp_path / "fewshot", 21, RTE, test[:-1])
    with pytest.raises(DataError, match="no saved split for seed 13"):
        load_split(tmp_path / "fewshot", 13, RTE)
    lines = (folder / "train.jsonl").read_text().splitlines()
    (folder / "train.jsonl").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(DataError, match=r"train\.jsonl: the examples differ from those recorded in split\.json"):
        load_split(tmp_path / "fewshot", 21, RTE)
