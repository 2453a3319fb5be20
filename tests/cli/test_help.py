"""`--help` is built from the registries and the default run's grid file, so it cannot drift from them."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from fewforge.cli.app import app
from fewforge.cli.options import DEFAULTS
from fewforge.generators import GENERATORS
from fewforge.learners import LEARNERS
from fewforge.learners.strategies import STRATEGIES
from fewforge.synthesis import METHODS


def help_text(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return re.sub(r"[\s│]+", " ", result.output)  # one line, without the panels' borders


@pytest.mark.parametrize(
    "command, option, registry",
    [
        (("run",), "--method", METHODS),
        (("run",), "--learner", LEARNERS),
        (("run",), "--generator", GENERATORS),
        (("train",), "--learner", LEARNERS),
        (("train",), "--strategy", STRATEGIES),
        (("fit",), "--method", METHODS),
    ],
)
def test_an_option_lists_every_registered_name(command, option, registry):
    text = help_text(*command)
    described = text[text.index(option) :]
    described = described[: described.index(" --", len(option))]  # up to the next option
    missing = [name for name in registry.names() if name not in described]
    assert not missing, f"`fewforge {' '.join(command)} --help` {option} omits {missing}"


def test_the_run_help_describes_the_default_run_from_its_grid():
    text = help_text("run")
    encoder = next(s for s in DEFAULTS.learners if s.name == "encoder")
    assert f"encoder at {'/'.join(map(str, encoder.shots))} shots" in text
    assert "shots " + "/".join(map(str, DEFAULTS.shots)) in text
    assert "[default: " + ",".join(DEFAULTS.tasks) + "]" in text  # defaults shown, not eaten as rich markup
