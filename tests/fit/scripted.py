"""The scripted generator of the synthesis tests (tests/synthesis/conftest.py, loaded by path, not
copied) and a script that writes a distinct sentence for the BBC label a prompt asks for."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("synthesis_fixtures", Path(__file__).parents[1] / "synthesis" / "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
FakeGenerator = _fixtures.FakeGenerator
unique_sentence = _fixtures.unique_sentence

BBC_LABELS = ("business", "entertainment", "politics", "sports", "tech")


def bbc_script(prompt: str, index: int) -> str:
    """A distinct sentence for the label the prompt asks for (the first label word in it)."""
    found = sorted((prompt.find(label), label) for label in BBC_LABELS if label in prompt)
    return unique_sentence(index, found[0][1] if found else "news")
