"""Shared fixtures: real packaged models and the real task data, all offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# A wrong local path must fail as a missing file, never turn into a hub download attempt.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see fewforge/cli/app.py

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real task data (../shared/data, or FEWFORGE_DATA)."""
    path = Path(os.environ.get("FEWFORGE_DATA", REPO.parent / "shared" / "data"))
    if not (path / "sst2" / "train.jsonl").exists():
        pytest.fail(f"real task data not found at {path}; set FEWFORGE_DATA to the data directory")
    return path


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    from fewforge.packaged import smollm2_gguf

    return smollm2_gguf()


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    from fewforge.packaged import minilm_dir

    return minilm_dir()
