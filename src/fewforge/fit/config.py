"""What a fit is asked to do: the resolved options, saved as the run directory's config.yaml."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Options a fit gives its default learner, chosen for what 2 CPU cores can afford: the estimate trains
# the learner 2 × folds × repeats + 1 times. SetFit at its own 20 pair iterations per row costs ~100
# optimizer steps per fold on 40 long BBC articles; 2 iterations keep a BBC fit under an hour on a shared
# 2-core machine (measured: README "Quickstart"). Options given with -O replace these.
FIT_LEARNER_DEFAULTS: dict[str, dict[str, Any]] = {"setfit": {"num_iterations": 2}}
# (which learner a fit trains when none is named is the task kind's `fit_learner`, tasks/kinds/)

# `auto` weighs ZeroGen against the real rows alone: the estimate reruns auto inside every fold (its choice
# never sees the fold's held-out rows), and ZeroGen reads no labeled row, so every fold's search and set
# come back from the generation cache while methods that read the rows (GoldGen, S3, DAFTT) generate anew
# per fold — on a shared 2-core machine a BBC GoldGen prompt (a whole article, ~600 tokens) took ~17 s, so
# a default fit with GoldGen ran for hours. -M candidates=[zerogen,goldgen,s3,daftt-generate] widens it.
FIT_METHOD_DEFAULTS: dict[str, dict[str, Any]] = {"auto": {"candidates": ["zerogen"], "search_per_label": 4}}


class FitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    examples: str = Field(description="the labeled examples file (CSV/TSV/JSONL/parquet) or a saved datasets folder")
    task: str | None = Field(None, description="a task file; default: inferred from the columns")
    description: str | None = Field(None, description='what one example is, for generation prompts ("product review")')
    unlabeled: str | None = Field(None, description="unlabeled inputs (DAFTT-annotate, S3's pool, pair premises)")
    generator: str = Field("smollm2", description="generator spec (see `fewforge run --help`)")
    generator_options: dict[str, Any] = Field(default_factory=dict, description="backend options")
    method: str = Field("auto", description="synthesis method, or none (real rows only)")
    method_options: dict[str, Any] = Field(default_factory=dict, description="options of the method")
    learner: str = Field(description="the learner of the estimate and of the final model")
    learner_options: dict[str, Any] = Field(default_factory=dict, description="options of the learner")
    # 16 per label: with SetFit's paired strategy the synthetic pairs match the real ones in number whatever the
    # set's size, so a bigger set buys variety, not weight, and costs generation in every fold
    budget: int = Field(16, ge=1, description="synthetic rows per label (QA and text-to-text: in all)")
    folds: int = Field(4, ge=2, description="k of the repeated k-fold estimate")
    repeats: int = Field(2, ge=1, description="repeats of the k-fold estimate (each with its own fold split)")
    seed: int = Field(13, description="seed of the folds, the synthesis and the learner")
