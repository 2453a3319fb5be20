"""Every script under bench/ and docs/results/ runs, in its smoke mode (FEWFORGE_SMOKE=1: tiny sizes,
results in a temporary folder), so an import or API change that breaks one fails here instead of on the
next person who measures. A new script is covered without editing this file. The few whose smoke run
takes 40 s or more run under -m slow (CI runs both); the default suite checks their fewforge imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HELPERS = {"smoke.py"}  # imported by the bench scripts, not one of them
# smoke runs of 40 s or more on 2 cores (they tune a generator, spawn workers or generate with the real
# model even at smoke sizes): in -m slow, which CI runs, so the default suite stays near 10 minutes
SLOW = {"bench/executor.py", "bench/generation.py", "bench/generator_tuning.py", "bench/postprocess.py",
        "docs/results/generator-tuning-cause-check.py"}
SCRIPTS = [
    pytest.param(script, marks=pytest.mark.slow) if script in SLOW else script
    for script in sorted(
        p.relative_to(REPO).as_posix()
        for folder in ("bench", "docs/results")
        for p in (REPO / folder).glob("*.py")
        if p.name not in HELPERS
    )
]


def test_slow_scripts_exist():
    assert SLOW <= {p.values[0] if hasattr(p, "values") else p for p in SCRIPTS}, "a SLOW entry names no script"


@pytest.mark.parametrize("script", sorted(SLOW))
def test_slow_scripts_import_what_they_name(script):
    """The slow scripts' smoke runs wait for -m slow; what breaks them most (a fewforge name that moved or
    was renamed: the ImportError bench/generator_tuning.py once met on a fresh clone) is checked here."""
    import ast
    import importlib
    import importlib.util

    tree = ast.parse((REPO / script).read_text(encoding="utf-8"))
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("fewforge")]
    assert imports, f"{script} imports nothing from fewforge: is it still a fewforge script?"
    for node in imports:
        module = importlib.import_module(node.module)
        for alias in node.names:
            assert hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}"), (
                f"{script}:{node.lineno} imports {alias.name!r} from {node.module}, which has no such name"
            )


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_runs_in_smoke_mode(script, tmp_path, data_dir):
    env = {**os.environ, "FEWFORGE_SMOKE": "1", "FEWFORGE_DATA": str(data_dir), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    committed = {p: p.read_bytes() for p in (REPO / "bench" / "results").glob("*")}
    # fit-bbc.py writes its files to the folder it is given; the others take no argument in smoke mode
    args = [str(tmp_path)] if script.endswith("fit-bbc.py") else []
    result = subprocess.run(
        [sys.executable, str(REPO / script), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stderr[-3000:]}"
    if script.startswith("bench/"):  # a bench script's last line is its ratio (STYLE.md)
        assert result.stdout.strip().splitlines()[-1].startswith("ratio="), result.stdout[-500:]
    assert {p: p.read_bytes() for p in (REPO / "bench" / "results").glob("*")} == committed  # never overwritten
