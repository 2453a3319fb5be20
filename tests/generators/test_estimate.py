"""`fewforge estimate` in process: ZeroGen's first round is counted from its own cache keys, so requests
already in the cache are exactly the ones not to send; prices and limits turn tokens into dollars and
hours; a method whose requests depend on tuning is counted from its config (≈)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI

from fewforge.config import RunConfig
from fewforge.errors import ConfigError
from fewforge.estimate import check_budget, estimate
from fewforge.generators import CachedGenerator
from fewforge.grid import plan_grid
from fewforge.rundir import RunDir
from fewforge.synthesis.base import SynthesisContext


def plan(data_dir: Path, url: str, **options):
    return plan_grid(RunConfig.build(
        tasks=["sst2", "rte"], data=str(data_dir), shots=[4], seeds=[13], per_label=[10],
        methods=["zerogen"], learners=["linear-probe"], generator=f"openai:fake@{url}",
        generator_options={"rpm": 600, "price": {"input": 1.0, "output": 4.0}, **options},
    ))


def test_cached_requests_are_counted_exactly(data_dir: Path, tmp_path: Path):
    with FakeOpenAI(cap=100) as srv:
        grid = plan(data_dir, srv.url)
        costs = estimate(grid, tmp_path)
        assert [c.requests for c in costs] == [22, 22] and all(c.exact and c.cached == 0 for c in costs)
        assert costs[0].output_max == 22 * 64 and costs[0].hours == pytest.approx(22 / 600 / 60)
        assert costs[0].usd_max == pytest.approx((costs[0].prompt_tokens * 1.0 + 22 * 64 * 4.0) / 1e6)

        key = grid.synthetic_sets[0]  # half of sst2's first round generated into the run's cache
        data = grid.data[key.task]
        requested = grid.method(key).request_plan(SynthesisContext(data.task, grid.generator, key.seed, pool=data.pool))
        cache = CachedGenerator(grid.generator, RunDir(tmp_path).cache_path)
        cache.generate(requested.prompts[:11], requested.params, start_index=requested.positions[:11])
        cache.close()
        assert srv.completions == 11
        after = estimate(grid, tmp_path)
        assert (after[0].cached, after[0].to_send) == (11, 11) and after[1].cached == 0
        assert after[0].output_mean is not None and after[0].usd_mean < after[0].usd_max


def test_budget_refuses_above_the_upper_bound_and_needs_prices(data_dir: Path, tmp_path: Path):
    grid = plan(data_dir, "http://127.0.0.1:9/v1", budget_usd=0.001)
    with pytest.raises(ConfigError, match="above budget_usd"):
        check_budget(estimate(grid, tmp_path), grid)
    roomy = plan(data_dir, "http://127.0.0.1:9/v1", budget_usd=100)
    check_budget(estimate(roomy, tmp_path), roomy)
    unpriced = plan_grid(RunConfig.build(
        tasks=["sst2"], data=str(data_dir), shots=[4], seeds=[13], per_label=[4], learners=["linear-probe"],
        generator="openai:fake@http://127.0.0.1:9/v1", generator_options={"budget_usd": 5},
    ))
    with pytest.raises(ConfigError, match="needs the token prices"):
        check_budget(estimate(unpriced, tmp_path), unpriced)


def test_a_tuned_method_is_counted_from_its_config(data_dir: Path, tmp_path: Path):
    grid = plan_grid(RunConfig.build(
        tasks=["sst2"], data=str(data_dir), shots=[4], seeds=[13], per_label=[10], learners=["linear-probe"],
        methods=[{"name": "goldgen"}], generator="openai:fake@http://127.0.0.1:9/v1",
    ))
    (cost,) = estimate(grid, tmp_path)
    config = grid.methods["goldgen"].config
    expected = math.ceil(config.per_label * getattr(config, "oversample", 1.0)) * 2
    assert not cost.exact and cost.requests == expected and not cost.tokens_exact
