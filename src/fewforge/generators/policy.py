"""What a run allows its generator, beside the backend's own options: how many requests may fail,
what tokens cost, and how much a run may spend.

Written in the grid's `generator_options` next to the backend's options (`rpm`, `concurrency`, ...), and
taken out before the backend is built; none of them changes what is generated, so none is in a cache
key or a fingerprint.

    generator_options:
      rpm: 500
      max_failed_fraction: 0.1
      price: {input: 0.15, output: 0.60}   # USD per million prompt / completion tokens
      budget_usd: 20                       # refuse to start a run estimated above it
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fewforge.generators.failures import DEFAULT_MAX_FAILED_FRACTION


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    input: float = Field(ge=0, description="USD per million prompt tokens")
    output: float = Field(ge=0, description="USD per million completion tokens")
    batch_discount: float = Field(
        0.5, gt=0, le=1, description="the Batch API's share of the online price (half at OpenAI)"
    )

    def usd(self, prompt_tokens: float, completion_tokens: float, batch: bool = False) -> float:
        cost = (prompt_tokens * self.input + completion_tokens * self.output) / 1e6
        return cost * (self.batch_discount if batch else 1.0)


class GenerationPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_failed_fraction: float = Field(
        DEFAULT_MAX_FAILED_FRACTION,
        ge=0,
        le=1,
        description="a synthetic set fails when more than this share of its requests failed for good",
    )
    price: Price | None = Field(None, description="token prices, for estimates and the spend in the report")
    budget_usd: float | None = Field(None, gt=0, description="refuse to start when the estimate is above it")


POLICY_KEYS = frozenset(GenerationPolicy.model_fields)


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], GenerationPolicy]:
    """(the backend's options, the run's generation policy) from a grid's generator_options."""
    from fewforge.config import config_error

    backend = {k: v for k, v in options.items() if k not in POLICY_KEYS}
    try:
        policy = GenerationPolicy(**{k: v for k, v in options.items() if k in POLICY_KEYS})
    except ValidationError as exc:
        raise config_error(exc, GenerationPolicy, path="generator_options") from None
    return backend, policy
