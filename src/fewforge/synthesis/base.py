"""The synthesis-method contract: `synthesize(ctx) -> SyntheticDataset`.

A method is one module holding a pydantic `Config` (with a `version`, bumped whenever the method's
output changes for the same config, so stale results are never reused) and a class implementing
`synthesize`. Register it in `fewforge/synthesis/__init__.py`.

A method gets everything through a `SynthesisContext` (DESIGN.md §3) and never reaches into the
pipeline: the task, the real few-shot train and dev sets, the unlabeled pool, the generator, the seed of
the split it serves, a work folder for its own intermediate stages, and a progress callback.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

from pydantic import BaseModel, ConfigDict

from fewforge.data.schema import Example
from fewforge.generators.base import Generator, SamplingParams
from fewforge.tasks.base import Task
from fewforge.tasks.kinds import kind_names

if TYPE_CHECKING:
    import datasets

    from fewforge.rundir import RunDir, Stage


# A field added to a method's config after sets were made with it: it enters the set's fingerprint only
# when it differs from its default, so those sets stay finished (`MethodConfig.identity`).
ADDED_LATER = {"fingerprint": "when set"}


def later_fields_at_default(model: BaseModel) -> set[str]:
    """The fields of `model` marked `ADDED_LATER` that hold their default: left out of fingerprints."""
    return {
        name
        for name, f in type(model).model_fields.items()
        if f.json_schema_extra == ADDED_LATER and getattr(model, name) == f.default
    }


class MethodConfig(BaseModel):
    """Base of every method's config: typos are errors, not silently ignored options."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = 1

    def identity(self) -> dict[str, Any]:
        """The config as it enters fingerprints: every field, except the ones marked `ADDED_LATER` while
        they hold their default."""
        return self.model_dump(mode="json", exclude=later_fields_at_default(self))


def sampling_params(
    config: MethodConfig,
    task: Task,
    seed: int,
    *,
    max_new_tokens: int | None = None,
    stop: tuple[str, ...] | None = None,
) -> SamplingParams:
    """The one place a method's config becomes SamplingParams: its temperature and whichever of top_p,
    top_k and repetition_penalty it has (SamplingParams' defaults otherwise); its own max_new_tokens and
    stop when set, else the caller's (a kind's answer limits), else the task kind's."""
    default = SamplingParams()
    own_stop = getattr(config, "stop", None)
    return SamplingParams(
        temperature=getattr(config, "temperature"),
        top_k=getattr(config, "top_k", default.top_k),
        top_p=getattr(config, "top_p", default.top_p),
        max_new_tokens=getattr(config, "max_new_tokens", None) or max_new_tokens or task.spec.max_new_tokens,
        stop=own_stop if own_stop is not None else stop if stop is not None else task.spec.stop,
        seed=seed,
        repetition_penalty=getattr(config, "repetition_penalty", default.repetition_penalty),
    )


@dataclass
class SynthesisContext:
    """What a method may use. `train`/`dev` are empty for a zero-shot method (`reads_fewshot = False`),
    whose one set per (task, seed) then serves every shots value of a grid. `pool` holds real inputs a
    method may condition on; its labels are not the method's to read."""

    task: Task
    generator: Generator
    seed: int  # the few-shot split seed: sampling seeds derive from it, so seeds differ in their data
    train: Sequence[Example] = ()
    dev: Sequence[Example] = ()
    pool: Sequence[Example] = ()
    workdir: Path | None = None  # the method's own folder for intermediate stages (tuned prompts, rounds)
    progress: Callable[[int, int], None] | None = None  # progress(done, total) over generated prompts
    # Trains a fresh student on real + synthetic rows and returns it fitted (S3's error extrapolation):
    # train_learner(train, dev, synthetic, learner_name, config_options) -> a fitted Learner.
    train_learner: Callable[..., Any] | None = None
    run: "RunDir | None" = None  # the run directory holding `workdir` (its _stale/ keeps retired inner stages)

    def stage(self, name: str, fingerprint: str, outputs: Sequence[str] = ()) -> "Stage":
        """A resumable inner stage `<workdir>/<name>` (tuned prompts, a search, a round): reused, retired
        to _stale/ and restored exactly like the run's own stages (rundir.py). Outside a run directory the
        work folder keeps its own _stale/."""
        from fewforge.rundir import RunDir

        if self.workdir is None:
            raise ValueError("an inner stage needs a work folder")  # a method bug: it checks workdir first
        workdir = Path(self.workdir)
        run = self.run if self.run is not None and workdir.is_relative_to(self.run.root) else RunDir(workdir)
        return run.stage(workdir / name, fingerprint, outputs=outputs)


@dataclass
class SyntheticDataset:
    examples: list[Example]
    # data card: counts per label, filters applied with drop counts and reasons, model, timing
    card: dict[str, Any] = field(default_factory=dict)
    dropped: list[dict[str, Any]] = field(default_factory=list)  # every filtered row, its reason and partner

    def label_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(e.label for e in self.examples).items()))

    def to_dataset(self) -> "datasets.Dataset":
        """The examples as a Hugging Face `datasets.Dataset` (inputs, label, id, lineage columns)."""
        from fewforge.data.hf_datasets import to_dataset

        return to_dataset(self.examples)

    def save(self, directory: Path, task: Task) -> Path:
        """Write data.jsonl, data.parquet, hf/ (datasets.save_to_disk), card.json, README.md (the dataset
        card) and dropped.jsonl into `directory`; returns the JSONL path."""
        from fewforge.data.hf_datasets import save_synthetic

        card = {**self.card, "count": len(self.examples), "per_label": self.label_counts()}
        return save_synthetic(Path(directory), task, self.examples, card, self.dropped)


@dataclass(frozen=True)
class RequestPlan:
    """The requests a method will send before it has seen any answer (its first round), exactly as it
    will send them: what `fewforge estimate` turns into cache keys, tokens and dollars."""

    prompts: list[str]
    params: SamplingParams
    positions: list[int]  # the seed position of each prompt


class SynthesisMethod(ABC):
    name: ClassVar[str]
    Config: ClassVar[type[MethodConfig]]
    # False for a method that never reads the real few-shot examples (ZeroGen): one set per (task, seed).
    reads_fewshot: ClassVar[bool] = True
    # True for a method that tunes the generator and sends what it tuned as `adapter=` (FewGen, DawGen):
    # the grid then refuses a backend that cannot load adapters before any work starts.
    needs_adapters: ClassVar[bool] = False
    citation: ClassVar[str] = ""  # BibTeX of the method's paper, for the dataset card
    kinds: ClassVar[tuple[str, ...]] = kind_names()  # task kinds it serves (every registered one)

    def __init__(self, config: MethodConfig | None = None) -> None:
        self.config = config if config is not None else self.Config()

    @abstractmethod
    def synthesize(self, ctx: SynthesisContext) -> SyntheticDataset:
        """Labeled synthetic examples for `ctx.task`, with a data card and the dropped rows."""

    def request_plan(self, ctx: SynthesisContext) -> RequestPlan | None:
        """The first round's requests when they can be known before any work (no tuning, no answers
        read); None otherwise, and the estimate then counts from the config."""
        return None
