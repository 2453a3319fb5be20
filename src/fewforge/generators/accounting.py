"""A synthetic set's dealings with its generator, written once for every place that makes a set (a grid's
synthesis stage, `fewforge fit`): the failure budget around the method, and what the set cost.

    before = generator.stats()
    dataset = within_failure_budget(generator, directory / "failures.jsonl", policy, lambda: method.synthesize(ctx))
    dataset.card.update(costs(generator, before, policy))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, TypeVar

from fewforge.generators.failures import DEFAULT_MAX_FAILED_FRACTION, FailureLedger

T = TypeVar("T")


def within_failure_budget(generator: Any, failures: Path, policy: Any, synthesize: Callable[[], T]) -> T:
    """Run `synthesize` with a fresh failure ledger on the (cached) generator: requests that fail for good
    are listed in `failures` (also when too many stop the set early), and more than the policy's
    `max_failed_fraction` of them fails the set with one line."""
    fraction = getattr(policy, "max_failed_fraction", DEFAULT_MAX_FAILED_FRACTION)
    generator.ledger = ledger = FailureLedger(fraction)
    try:
        result = synthesize()
    finally:
        ledger.write(failures)
    ledger.check()
    return result


def costs(generator: Any, before: dict[str, Any], policy: Any) -> dict[str, Any]:
    """The card's `cache` (hits and misses), `spend` (requests, failures, tokens the engine answered, and
    dollars when the grid gives prices; cache hits are free) and `failures` of one set."""
    counts = generator.stats(since=before)
    spend: dict[str, Any] = dict(counts["usage"])
    price = getattr(policy, "price", None)
    if price is not None:
        batch = bool(getattr(getattr(generator, "inner", generator), "is_batch", False))
        spend["usd"] = round(price.usd(spend["prompt_tokens"], spend["completion_tokens"], batch), 6)
    return {"cache": counts, "spend": spend, "failures": generator.ledger.summary()}
