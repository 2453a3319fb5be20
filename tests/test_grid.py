"""Grid configs and planning: shorthand, one-line errors naming the key path, and the shared work."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fewforge.cli.options import build_config
from fewforge.config import RunConfig
from fewforge.errors import ConfigError, DataError, TaskError
from fewforge.grid import plan_grid


def grid_file(tmp_path: Path, **values) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_shorthand_and_defaults(tmp_path):
    cfg = RunConfig.from_yaml(grid_file(tmp_path, tasks="sst2", shots=16, learners=["linear-probe"], data="data"))
    assert cfg.tasks == ["sst2"] and cfg.shots == [16]
    assert [s.name for s in cfg.learners] == ["linear-probe"] and cfg.learners[0].options == {}
    assert cfg.data == str((tmp_path / "data").resolve())  # relative to the grid file
    default = RunConfig()
    assert default.tasks == ["bbc"] and default.shots == [2, 4, 8, 16] and default.seeds == [13, 21, 42]
    assert [s.label for s in default.learners] == ["linear-probe", "encoder"]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"taks": ["sst2"]}, "unknown key 'taks'"),
        ({"learners": [{"name": "encoder", "optoins": {}}]}, "unknown key 'learners[0].optoins'"),
        ({"shots": [4, 4]}, "invalid shots: duplicates"),
        ({"shots": [0]}, "invalid shots: every value must be at least 1"),
        ({"methods": ["zerogen", "zerogen"]}, "method 'zerogen' appears twice"),
        ({"conditions": ["real", "fake"]}, "invalid conditions[1]"),
    ],
)
def test_config_errors_name_the_key_path(tmp_path, values, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        RunConfig.from_yaml(grid_file(tmp_path, **values))
    assert str(tmp_path / "grid.yaml") in err.value.message


def test_plan_validates_every_component_before_anything_runs(tmp_path, data_dir):
    base = {"tasks": ["sst2"], "data": str(data_dir), "shots": [4], "seeds": [13], "learners": ["linear-probe"]}
    with pytest.raises(ConfigError, match=r"unknown key 'learners\[1\]\.options\.learning_rte'") as err:
        plan_grid(
            RunConfig(**{**base, "learners": ["linear-probe", {"name": "encoder", "options": {"learning_rte": 1}}]})
        )
    assert "learning_rate" in err.value.hint
    with pytest.raises(ConfigError, match=r"learners\[0\]\.name: unknown learner 'svm'"):
        plan_grid(RunConfig(**{**base, "learners": ["svm"]}))
    with pytest.raises(ConfigError, match=r"methods\[0\]: unknown option"):
        plan_grid(RunConfig(**base, methods=[{"name": "zerogen", "options": {"temprature": 1}}]))
    with pytest.raises(ConfigError, match=r"methods\[0\]\.options\.per_label"):
        plan_grid(RunConfig(**base, methods=[{"name": "zerogen", "options": {"per_label": 5}}]))
    with pytest.raises(ConfigError, match="conditions decide"):
        plan_grid(RunConfig(**{**base, "learners": [{"name": "encoder", "options": {"strategy": "real"}}]}))
    with pytest.raises(ConfigError, match=r"learners\[0\]\.shots \[8\] has no value"):
        plan_grid(RunConfig(**{**base, "learners": [{"name": "encoder", "shots": [8]}]}))
    with pytest.raises(ConfigError, match=r"learners\[0\]\.tasks names \['rte'\]"):
        plan_grid(RunConfig(**{**base, "learners": [{"name": "encoder", "tasks": "rte"}]}))
    with pytest.raises(ConfigError, match="generator: unknown generator spec"):
        plan_grid(RunConfig(**base, generator="gpt-17"))
    with pytest.raises(ConfigError, match="generator: unknown option"):
        plan_grid(RunConfig(**base, generator_options={"n_paralel": 4}))
    with pytest.raises(TaskError, match="nope"):
        plan_grid(RunConfig(**{**base, "tasks": ["sst2", "nope"]}))
    with pytest.raises(DataError, match="too few pool examples"):
        plan_grid(RunConfig(**{**base, "shots": [5000]}))


def test_plan_shares_work(data_dir):
    cfg = RunConfig(
        tasks=["sst2", "rte"],
        data=str(data_dir),
        shots=[4, 16],
        seeds=[13, 21],
        per_label=[5, 10],
        learners=[
            "linear-probe",
            {"name": "encoder", "shots": [16], "per_label": [10]},
            {"name": "encoder", "id": "enc-rte", "tasks": ["rte"]},
        ],
    )
    plan = plan_grid(cfg)
    # zerogen never reads the few-shot rows: one set per (task, seed) serves both shots values
    assert len(plan.synthetic_sets) == 2 * 2 and all(k.shots is None for k in plan.synthetic_sets)
    assert len(plan.splits) == 2 * 2 * 2
    # linear-probe: 2 tasks x 2 shots x 2 seeds x (real + 2 sizes); encoder: 2 x 1 x 2 x (real + 1);
    # enc-rte: 1 task x 2 x 2 x (real + 2)
    assert len(plan.cells) == 2 * 2 * 2 * 3 + 2 * 2 * 2 + 2 * 2 * 3
    assert {c.task for c in plan.cells if c.learner == "enc-rte"} == {"rte"}
    assert len({c.id for c in plan.cells}) == len(plan.cells)
    real = [c for c in plan.cells if c.condition == "real"]
    assert all(c.method is None and c.per_label is None for c in real)  # one real-only cell per point
    encoder = plan.learner_config(next(c for c in plan.cells if c.learner == "encoder" and c.condition == "real"))
    assert encoder.strategy == "real"
    mixed = next(c for c in plan.cells if c.learner == "encoder" and c.condition == "real+synthetic")
    assert plan.learner_config(mixed).strategy == "paired"


def test_cli_options_set_whole_axes(tmp_path):
    path = grid_file(tmp_path, tasks=["sst2"], shots=[4, 16], learners=[{"name": "encoder", "shots": [16]}])
    cfg = build_config(path, shots="8", seeds="13", task="rte,sst2")
    assert cfg.shots == [8] and cfg.seeds == [13] and cfg.tasks == ["rte", "sst2"]
    assert cfg.learners[0].shots is None  # --shots applies to every learner
    assert build_config(None, learner="linear-probe").learners[0].name == "linear-probe"
    with pytest.raises(ConfigError, match="--seeds"):
        build_config(None, seeds="13,x")


def test_strategies_are_an_axis_of_the_real_synthetic_cells(data_dir):
    base = {"tasks": ["sst2"], "data": str(data_dir), "shots": [4], "seeds": [13, 21], "per_label": [5]}
    strategies = ["real+syn", "real->syn", "paired", "paired+gs", "paired+reweight"]
    plan = plan_grid(RunConfig(**base, learners=[{"name": "encoder", "strategies": strategies}]))
    mixed = [c for c in plan.cells if c.condition == "real+synthetic"]
    assert sorted(c.strategy for c in mixed) == sorted(strategies * 2)
    assert {plan.learner_config(c).strategy for c in mixed} == set(strategies)
    assert {c.id.rsplit("-", 1)[1] for c in mixed} == {"real_syn", "real_to_syn", "paired", "paired_gs",
                                                      "paired_reweight"}
    assert len({c.id for c in plan.cells}) == len(plan.cells)
    assert plan.learner_config(next(c for c in plan.cells if c.condition == "real")).strategy == "real"
    with pytest.raises(ConfigError, match=r"learners\[0\]\.strategies\[1\]: learner 'encoder' has no strategy 'mix'"):
        plan_grid(RunConfig(**base, learners=[{"name": "encoder", "strategies": ["paired", "mix"]}]))
    with pytest.raises(ConfigError, match=r"learners\[0\]\.strategies\[0\] 'syn'"):
        plan_grid(RunConfig(**base, learners=[{"name": "encoder", "strategies": ["syn"]}]))
    # a learner whose loss takes no per-row weights cannot learn them: a plan-time error without the name
    with pytest.raises(ConfigError, match=r"has no strategy 'paired\+reweight'") as info:
        plan_grid(RunConfig(**base, learners=[{"name": "linear-probe", "strategies": ["paired+reweight"]}]))
    assert "paired+reweight" not in (info.value.hint or "")


def test_a_learner_can_be_limited_to_some_conditions(data_dir):
    base = {"tasks": ["sst2"], "data": str(data_dir), "shots": [4], "seeds": [13], "per_label": [5]}
    plan = plan_grid(RunConfig(**base, learners=[{"name": "zero-shot", "conditions": ["real"]}, "linear-probe"]))
    assert [c.condition for c in plan.cells if c.learner == "zero-shot"] == ["real"]
    assert {c.condition for c in plan.cells if c.learner == "linear-probe"} == {"real", "real+synthetic"}
    with pytest.raises(ConfigError, match=r"learners\[0\]\.conditions \['synthetic'\] has no value"):
        plan_grid(RunConfig(**base, learners=[{"name": "encoder", "conditions": ["synthetic"]}]))


def test_a_variant_names_the_learner_it_is_compared_with(data_dir):
    base = {"tasks": ["sst2"], "data": str(data_dir), "shots": [4], "seeds": [13], "per_label": [5]}
    variant = {"name": "linear-probe", "id": "lp-variant", "conditions": ["real+synthetic"], "baseline": "linear-probe"}
    plan = plan_grid(RunConfig(**base, learners=["linear-probe", variant]))
    assert [c.condition for c in plan.cells if c.learner == "lp-variant"] == ["real+synthetic"]
    with pytest.raises(ConfigError, match=r"learners\[1\]\.baseline 'probe' names no learner"):
        plan_grid(RunConfig(**base, learners=["linear-probe", {**variant, "baseline": "probe"}]))
    only_mixed = {"name": "encoder", "conditions": ["real+synthetic"]}
    with pytest.raises(ConfigError, match=r"learners\[2\]\.baseline 'encoder' names no learner.*\['linear-probe'\]"):
        plan_grid(RunConfig(**base, learners=["linear-probe", only_mixed, {**variant, "baseline": "encoder"}]))


def test_learners_serve_their_task_kinds_and_num_synthetic_splits_over_labels(data_dir):
    base = {"data": str(data_dir), "shots": [4], "seeds": [13], "conditions": ["real", "real+synthetic"]}
    plan = plan_grid(
        RunConfig(**base, tasks=["sst2", "adversarialqa"], learners=["linear-probe", "qa-encoder"], num_synthetic=[40])
    )
    # each learner runs on the tasks of its kind only; 40 in all = 20 per SST-2 label, 40 QA rows
    assert {(c.task, c.learner, c.per_label) for c in plan.cells} == {
        ("sst2", "linear-probe", None),
        ("sst2", "linear-probe", 20),
        ("adversarialqa", "qa-encoder", None),
        ("adversarialqa", "qa-encoder", 40),
    }
    assert {k.task: plan.method(k).config.per_label for k in plan.synthetic_sets} == {"sst2": 20, "adversarialqa": 40}
    with pytest.raises(ConfigError, match=r"learners\[0\] 'linear-probe' learns single, pair tasks, not adversarialqa"):
        plan_grid(RunConfig(**base, tasks=["adversarialqa"], learners=["linear-probe"]))
    with pytest.raises(ConfigError, match=r"method 'fewgen' serves single, pair tasks, not squad-qg \(text-to-text\)"):
        plan_grid(RunConfig(**base, tasks=["squad-qg"], learners=["causal-lm"], methods=["fewgen"]))
    with pytest.raises(ConfigError, match="give the synthetic size once"):
        RunConfig.build(per_label=[10], num_synthetic=[40])


def test_num_synthetic_on_the_command_line_replaces_the_grids_per_label(tmp_path):
    grid = grid_file(tmp_path, tasks=["sst2"], per_label=[10], learners=["linear-probe"])
    assert build_config(grid, num_synthetic="100").num_synthetic == [100]
    assert build_config(grid).per_label == [10]
    with pytest.raises(ConfigError, match="both set the synthetic size"):
        build_config(grid, per_label="5", num_synthetic="100")


def test_a_task_of_another_kind_gets_its_own_student_by_default(tmp_path):
    assert [s.name for s in build_config(None, task="adversarialqa").learners] == ["qa-encoder"]
    assert [s.name for s in build_config(None, task="sst2,squad-qg").learners] == ["linear-probe", "encoder", "causal-lm"]
    assert [s.name for s in build_config(None, task="sst2").learners] == ["linear-probe", "encoder"]
    assert [s.name for s in build_config(None, task="squad", learner="qa-encoder").learners] == ["qa-encoder"]


def _task_of_each_kind(data_dir: Path) -> dict[str, str]:
    """A built-in task of every registered kind whose data is in the data directory (the kinds come from the
    registry, so a new kind is covered once it has a built-in task)."""
    from fewforge.tasks import list_tasks, load_task
    from fewforge.tasks.kinds import KINDS

    out: dict[str, str] = {}
    for name in list_tasks():
        task = load_task(name)
        if task.kind not in out and (data_dir / (task.data or task.name) / "train.jsonl").exists():
            out[task.kind] = name
    assert set(out) == set(KINDS), f"no built-in task with data for kinds {set(KINDS) - set(out)}"
    return out


def test_a_minimal_grid_of_every_kind_plans(tmp_path, data_dir):
    """A grid naming tasks, shots, seeds, a method and per_label, and nothing else, plans: every omitted
    key's default is valid for any grid (the default run's restrictions live in its own grid file)."""
    from fewforge.learners import get_learner

    for kind, task in _task_of_each_kind(data_dir).items():
        grid = grid_file(
            tmp_path, tasks=[task], data=str(data_dir), shots=[8], seeds=[13], methods=["zerogen"], per_label=[5]
        )
        plan = plan_grid(build_config(grid))
        assert plan.cells, kind
        assert all(kind in get_learner(s.name).kinds for s in plan.cfg.learners), kind
        assert {c.condition for c in plan.cells} == {"real", "real+synthetic"}, kind
        assert {c.shots for c in plan.cells} == {8}
        assert {s.label for s in plan.cfg.learners} == {c.learner for c in plan.cells}, kind  # each learner trains


def test_the_default_run_keeps_its_own_restrictions(tmp_path, data_dir):
    default = build_config(None)
    encoder = next(s for s in default.learners if s.name == "encoder")
    assert encoder.shots == [2] and encoder.per_label == [30]
    # a grid that leaves learners out does not inherit them (the issue: shots [8] vs the encoder's [2])
    grid = grid_file(tmp_path, tasks=["sst2"], data=str(data_dir), shots=[8], seeds=[13], per_label=[5])
    assert all(s.shots is None and s.per_label is None for s in build_config(grid).learners)


def test_a_step_bound_the_user_sets_wins_over_the_other_bounds_default(data_dir):
    base = {"tasks": ["sst2"], "data": str(data_dir), "shots": [4], "seeds": [13], "conditions": ["real"]}
    plan = plan_grid(RunConfig(**base, learners=[{"name": "prompt-tuning", "options": {"max_steps": 150}}]))
    config = plan.learners["prompt-tuning"][1]
    assert (config.min_steps, config.max_steps) == (150, 150)  # default min_steps 1000 follows the user's bound
    plan = plan_grid(RunConfig(**base, learners=[{"name": "encoder", "options": {"min_steps": 200}}]))
    assert (plan.learners["encoder"][1].min_steps, plan.learners["encoder"][1].max_steps) == (200, 200)
    with pytest.raises(ConfigError, match=r"min_steps \(200\) must not exceed max_steps \(100\)"):
        plan_grid(RunConfig(**base, learners=[{"name": "encoder", "options": {"min_steps": 200, "max_steps": 100}}]))
