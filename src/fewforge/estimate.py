"""What a grid's generation will cost before it runs: `fewforge estimate GRID` and `fewforge run --dry-run`.

Per synthetic set: the requests its method sends (exact for a method whose first round is known before
any work — ZeroGen: its cache keys are computed and looked up, so a finished run shows 0 to send —
otherwise counted from the config and marked ≈), prompt tokens (the backend's tokenizer where one is at
hand, else ~4 characters a token, ≈), output tokens (the max_new_tokens bound, and the mean length of the
cached completions of the same model when there are some), dollars from the grid's prices
(`generator_options.price`, halved for the Batch API) and hours at the configured limits (`rpm`, `tpm`).
Top-up rounds, tuning and auditors' scoring come on top of what is counted: the table says "first round".
A set that is already finished costs nothing. `budget_usd` refuses to start a run above the upper bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fewforge.errors import ConfigError
from fewforge.grid import Plan
from fewforge.rundir import RunDir


@dataclass
class SetCost:
    name: str
    finished: bool = False
    requests: int = 0  # candidates asked for in the first round
    cached: int = 0  # of those, already in the cache
    exact: bool = True  # requests (and cached) from the method's own plan and the cache keys
    prompt_tokens: int = 0  # of the requests still to send
    tokens_exact: bool = True
    output_max: int = 0
    output_mean: float | None = None
    usd_max: float | None = None
    usd_mean: float | None = None
    hours: float | None = None

    @property
    def to_send(self) -> int:
        return self.requests - self.cached


def estimate(plan: Plan, output: Path) -> list[SetCost]:
    """The cost of every synthetic set of `plan` in the run directory `output` (read-only: it works
    beside a running grid, and on a directory that does not exist yet)."""
    from fewforge.generators.cache import cached_keys, mean_completion_tokens, request_keys
    from fewforge.set_plan import set_fingerprint, set_method, split_fingerprint
    from fewforge.synthesis.base import SynthesisContext

    run, generator = RunDir(output), plan.generator
    if generator is None:
        return []
    mean = mean_completion_tokens(run.cache_path, generator.model_id)
    costs = []
    for key in plan.synthetic_sets:
        data = plan.data[key.task]
        directory = run.synthetic_dir(key.task, key.seed, key.method, key.shots)
        cost = SetCost(str(directory.relative_to(run.root)))
        split_fp = split_fingerprint(data, key.shots, key.seed) if key.shots is not None else None
        if run.done_fingerprint(directory) == set_fingerprint(plan, key, split_fp, generator):
            cost.finished = True
            costs.append(cost)
            continue
        method, _, _ = set_method(plan, key)
        requested = method.request_plan(SynthesisContext(task=data.task, generator=generator, seed=key.seed, pool=data.pool))
        if requested is not None:
            keys = request_keys(generator, requested.prompts, requested.params, requested.positions)
            found = cached_keys(run.cache_path, [k for row in keys for k in row])
            to_send = [p for p, row in zip(requested.prompts, keys) for k in row if k not in found]
            cost.requests = sum(len(row) for row in keys)
            cost.cached = cost.requests - len(to_send)
            max_new = requested.params.max_new_tokens
        else:
            cost.exact = False
            cost.requests = _config_requests(method, len(data.task.groups))
            to_send = [_sample_prompt(data.task)] * cost.requests
            max_new = getattr(method.config, "max_new_tokens", None) or data.task.spec.max_new_tokens
        cost.prompt_tokens, cost.tokens_exact = _prompt_tokens(generator, to_send)
        cost.tokens_exact = cost.tokens_exact and cost.exact
        cost.output_max = max_new * cost.to_send
        cost.output_mean = mean * cost.to_send if mean is not None else None
        _price(cost, plan, generator)
        costs.append(cost)
    return costs


def _config_requests(method: Any, n_groups: int) -> int:
    config = method.config
    per_label = getattr(config, "per_label", 0)
    return math.ceil(per_label * getattr(config, "oversample", 1.0)) * n_groups


def _sample_prompt(task: Any) -> str:
    try:
        return task.generation_prompt(task.groups[0], None)
    except Exception:  # noqa: BLE001 - a kind that needs a row to condition on: a typical length
        return "x" * 256


def _prompt_tokens(generator: Any, prompts: list[str]) -> tuple[int, bool]:
    """(tokens of `prompts`, whether counted by the model's tokenizer)."""
    if not prompts:
        return 0, True
    distinct = list(dict.fromkeys(prompts))
    counted = generator.count_tokens(distinct)
    if counted is None:
        sizes = {p: len(p) // 4 + 8 for p in distinct}  # + the chat template's few tokens
        return sum(sizes[p] for p in prompts), False
    sizes = dict(zip(distinct, counted))
    return sum(sizes[p] for p in prompts), True


def _price(cost: SetCost, plan: Plan, generator: Any) -> None:
    policy = plan.policy
    batch = bool(getattr(generator, "is_batch", False))
    if policy is not None and policy.price is not None:
        cost.usd_max = policy.price.usd(cost.prompt_tokens, cost.output_max, batch)
        if cost.output_mean is not None:
            cost.usd_mean = policy.price.usd(cost.prompt_tokens, cost.output_mean, batch)
    limits = generator.limits() if hasattr(generator, "limits") and not batch else None
    if limits and cost.to_send:
        minutes = []
        rpm = [r for r in limits["rpm"] if r]
        tpm = [t for t in limits["tpm"] if t]
        if rpm and len(rpm) == limits["servers"]:
            minutes.append(cost.to_send / sum(rpm))
        if tpm and len(tpm) == limits["servers"]:
            minutes.append((cost.prompt_tokens + cost.output_max) / sum(tpm))
        cost.hours = max(minutes) / 60 if minutes else None


def check_budget(costs: list[SetCost], plan: Plan) -> None:
    """Refuse a run whose upper-bound estimate is above `generator_options.budget_usd`."""
    policy = plan.policy
    if policy is None or policy.budget_usd is None:
        return
    if policy.price is None:
        raise ConfigError(
            "generator_options.budget_usd needs the token prices to check it against",
            hint="add generator_options.price: {input: USD per 1M prompt tokens, output: USD per 1M completion tokens}",
        )
    total = sum(c.usd_max or 0.0 for c in costs)
    if total > policy.budget_usd:
        raise ConfigError(
            f"the estimated cost of this run is up to {_usd(total)}, above budget_usd {_usd(policy.budget_usd)}",
            hint="`fewforge estimate GRID` shows it per set; raise budget_usd, or lower per_label or max_new_tokens",
        )


def _usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def _n(value: float | None, exact: bool = True, money: bool = False) -> str:
    if value is None:
        return "—"
    text = _usd(value) if money else f"{value:,.0f}"
    return text if exact else f"≈{text}"


def render(costs: list[SetCost], plan: Plan, console: Console) -> None:
    """The estimate as one table, a row per set and a total."""
    from fewforge.generators.urls import redact_text

    batch = bool(getattr(plan.generator, "is_batch", False))
    table = Table(title=f"generation estimate ({redact_text(plan.cfg.generator)}; first round of each set)")
    for column in ("synthetic set", "requests", "cached", "to send", "prompt tokens", "output tokens ≤",
                   "output tokens (mean)", "USD ≤", "USD (mean)", "hours"):
        table.add_column(column, justify="left" if column == "synthetic set" else "right")
    for c in costs:
        if c.finished:
            table.add_row(c.name, "finished", "", "0", "", "", "", "", "", "")
            continue
        table.add_row(
            c.name, _n(c.requests, c.exact), _n(c.cached, c.exact), _n(c.to_send, c.exact),
            _n(c.prompt_tokens, c.tokens_exact), _n(c.output_max, c.exact), _n(c.output_mean, False),
            _n(c.usd_max, c.tokens_exact, True), _n(c.usd_mean, False, True),
            ("≤ 24 h (Batch API)" if batch and c.to_send else f"{c.hours:.2f}" if c.hours is not None else "—"),
        )
    open_ = [c for c in costs if not c.finished]
    exact = all(c.exact for c in open_)
    usd = [c.usd_max for c in open_ if c.usd_max is not None]
    table.add_row(
        "total", _n(sum(c.requests for c in open_), exact), _n(sum(c.cached for c in open_), exact),
        _n(sum(c.to_send for c in open_), exact), _n(sum(c.prompt_tokens for c in open_), all(c.tokens_exact for c in open_)),
        _n(sum(c.output_max for c in open_), exact), "", _n(sum(usd), exact, True) if usd else "—", "", "",
        style="bold",
    )
    console.print(table)
    if any(not c.exact for c in open_):
        console.print("≈: counted from the method's config (its requests depend on tuning or on answers)", highlight=False)
    if plan.policy is None or plan.policy.price is None:
        console.print("no prices: add generator_options.price {input, output} (USD per 1M tokens) for dollars",
                      highlight=False)


def totals(costs: list[SetCost]) -> dict[str, Any]:
    open_ = [c for c in costs if not c.finished]
    return {
        "sets": len(costs),
        "finished": len(costs) - len(open_),
        "requests": sum(c.requests for c in open_),
        "to_send": sum(c.to_send for c in open_),
    }

