"""Smoke mode of the bench scripts: `FEWFORGE_SMOKE=1 python bench/NAME.py` runs the same code at tiny sizes,
so the default test suite (tests/test_scripts.py) runs every script and an import or API change that breaks
one fails there. A smoke run's numbers mean nothing: it writes its results to a temporary folder, never over
the committed bench/results/."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

SMOKE = os.environ.get("FEWFORGE_SMOKE") == "1"


def results_file(name: str) -> Path:
    """bench/results/NAME, or a temporary file in smoke mode."""
    folder = Path(tempfile.gettempdir()) / "fewforge-smoke" if SMOKE else Path(__file__).parent / "results"
    return folder / name


def smoke_sizes(parser: argparse.ArgumentParser, **sizes: Any) -> argparse.ArgumentParser:
    """In smoke mode, `sizes` replace the parser's defaults (options given on the command line still win)."""
    if SMOKE:
        parser.set_defaults(**sizes)
    return parser
