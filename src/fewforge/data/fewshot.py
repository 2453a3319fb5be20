"""LM-BFF few-shot sampling: k per class (k examples for kinds without classes: QA, text-to-text) for
train and a disjoint k for dev, from the pool.

The procedure is LM-BFF's `tools/generate_k_shot_data.py`, step for step: shuffle the whole pool with
numpy's legacy generator seeded with the seed (`np.random.seed(seed); np.random.shuffle(lines)`), group by
label in order of first appearance, take the first k of each label for train and the next k for dev.
Run on a pool in its original file order, this reproduces LM-BFF's released splits: for RTE and MRPC
(seed 42, k=16) the chosen rows equal LM-BFF's `data/k-shot/*/16-42` files. numpy's legacy
`RandomState` stream is frozen by numpy's compatibility policy, so the split depends only on the pool
(content and order: the order of the file) and the seed, never on the machine or PYTHONHASHSEED.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

from fewforge.data.io import read_jsonl, write_jsonl
from fewforge.data.schema import Example, FewShotSplit
from fewforge.errors import ConfigError, DataError
from fewforge.files import write_json
from fewforge.tasks.base import Task

LMBFF_SEEDS = (13, 21, 42, 87, 100)
SPLIT_RECORD = "split.json"


def sample_fewshot(
    pool: Sequence[Example], test: Sequence[Example], task: Task, shots: int, seed: int
) -> FewShotSplit:
    """LM-BFF split for one seed; `test` passes through unchanged (it is never sampled from)."""
    import numpy as np

    if shots < 1:
        raise ConfigError(f"shots must be at least 1, got {shots}", hint="use e.g. --shots 16 (LM-BFF's k)")
    if not 0 <= seed < 2**32:
        raise ConfigError(f"seed {seed} is out of range", hint="use a seed in [0, 2**32), e.g. 13,21,42,87,100")
    if not pool:
        raise DataError(f"task {task.name!r}: the pool is empty", hint="check the train file of this task")
    order = list(range(len(pool)))
    np.random.RandomState(seed).shuffle(order)
    train, dev = task.spec.sample(task, pool, order, shots)
    return FewShotSplit(
        seed=seed,
        shots=shots,
        train=train,
        dev=dev,
        test=list(test),
    )


def ids_sha256(examples: Sequence[Example]) -> str:
    """A fingerprint of which examples were chosen, in order."""
    return hashlib.sha256("\n".join(e.id for e in examples).encode("utf-8")).hexdigest()


def _per_label(examples: Sequence[Example]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in examples:
        counts[e.label] = counts.get(e.label, 0) + 1
    return counts


def save_split(split: FewShotSplit, directory: str | Path) -> Path:
    """Write <directory>/seed<seed>/{train.jsonl, dev.jsonl, split.json}; returns that folder.

    The test set is not copied (it is the task's full test file); split.json records its size and id hash
    so `load_split` can check that the same test set is used again.
    """
    folder = Path(directory) / f"seed{split.seed}"
    if any(not e.id for e in (*split.train, *split.dev)):
        raise DataError(f"{folder}: examples without ids cannot be recorded", hint="read data with read_examples")
    write_jsonl(folder / "train.jsonl", split.train)
    write_jsonl(folder / "dev.jsonl", split.dev)
    record = {
        "seed": split.seed,
        "shots": split.shots,
        "sampler": "LM-BFF (numpy RandomState(seed) shuffle, first k per label (k in all without labels) train, next k dev)",
        "sizes": {"train": len(split.train), "dev": len(split.dev), "test": len(split.test)},
        "per_label": {"train": _per_label(split.train), "dev": _per_label(split.dev)},
        "ids_sha256": {
            "train": ids_sha256(split.train),
            "dev": ids_sha256(split.dev),
            "test": ids_sha256(split.test),
        },
    }
    write_json(folder / SPLIT_RECORD, record)
    return folder


def load_split(directory: str | Path, seed: int, task: Task, test: Sequence[Example] = ()) -> FewShotSplit:
    """Read a split written by `save_split`, checking its files against split.json (and `test`, if given)."""
    folder = Path(directory) / f"seed{seed}"
    record_path = folder / SPLIT_RECORD
    if not record_path.is_file():
        raise DataError(
            f"{record_path}: no saved split for seed {seed}", hint="run `fewforge sample` for this seed first"
        )
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        shots, hashes = int(record["shots"]), record["ids_sha256"]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise DataError(f"{record_path}: not a split record", hint="delete the folder and sample again") from None
    train = read_jsonl(folder / "train.jsonl", task, split="train")
    dev = read_jsonl(folder / "dev.jsonl", task, split="dev")
    for name, part in (("train", train), ("dev", dev)):
        if ids_sha256(part) != hashes.get(name):
            raise DataError(
                f"{folder / (name + '.jsonl')}: the examples differ from those recorded in {SPLIT_RECORD}",
                hint="the file was edited after sampling; delete the folder and sample again",
            )
    if test and ids_sha256(test) != hashes.get("test"):
        raise DataError(
            f"{record_path}: the test set differs from the one this split was sampled with",
            hint="use the same test file, or sample again",
        )
    return FewShotSplit(seed=seed, shots=shots, train=train, dev=dev, test=list(test))
