"""FewGen (Meng et al. 2023) and DawGen (DawGen §3.1-3.2) as synthesis methods: tune one soft prompt per
label on the real few-shot examples, then sample from the frozen generator under each label's prompt.

The soft prompt Q_l stands in for the instruction part of the task's generation prompt, as the generator
reads it (chat template included): Q_l starts as that text — its token embeddings, or for prefixes its
keys and values — so an untuned Q_l writes what ZeroGen writes. The rest of the prompt is each request's
context: for single-input tasks the prompt's last word or template line (e.g. the chat template's
assistant turn), for pair tasks the first sentence and what follows it. Tuning teaches Q_l to continue
that context with the real examples of label l (`tune.py`: lm, FewGen's weighted loss, or DawGen's).

Tuning is a resumable stage of its own (`tuned-prompts/` in the method's work folder, through
`RunDir.stage`): its fingerprint covers everything that shapes the prompts (model, rows, config, seed), a
rerun with the same fingerprint reuses them, and other prompts are retired to _stale/ and come back when
their fingerprint returns. Generation then runs ZeroGen's loop (top-ups, post-processing, per-example lineage),
one request batch per label with that label's prompt sent as the generator's `adapter=`; the adapter's
content hash is in every cache key and in every row's lineage.

Decoding: nucleus sampling (DawGen L67: stochastic decoding; ZeroGen's top_p 0.9, temperature 0.9) by
default; `decoding: fewgen` is FewGen's released setting (PROTOCOLS §4): temperature 0.5, top-k 10 for
single-input tasks, greedy for pairs (each with its own first sentence from the pool), at most 50 new
tokens, FewGen's repetition penalty per label (decoding.py: SST-2 1.1 for each label, RTE not_entailment
1.5; `label_repetition_penalty` overrides it) and, for single-input tasks, one neutral start word per row
(FewGen's SST-2 list: "a", "one", "the", ...; the row is the word and what the generator wrote after it).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Sequence

from pydantic import Field, field_validator

from fewforge.data.schema import Example
from fewforge.errors import ConfigError, DataError
from fewforge.files import read_json, write_json
from fewforge.fingerprint import derive_seed, file_digest, fingerprint
from fewforge.generators.base import AdapterRequest, Completion, Generator, SamplingParams, TrainableLM
from fewforge.generators.soft_prompts import Placement
from fewforge.hf import second_order_attention
from fewforge.learners.causal_lm import eos_id
from fewforge.synthesis.base import SynthesisContext, SyntheticDataset
from fewforge.synthesis.fewgen import decoding
from fewforge.synthesis.fewgen.audit import GuardAudit, probe_method
from fewforge.synthesis.fewgen.tune import TuningConfig, TuningRow, anchor_positions, step_diagnostics
from fewforge.synthesis.postprocess import Draft
from fewforge.synthesis.zerogen import ZeroGen, ZeroGenConfig
from fewforge.tasks.base import Task
from fewforge.tasks.kinds import kind_names

TUNED_PROMPTS = "tuned-prompts"  # the tuning stage's folder in the work folder
log = logging.getLogger(__name__)

TUNING_VERSION = 2  # bump when tuning changes what it produces for the same inputs
# Stands for a pair task's first sentence while locating where the per-request context starts.
_FIRST_SENTENCE = "\u2063FEWFORGE-FIRST-SENTENCE\u2063"


# The guard a method's tuning uses unless its options name one (beyond the papers): keep the epoch, the untuned
# prompts included, whose sampled rows the few-shot auditor labels as intended best, scored by the weakest
# label. On SST-2 (seeds 13, 21, 42) it matched ZeroGen downstream where the dev guard (the default before)
# lost 6-8 points on seed 13 (docs/results/generator-tuning-guard-audit-seeds.md). A `Tuner` alone has no
# sampler to audit with, so `TuningConfig`'s own default stays the dev guard.
METHOD_GUARD = {"guard": "audit", "guard_audit": "worst_label"}


class FewGenConfig(ZeroGenConfig):
    version: int = 1
    tuning: TuningConfig = Field(
        default_factory=dict,  # filled by `_method_tuning` (validate_default): the method's loss and guard
        validate_default=True,
        description="generator tuning (loss, epochs, batch size, learning rates: the paper's defaults; the "
        "guard: audit scored by the worst label unless `guard` is given)",
    )
    placement: Placement = Field("prefix", description="prefix: every layer's keys/values (the paper's); prompt: input embeddings")
    decoding: Literal["sample", "fewgen"] = Field(
        "sample", description="sample: the sampling options below; fewgen: FewGen's released decoding (PROTOCOLS §4)"
    )
    label_repetition_penalty: dict[str, float] = Field(
        default_factory=dict, description="per-label repetition penalty; unset labels under decoding: fewgen "
        "take FewGen's (SST-2: 1.1 each, RTE: not_entailment 1.5; decoding.py)",
    )
    start_words: list[str] | None = Field(
        None, description="under decoding: fewgen, single-input rows start with one of these words, drawn per "
        "row (default: FewGen's SST-2 list, 'a', 'one', 'the', ...; [] for none)",
    )

    default_loss: ClassVar[str] = "weighted"

    @field_validator("tuning", mode="before")
    @classmethod
    def _method_tuning(cls, value: Any) -> Any:
        """`tuning: {epochs: 2}` keeps the method's own loss (FewGen: weighted, DawGen: dawgen) and guard
        (METHOD_GUARD); `guard: audit` alone is scored by the worst label too."""
        if not isinstance(value, dict):
            return value
        out = {"loss": cls.default_loss, "guard": METHOD_GUARD["guard"], **value}
        if out["guard"] == "audit":
            out.setdefault("guard_audit", METHOD_GUARD["guard_audit"])
        return out


class DawGenConfig(FewGenConfig):
    default_loss: ClassVar[str] = "dawgen"


FEWGEN_CITATION = """@inproceedings{meng2023tuning,
  title = {Tuning Language Models as Training Data Generators for Augmentation-Enhanced Few-Shot Learning},
  author = {Meng, Yu and Michalski, Martin and Huang, Jiaxin and Zhang, Yu and Abdelzaher, Tarek and Han, Jiawei},
  booktitle = {Proceedings of ICML},
  year = {2023}
}"""

DAWGEN_CITATION = """@article{dawgen2024,
  title = {Distribution-Aligned Generation and Gradient Surgery for Few-Shot Learning with Synthetic Data},
  journal = {arXiv preprint arXiv:2410.10865},
  year = {2024}
}"""


@dataclass
class _Tuned:
    """What one `synthesize` call tuned, for the generation hooks."""

    lm: TrainableLM
    heads: dict[str, str]  # label -> the rendered prompt text its soft prompt replaces
    adapters: dict[str, AdapterRequest]  # label -> its prompt in the tuned file
    params: dict[str, SamplingParams] = field(default_factory=dict)  # label -> its sampling
    start_words: tuple[str, ...] = ()  # FewGen's neutral start words (decoding: fewgen, single input)
    seed: int = 0  # the sampling seed the start words are drawn from


class FewGen(ZeroGen):
    name = "fewgen"
    Config = FewGenConfig
    config: FewGenConfig
    reads_fewshot = True
    needs_adapters = True
    kinds = kind_names(classification=True)  # one soft prompt per label
    citation = FEWGEN_CITATION

    def sampling_params(self, task: Task, split_seed: int = 0) -> SamplingParams:
        params = super().sampling_params(task, split_seed)
        if self.config.decoding == "fewgen":
            temperature = 0.0 if task.given_fields else 0.5  # greedy when conditioned on a real first sentence
            params = dataclasses.replace(params, temperature=temperature, top_k=10, top_p=1.0, max_new_tokens=50)
        return params

    def synthesize(self, ctx: SynthesisContext) -> SyntheticDataset:
        task, c = ctx.task, self.config
        if not task.is_classification:
            raise ConfigError(
                f"{self.name} tunes one soft prompt per label; task {task.name!r} ({task.kind}) has no labels",
                hint="use zerogen for extractive-qa and text-to-text tasks",
            )
        unknown = sorted(set(c.label_repetition_penalty) - set(task.label_names))
        if unknown:
            raise ConfigError(f"label_repetition_penalty names unknown labels {unknown}", hint=f"labels are {task.label_names}")
        if not ctx.train:
            raise DataError(f"{self.name} tunes the generator on the real few-shot examples, and there are none")
        ctx.generator.check_adapter(AdapterRequest(self.name, ""))  # the backend's own error if it cannot
        lm = ctx.generator.trainable()
        heads = {label: self._head(task, label, lm) for label in task.label_names}
        rows = [self._row(task, e, lm, heads) for e in ctx.train]
        dev_rows = [self._row(task, e, lm, heads) for e in ctx.dev if e.label in heads]
        path, summary = self._tune(ctx, lm, heads, rows, dev_rows)
        dataset = self._sample(ctx, lm, heads, path)
        dataset.card.update(
            tuning=summary,
            adapter={"path": str(path), "sha256": file_digest(path)},
            natural_prompts=heads,
            citation=self.citation,
        )
        return dataset

    def _sample(self, ctx: SynthesisContext, lm: TrainableLM, heads: dict[str, str], path: Path) -> SyntheticDataset:
        """ZeroGen's loop under the label prompts in `path`: the final set, and (from a probe copy of this
        method, audit.py) the rows `guard: audit` judges each epoch by."""
        task = ctx.task
        base = self.sampling_params(task, ctx.seed)
        self._tuned = _Tuned(
            lm,
            heads,
            {label: AdapterRequest(f"{self.name}:{task.name}", str(path), label=k) for k, label in enumerate(task.label_names)},
            {label: dataclasses.replace(base, repetition_penalty=self._repetition_penalty(task, label, base))
             for label in task.label_names},
            self._start_words(task),
            base.seed,
        )
        try:
            return super().synthesize(ctx)
        finally:
            del self._tuned

    def _repetition_penalty(self, task: Task, label: str, base: SamplingParams) -> float:
        if label in self.config.label_repetition_penalty:
            return self.config.label_repetition_penalty[label]
        return decoding.repetition_penalty(task, label) if self.config.decoding == "fewgen" else base.repetition_penalty

    def _start_words(self, task: Task) -> tuple[str, ...]:
        if self.config.decoding != "fewgen" or task.given_fields:
            return ()
        return tuple(decoding.START_WORDS if self.config.start_words is None else self.config.start_words)

    def _word(self, index: int) -> str:
        words = self._tuned.start_words
        return decoding.start_word(words, self._tuned.seed, index) if words else ""

    def _draft(self, index: int, *args: Any, **kwargs: Any) -> Draft:
        """ZeroGen's draft; under FewGen's start words the row is the start word and what followed it."""
        draft = super()._draft(index, *args, **kwargs)
        word = self._word(index)
        if not word:
            return draft
        return dataclasses.replace(draft, text=word + draft.text, lineage={**draft.lineage, "start_word": word})

    # -- where the soft prompt ends and a request's context begins ----------------------------------
    def _head(self, task: Task, label: str, lm: TrainableLM) -> str:
        """The rendered prompt text that label's soft prompt replaces: everything before a pair's first
        sentence, or before a single prompt's last word / template line. Spaces stay with the context,
        so the context's first word is tokenised as in running text."""
        if task.given_fields:
            inputs = {f: _FIRST_SENTENCE if f in task.given_fields else "" for f in task.input_fields}
            rendered = lm.render(task.generation_prompt(label, Example(inputs, label)))
            cut = rendered.find(_FIRST_SENTENCE)
        else:
            rendered = lm.render(task.generation_prompt(label))
            body = rendered.rstrip()
            cut = max(body.rfind("\n"), body.rfind(" "))
        head = rendered[: max(cut, 0)].rstrip(" ")
        if not head.strip():
            raise ConfigError(
                f"task {task.name!r}: the generation prompt of {label!r} has no instruction before its "
                f"{'first sentence' if task.given_fields else 'last word'} for a soft prompt to start from",
                hint="write the task's generation template with an instruction first",
            )
        return head

    def _context(self, task: Task, label: str, parent: Example | None, lm: TrainableLM, heads: dict[str, str]) -> str:
        rendered = lm.render(task.generation_prompt(label, parent))
        if not rendered.startswith(heads[label]):  # the template put sentence text before the instruction
            raise ConfigError(f"task {task.name!r}: the generation prompt of {label!r} does not start with its instruction")
        return rendered[len(heads[label]) :]

    def _prompt(self, task: Task, label: str, parent: Example | None) -> str:
        return self._context(task, label, parent, self._tuned.lm, self._tuned.heads)

    def _row(self, task: Task, example: Example, lm: TrainableLM, heads: dict[str, str]) -> TuningRow:
        """A real example as the generator should write it: its request context, then its text (the
        field the generator writes), then the model's end-of-sequence token."""
        context = self._context(task, example.label, example if task.given_fields else None, lm, heads)
        target = example.inputs[task.generated_fields[0]].strip()
        if context and not context[-1].isspace():
            target = " " + target
        context_ids = lm.encode(context, False)
        limit = self.sampling_params(task).max_new_tokens
        target_ids = lm.encode(target, False)[: limit - 1] + [eos_id(lm.model, lm.tokenizer)]
        return TuningRow(tuple(context_ids + target_ids), len(context_ids), task.label_names.index(example.label))

    # -- tuning: a stage of its own ------------------------------------------------------------------
    def _tune(
        self,
        ctx: SynthesisContext,
        lm: TrainableLM,
        heads: dict[str, str],
        rows: Sequence[TuningRow],
        dev_rows: Sequence[TuningRow] = (),
    ) -> tuple[Path, dict[str, Any]]:
        """The tuned prompts' file and a summary; reused when the same tuning already finished. The dev
        rows are the guard's (guard.py): the prompts saved are the best epoch's on them."""
        from fewforge.generators.soft_prompts import LabelPrompts
        from fewforge.synthesis.fewgen.tune import Tuner

        c, generator = self.config, ctx.generator
        head_ids = [lm.encode(heads[label], True) for label in ctx.task.label_names]
        seed = derive_seed(ctx.seed, c.seed, "tune")
        key = fingerprint(
            {
                "v": TUNING_VERSION,
                "model": generator.model_id,
                "options": generator.output_options(),
                "tuning": c.tuning.model_dump(mode="json"),
                "placement": c.placement,
                "heads": head_ids,
                "rows": [[list(r.ids), r.target_start, r.label] for r in rows],
                "dev_rows": [[list(r.ids), r.target_start, r.label] for r in dev_rows],
                "seed": seed,
                **self._audit_identity(ctx),
            }
        )[:16]
        if ctx.workdir is None:  # a library call without a work folder: tune into a temporary one
            ctx = dataclasses.replace(ctx, workdir=Path(tempfile.mkdtemp(prefix="fewforge-tune-")))
        stage = ctx.stage(TUNED_PROMPTS, key, outputs=("prompts.safetensors", "summary.json"))
        path, summary_path = stage.path / "prompts.safetensors", stage.path / "summary.json"
        if stage.done:
            log.info("%s: reusing the tuned prompts in %s", self.name, path)
            return path, {**read_json(summary_path), "reused": True}

        started = time.perf_counter()
        audit = None
        if c.tuning.guard == "audit":  # samples under the model's own attention, not the meta step's eager one
            probe = probe_method(self)
            attention = getattr(lm.model.config, "_attn_implementation", None)
            # the epochs' prompt files wait outside the stage folder, which `with stage` below starts afresh
            folder = Path(tempfile.mkdtemp(prefix="fewforge-guard-"))
            audit = GuardAudit(ctx, lambda p, x: probe._sample(x, lm, heads, p), folder, attention, lm.model)
        with second_order_attention(lm.model, c.tuning.loss != "lm"):  # FewGen's meta step
            prompts = LabelPrompts.from_natural_prompts(lm.model, head_ids, c.placement)
            pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
            tuner = Tuner(prompts, c.tuning, seed=seed, pad_id=pad, frozen_positions=self._anchor(head_ids, prompts.n_tokens))
            history = tuner.fit(rows, _tuning_progress(ctx.progress, self.name), dev=dev_rows, audit=audit)
        guard = tuner.guard.summary()
        log.info("%s: kept %s", self.name, guard["why"])
        summary = {
            "loss": c.tuning.loss,
            "placement": c.placement,
            "prompt_tokens": prompts.n_tokens,
            "anchored_tokens": self._anchor(head_ids, prompts.n_tokens),
            "rows": len(rows),
            "steps": len(history),
            "seed": seed,
            "wall_time_s": round(time.perf_counter() - started, 1),
            "first_step": history[0],
            "last_epoch_mean_loss": _mean_loss(history, -(-len(rows) // c.tuning.batch_size)),
            "guard": guard,
            "diagnostics": step_diagnostics(history),
            "file": f"{TUNED_PROMPTS}/{path.name}",  # relative to the work folder
        }
        with stage:  # finished (done.json) only once both files are written
            prompts.save(path)
            write_json(summary_path, {**summary, "history": history})
            if audit is not None:  # each epoch's prompts as the guard sampled them, for a reader to resample
                shutil.move(str(audit.folder), stage.path / "guard")
        return path, {**summary, "reused": False}

    def _audit_identity(self, ctx: SynthesisContext) -> dict[str, Any]:
        """What else shapes the prompts kept under `guard: audit` (the rows it samples and how they are
        filtered); nothing for the other criteria, so their tunings keep their fingerprints."""
        if self.config.tuning.guard != "audit":
            return {}
        probe = probe_method(self)
        sampling = probe.sampling_params(ctx.task, ctx.seed).to_dict()
        keep = {"per_label", "oversample", "max_rounds", "decoding", "label_repetition_penalty", "start_words", "postprocess"}
        return {"audit": {"auditor": "fewshot", "sampling": sampling, **probe.config.model_dump(mode="json", include=keep)}}

    def _anchor(self, head_ids: Sequence[Sequence[int]], n_tokens: int) -> int:
        """The leading prompt positions the label anchor freezes (`anchor: label`): FewGen keeps its label
        control code fixed and tunes what follows it; here the rendered head up to its label word."""
        if self.config.tuning.anchor == "none":
            return 0
        frozen = anchor_positions(head_ids)
        if frozen >= n_tokens:
            raise ConfigError(
                f"{self.name}: the labels' prompts differ in their last position, so anchoring the label "
                "word leaves no prompt position to tune",
                hint="end the task's generation instruction after the label word, or set tuning: {anchor: none}",
            )
        return frozen

    # -- generation: one batch of requests per label, each with its label's prompt -----------------
    def _generate(
        self,
        generator: Generator,
        plan: Sequence[tuple[int, int]],
        prompts: list[str],
        params: SamplingParams,
        where: list[int],
        progress: Callable[[int], None],
    ) -> list[Completion]:
        out: list[Completion | None] = [None] * len(prompts)
        labels = list(self._tuned.adapters)
        for k, label in enumerate(labels):
            rows = [i for i, (_, label_index) in enumerate(plan) if label_index == k]
            if not rows:
                continue
            completions = generator.generate(
                [prompts[i] + self._word(where[i]) for i in rows],  # the start word opens the row
                self._tuned.params[label],
                start_index=[where[i] for i in rows],
                progress=progress,
                adapter=self._tuned.adapters[label],
            )
            for i, completion in zip(rows, completions, strict=True):
                out[i] = completion
        return [c for c in out if c is not None]

    def _lineage(self, label: str) -> dict:
        return {"adapter": self._tuned.adapters[label].to_dict(), "sampling": self._tuned.params[label].to_dict()}


class DawGen(FewGen):
    name = "dawgen"
    Config = DawGenConfig
    config: DawGenConfig
    citation = DAWGEN_CITATION


def _mean_loss(history: list[dict], last: int) -> float:
    tail = history[-last:]
    return round(sum(h["loss"] for h in tail) / max(len(tail), 1), 4)


def _tuning_progress(progress: Callable[[int, int], None] | None, name: str) -> Callable[[int, int], None]:
    def update(done: int, total: int) -> None:
        if progress is not None:
            progress(done, total)
        if done == total or done % max(total // 10, 1) == 0:
            log.info("%s: tuning step %d/%d", name, done, total)

    return update
