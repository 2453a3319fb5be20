"""Names that become path segments: checked once, at plan time, by one validator."""

from __future__ import annotations

from pathlib import Path

import pytest

from fewforge.config import RunConfig
from fewforge.errors import ConfigError
from fewforge.names import check_name


@pytest.mark.parametrize("name", ["sst2", "rt-snippets", "zerogen-filter", "prompt-tuning+ls", "a.b_c", "K16"])
def test_safe_names_pass(name):
    assert check_name(name, "id") == name


@pytest.mark.parametrize("name", ["..", ".", "a/b", "a\\b", "", ".hidden", "-x", "a b", "a:b", "../x", "é"])
def test_names_that_cannot_be_one_folder_are_refused(name):
    with pytest.raises(ConfigError, match="cannot name a folder"):
        check_name(name, "methods[0].id")


def test_two_ids_that_share_a_folder_are_refused_at_plan_time(tmp_path):
    from fewforge.grid import plan_grid

    cfg = RunConfig(tasks=["sst2"], shots=[2], seeds=[13], learners=[{"name": "linear-probe", "id": "lp+x"},
                                                                     {"name": "linear-probe", "id": "lp_x"}],
                    conditions=["real"], data=str(tmp_path / "never-read"))
    with pytest.raises(ConfigError, match=r"learner 'lp\+x' and learners\[1\] 'lp_x' would share the folder 'lp_x'"):
        plan_grid(cfg)


def test_a_grid_file_name_becomes_the_run_folder_only_when_it_is_one():
    from fewforge.cli.options import output_dir

    assert output_dir(None, Path("grids/curation-sst2.yaml")) == Path("runs/curation-sst2")
    with pytest.raises(ConfigError, match="grid file name"):
        output_dir(None, Path("grids/my grid.yaml"))


def test_the_rundir_refuses_a_folder_name_that_is_not_one(tmp_path):
    from fewforge.rundir import RunDir

    with pytest.raises(ConfigError):
        RunDir(tmp_path).synthetic_dir("sst2", 13, "..", None)
