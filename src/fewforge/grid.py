"""Planning a grid: validate the whole request, then list its work — few-shot splits, synthetic sets
and cells — without writing anything. A typo anywhere (task, data, option of any method, learner or
generator) fails here, before the first file of a run directory is touched.

Work is shared, never repeated: one split per (task, shots, seed); one synthetic set per (split, method)
— per (task, seed, method) for a method that never reads the few-shot examples (ZeroGen), which then
serves every shots value —; one model per cell. A real-only cell has no method: one serves every method.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fewforge.config import RunConfig, config_error
from fewforge.data.schema import Example
from fewforge.errors import ConfigError, DataError, FewforgeError
from fewforge.fingerprint import fingerprint
from fewforge.generators.urls import redact_text
from fewforge.learners.base import CONDITION_STRATEGY, Learner, LearnerConfig
from fewforge.names import check_distinct_folders, check_name
from fewforge.tasks.base import Task
from fewforge.tasks.kinds import kind_names


@dataclass
class TaskData:
    task: Task
    pool: list[Example]
    test: list[Example]

    @property
    def pool_fingerprint(self) -> str:
        """The task definition and the pool (computed once per run: hashing a 200k-row pool is not free)."""
        if not hasattr(self, "_pool_fp"):
            self._pool_fp = fingerprint(
                {"task": self.task.definition(), "pool": [e.to_record() for e in self.pool]}
            )
        return self._pool_fp

    @property
    def test_fingerprint(self) -> str:
        """The scored rows in full (texts, labels, ids, order): an edited test text, or `data:` pointing at
        another copy, reruns the task's cells instead of reusing stale metrics."""
        if not hasattr(self, "_test_fp"):
            self._test_fp = fingerprint([e.to_record() for e in self.test])
        return self._test_fp


@dataclass(frozen=True)
class Cell:
    """One model to train and score: every axis of the grid fixed."""

    task: str
    shots: int
    seed: int
    learner: str
    condition: str
    method: str | None = None
    per_label: int | None = None
    strategy: str | None = None  # real+synthetic cells of a learner with `strategies`: which one

    @property
    def id(self) -> str:
        """Also the cell's folder under cells/: bbc/k16/seed13/linear-probe/real_synthetic-zerogen-n40
        (+ `-paired_gs` when the learner lists strategies)."""
        from fewforge.rundir import folder_name as slug

        data = "real" if self.condition == "real" else f"{slug(self.condition)}-{slug(self.method or '')}-n{self.per_label}"
        if self.strategy:
            data += f"-{slug(self.strategy)}"
        return f"{slug(self.task)}/k{self.shots}/seed{self.seed}/{slug(self.learner)}/{data}"

    def axes(self) -> dict[str, Any]:
        return {"cell": self.id, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class SetKey:
    """One synthetic set: shots is None for a method that does not read the few-shot examples."""

    task: str
    seed: int
    method: str
    shots: int | None


@dataclass
class Plan:
    cfg: RunConfig
    data: dict[str, TaskData]
    learners: dict[str, tuple[type[Learner], LearnerConfig]]
    methods: dict[str, Any]  # label -> configured SynthesisMethod
    generator: Any | None  # the backend (not loaded), when any cell uses synthetic data
    cells: list[Cell]
    # method label -> its validated CurateConfig (methods without `curate` are absent)
    curation: dict[str, Any] = dataclasses.field(default_factory=dict)
    # failures allowed, prices and budget (generators/policy.py), from the grid's generator_options
    policy: Any = None

    def set_key(self, cell: Cell) -> SetKey:
        """A set per split when its method, or its curation's auditor, reads the few-shot rows."""
        assert cell.method is not None
        reads = self.methods[cell.method].reads_fewshot or self._auditor_reads(cell.method)
        return SetKey(cell.task, cell.seed, cell.method, cell.shots if reads else None)

    def _auditor_reads(self, label: str) -> bool:
        if label not in self.curation:
            return False
        from fewforge.synthesis.curation import auditor_class

        return auditor_class(self.curation[label].auditor).reads_fewshot

    def method(self, key: SetKey) -> Any:
        """The method that writes set `key`, sized for its task: with num_synthetic, tasks with different
        numbers of labels need different sizes per label."""
        method = self.methods[key.method]
        n = max(self.cfg.sizes(len(self.data[key.task].task.groups)))
        if getattr(method.config, "per_label", n) == n:
            return method
        return type(method)(method.config.model_copy(update={"per_label": n}))

    @property
    def synthetic_sets(self) -> list[SetKey]:
        return list(dict.fromkeys(self.set_key(c) for c in self.cells if c.condition != "real"))

    @property
    def splits(self) -> list[tuple[str, int, int]]:
        return list(dict.fromkeys((c.task, c.shots, c.seed) for c in self.cells))

    def learner_config(self, cell: Cell) -> LearnerConfig:
        """The learner's config for this cell: the condition decides real-only / synthetic-only."""
        _, config = self.learners[cell.learner]
        strategy = CONDITION_STRATEGY.get(cell.condition) or cell.strategy
        return config.model_copy(update={"strategy": strategy}) if strategy else config


def plan_grid(cfg: RunConfig) -> Plan:
    """Validate everything and list the work (no file is written)."""
    _check_ids(cfg)
    data = load_data(cfg)
    learners = {spec.label: _learner(i, spec) for i, spec in enumerate(cfg.learners)}
    methods = (
        {
            spec.label: _method(i, spec, max(n for d in data.values() for n in cfg.sizes(len(d.task.groups))))
            for i, spec in enumerate(cfg.methods)
        }
        if cfg.uses_synthetic
        else {}
    )
    if cfg.uses_synthetic and not methods:
        raise ConfigError(
            "the grid has synthetic conditions but no method", hint="add a method, e.g. methods: [zerogen]"
        )
    _check_kinds(cfg, data, learners, methods)
    generator = _generator(cfg) if cfg.uses_synthetic else None
    curation = {
        spec.label: _curation(i, spec.curate, data, generator)
        for i, spec in enumerate(cfg.methods)
        if spec.curate is not None and spec.label in methods
    }
    for label, config in curation.items():
        if config.overgenerate > 1 and "per_label" not in type(methods[label].config).model_fields:
            raise ConfigError(f"method {label!r}: curate.overgenerate sizes per_label, and this method has none",
                              hint="drop overgenerate, or curate a method with per_label")
    for label, method in methods.items():
        if method.needs_adapters and generator is not None and not generator.supports_adapters:
            raise ConfigError(
                f"method {label!r} tunes the generator and sends what it tuned (soft prompts, a LoRA teacher) "
                f"as adapters, and the {generator.backend} backend ({redact_text(cfg.generator)}) cannot load adapters",
                hint="use --generator hf:smollm2 (the packaged SmolLM2 through transformers) or hf:MODEL",
            )
    for i, spec in enumerate(cfg.learners):
        if spec.conditions is not None and not set(spec.conditions) & set(cfg.conditions):
            raise ConfigError(
                f"learners[{i}].conditions {spec.conditions} has no value in the grid's conditions {cfg.conditions}",
                hint=f"add one of them to conditions, or remove learners[{i}].conditions",
            )
        for axis in ("shots", "per_label"):
            wanted = getattr(spec, axis)
            values = cfg.shots if axis == "shots" else {n for d in data.values() for n in cfg.sizes(len(d.task.groups))}
            if wanted is not None and not set(wanted) & set(values):
                raise ConfigError(
                    f"learners[{i}].{axis} {wanted} has no value in the grid's {axis} {sorted(values)}",
                    hint=f"add one of them to {axis}, or remove learners[{i}].{axis}",
                )
    labels = {spec.label: spec for spec in cfg.learners}
    for i, spec in enumerate(cfg.learners):
        base = labels.get(spec.baseline) if spec.baseline else None
        if spec.baseline and (base is None or base.conditions is not None and "real" not in base.conditions):
            raise ConfigError(
                f"learners[{i}].baseline {spec.baseline!r} names no learner of the grid with real-only cells",
                hint=f"name one of {[s.label for s in cfg.learners if s.conditions is None or 'real' in s.conditions]}",
            )
        unknown = sorted(set(spec.tasks or ()) - set(data))
        if unknown:
            raise ConfigError(
                f"learners[{i}].tasks names {unknown}, not a task of the grid", hint=f"tasks are {list(data)}"
            )
    for name, task_data in data.items():
        _check_shots(task_data, max(cfg.shots))
        _check_metrics(task_data.task)

    cells: list[Cell] = []
    for name in data:
        for shots in cfg.shots:
            for seed in cfg.seeds:
                for spec in cfg.learners:
                    if (spec.shots is not None and shots not in spec.shots) or (spec.tasks and name not in spec.tasks):
                        continue
                    if data[name].task.kind not in learners[spec.label][0].kinds:
                        continue  # a learner serves its kinds only: a QA student in a grid with squad-qg
                    conditions = [c for c in cfg.conditions if spec.conditions is None or c in spec.conditions]
                    if "real" in conditions:
                        cells.append(Cell(name, shots, seed, spec.label, "real"))
                    for method in methods:
                        for n in cfg.sizes(len(data[name].task.groups)):
                            if spec.per_label is not None and n not in spec.per_label:
                                continue
                            for condition in conditions:
                                if condition == "synthetic":
                                    cells.append(Cell(name, shots, seed, spec.label, condition, method, n))
                                elif condition != "real":
                                    for strategy in spec.strategies or [None]:
                                        cells.append(Cell(name, shots, seed, spec.label, condition, method, n, strategy))
    return Plan(cfg, data, learners, methods, generator, cells, curation, _policy(cfg))


def load_data(cfg: RunConfig) -> dict[str, TaskData]:
    """Every task of the grid with its pool and (max_test-reduced) test rows."""
    from fewforge.data.sources import load_task_data
    from fewforge.tasks import load_task

    out: dict[str, TaskData] = {}
    for i, spec in enumerate(cfg.tasks):
        task = load_task(spec)
        check_name(task.name, f"tasks[{i}] name")  # it names the data folder read and the run's folders
        if task.name in out:
            raise ConfigError(f"task {task.name!r} appears twice in tasks", hint="list each task once")
        pool, test = load_task_data(task, Path(cfg.data).expanduser() if cfg.data else None)
        if cfg.max_test and len(test) > cfg.max_test:
            # A deterministic subset, in original order, so every cell sees the same rows.
            keep = sorted(random.Random(0).sample(range(len(test)), cfg.max_test))
            test = [test[i] for i in keep]
        out[task.name] = TaskData(task, pool, test)
    return out


def _check_ids(cfg: RunConfig) -> None:
    """Method and learner ids name folders: each must be a safe path segment, and no two may share one."""
    for kind, specs in (("methods", cfg.methods), ("learners", cfg.learners)):
        for i, spec in enumerate(specs):
            check_name(spec.label, f"{kind}[{i}].{'id' if spec.id is not None else 'name'}")
        check_distinct_folders(((f"{kind}[{i}]", s.label) for i, s in enumerate(specs)), kind[:-1])


def _check_kinds(cfg: RunConfig, data: dict[str, TaskData], learners: dict, methods: dict) -> None:
    """Every learner and method can serve the task kinds it is given (one-line errors naming both)."""
    kinds = {name: d.task.kind for name, d in data.items()}
    for i, spec in enumerate(cfg.learners):
        cls = learners[spec.label][0]
        named = {t: kinds[t] for t in spec.tasks or () if t in kinds}  # unknown names: their own error below
        wrong = {t: k for t, k in named.items() if k not in cls.kinds}
        if wrong or not any(k in cls.kinds for k in (named or kinds).values()):
            shown = wrong or kinds
            raise ConfigError(
                f"learners[{i}] {cls.name!r} learns {', '.join(cls.kinds)} tasks, not "
                + ", ".join(f"{t} ({k})" for t, k in shown.items()),
                hint="qa-encoder learns extractive-qa; seq2seq and causal-lm learn text-to-text; the others classify",
            )
    for label, method in methods.items():
        wrong = {t: k for t, k in kinds.items() if k not in method.kinds}
        if wrong:
            raise ConfigError(
                f"method {label!r} serves {', '.join(method.kinds)} tasks, not "
                + ", ".join(f"{t} ({k})" for t, k in wrong.items()),
                hint="zerogen serves every task kind",
            )


def _check_shots(task_data: TaskData, shots: int) -> None:
    if not task_data.task.is_classification:
        if len(task_data.pool) < 2 * shots:
            raise DataError(
                f"task {task_data.task.name!r}: too few pool examples for {shots} shots "
                f"({len(task_data.pool)}; train and dev need {2 * shots})",
                hint=f"lower shots to at most {len(task_data.pool) // 2}",
            )
        return
    counts: dict[str, int] = {}
    for e in task_data.pool:
        counts[e.label] = counts.get(e.label, 0) + 1
    short = {label: counts.get(label, 0) for label in task_data.task.label_names if counts.get(label, 0) < 2 * shots}
    if short:
        worst = min(short.values())
        raise DataError(
            f"task {task_data.task.name!r}: too few pool examples for {shots} shots "
            f"({', '.join(f'{k!r} has {v}' for k, v in short.items())}; each class needs {2 * shots})",
            hint=f"lower shots to at most {worst // 2} or add examples of those classes",
        )


def _check_metrics(task: Task) -> None:
    from fewforge.evaluation.metrics import METRICS

    unknown = [m for m in task.metrics if m not in METRICS]
    if unknown:
        raise ConfigError(
            f"task {task.name!r} asks for unknown metrics {unknown}", hint=f"known metrics: {', '.join(METRICS)}"
        )


def _learner(i: int, spec: Any) -> tuple[type[Learner], LearnerConfig]:
    from fewforge.learners import get_learner

    try:
        cls = get_learner(spec.name)
    except ConfigError as exc:
        raise ConfigError(f"learners[{i}].name: {exc.message}", hint=exc.hint) from None
    try:
        config = cls.Config(**spec.options)
    except ValidationError as exc:
        raise config_error(exc, cls.Config, path=f"learners[{i}].options") from None
    if config.strategy in CONDITION_STRATEGY.values() and "strategy" in spec.options:
        raise ConfigError(
            f"learners[{i}].options.strategy {config.strategy!r}: the grid's conditions decide real-only and "
            "synthetic-only training",
            hint="set a mixing strategy for real+synthetic cells (e.g. paired, real+syn), or change `conditions`",
        )
    for j, strategy in enumerate(spec.strategies or ()):
        where = f"learners[{i}].strategies[{j}]"
        if strategy in CONDITION_STRATEGY.values():
            raise ConfigError(
                f"{where} {strategy!r}: the grid's conditions decide real-only and synthetic-only training",
                hint="list mixing strategies only (e.g. real+syn, paired, paired+gs)",
            )
        try:
            cls.Config(**{**spec.options, "strategy": strategy})
        except ValidationError:
            known = [s for s in _strategy_choices(cls) if s not in CONDITION_STRATEGY.values()]
            raise ConfigError(
                f"{where}: learner {spec.name!r} has no strategy {strategy!r}", hint=f"choose from {known}"
            ) from None
    if spec.strategies and len(set(spec.strategies)) != len(spec.strategies):
        raise ConfigError(f"learners[{i}].strategies lists a strategy twice", hint="list each once")
    return cls, config


def _strategy_choices(cls: type[Learner]) -> list[str]:
    from typing import get_args

    from fewforge.learners.strategies import REWEIGHT

    choices = list(get_args(cls.Config.model_fields["strategy"].annotation)) or ["paired"]
    # a learner whose loss takes no per-row weights cannot learn them
    return [s for s in choices if getattr(cls.Config, "reads_weights", True) or s not in REWEIGHT]


def _method(i: int, spec: Any, per_label: int) -> Any:
    from fewforge.synthesis import get_method

    if "per_label" in spec.options:
        raise ConfigError(
            f"methods[{i}].options.per_label: set the synthetic size at the grid level",
            hint="per_label: [100] (several values train on the first n per label of one set)",
        )
    try:
        return get_method(spec.name, {**spec.options, "per_label": per_label})
    except FewforgeError as exc:
        raise type(exc)(f"methods[{i}]: {exc.message}", hint=exc.hint) from None


def _curation(i: int, values: dict[str, Any], data: dict[str, TaskData], generator: Any) -> Any:
    """methods[i].curate validated (its auditor's options too) against the grid's tasks and generator."""
    from fewforge.synthesis.curation import AUDITORS, CurateConfig

    where = f"methods[{i}].curate"
    try:
        config = CurateConfig.model_validate(values)
    except ValidationError as exc:
        raise config_error(exc, CurateConfig, path=where) from None
    try:
        cls = AUDITORS.get(config.auditor)
    except ConfigError as exc:
        raise ConfigError(f"{where}.auditor: {exc.message}", hint=exc.hint) from None
    try:
        cls.Options.model_validate(config.options)
    except ValidationError as exc:
        raise config_error(exc, cls.Options, path=f"{where}.options") from None
    other = {name: d.task.kind for name, d in data.items() if not d.task.is_classification}
    if other:
        raise ConfigError(
            f"{where}: curation audits class labels, and "
            + ", ".join(f"{t} is a {k} task" for t, k in other.items()),
            hint=f"curate sets of classification tasks ({', '.join(kind_names(classification=True))}) only",
        )
    backend = getattr(generator, "backend", None)
    if cls.needs_adapters and generator is not None and not generator.supports_adapters:
        raise ConfigError(
            f"{where}: the {cls.name} auditor sends a LoRA teacher as an adapter, and the {backend} backend cannot "
            "load adapters",
            hint="use --generator hf:smollm2 (the packaged SmolLM2 through transformers) or hf:MODEL",
        )
    if cls.needs_scoring and generator is not None and not generator.supports_scoring:
        raise ConfigError(
            f"{where}: the {cls.name} auditor scores the verbalizers, and the {backend} backend cannot score",
            hint="use auditor: fewshot, or a generator that can score (smollm2, hf:MODEL)",
        )
    return config


def _generator(cfg: RunConfig) -> Any:
    from fewforge.generators import get_generator
    from fewforge.generators.policy import split_options

    try:
        return get_generator(cfg.generator, **split_options(cfg.generator_options)[0])
    except FewforgeError as exc:
        raise type(exc)(f"generator: {exc.message}", hint=exc.hint) from None


def _policy(cfg: RunConfig) -> Any:
    from fewforge.generators.policy import split_options

    return split_options(cfg.generator_options)[1]
