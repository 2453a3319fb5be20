"""Fixtures of the fit tests: a CSV of the packaged BBC News corpus at 8 rows per label (what a user
with a handful of rows brings) and BBC's real test articles."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bbc_rows():
    """(8 rows per label as the LM-BFF sampler draws them with seed 13, BBC's real test set)."""
    from fewforge.data.fewshot import sample_fewshot
    from fewforge.data.sources import load_packaged_bbc
    from fewforge.tasks import load_task

    task = load_task("bbc")
    pool, test = load_packaged_bbc(task)
    return sample_fewshot(pool, [], task, 8, seed=13).train, test


@pytest.fixture(scope="session")
def bbc_csv(bbc_rows, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bbc") / "my_examples.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows((e.inputs["text"], e.label) for e in bbc_rows[0])
    return path
