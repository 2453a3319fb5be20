"""Batch plans: which rows each strategy visits, in which order, and the shared step budget."""

from __future__ import annotations

from collections import Counter

import pytest

from fewforge.errors import ConfigError, DataError
from fewforge.learners.strategies import GROUP_BATCHES, STRATEGIES, index_stream, plan, step_budget


def test_registered_strategies():
    assert {"real", "syn", "real+syn", "paired"} <= set(STRATEGIES.names())
    with pytest.raises(ConfigError, match="unknown strategy 'mixed'"):
        plan("mixed", 8, 8, 4, 2, seed=0)


def test_step_budget_counts_real_rows_only():
    # tiny sets get min_steps, mid-size ones `epochs` passes, big ones max_steps
    assert step_budget(32, 16, 10, 64, 160) == 64
    assert step_budget(200, 16, 10, 64, 160) == 125  # ceil(10 * 200 / 16)
    assert step_budget(10_000, 16, 10, 64, 160) == 160


def test_paired_keeps_the_real_batches_of_real_only():
    """Adding synthetic data never means seeing the real rows less: the real half of every paired step
    is exactly the batch real-only training takes at that step, however big the synthetic set."""
    real_only = plan("real", 20, 0, 30, 4, seed=7)
    paired = plan("paired", 20, 5000, 30, 4, seed=7)
    assert [b.real for b in paired] == [b.real for b in real_only]
    assert all(len(b.real) == 4 and len(b.syn) == 4 for b in paired)
    assert all(not b.syn for b in real_only)
    seen = Counter(i for b in paired for i in b.real)
    assert set(seen) == set(range(20)) and set(seen.values()) == {6}  # 30 steps * 4 / 20 rows: 6 passes
    assert len({i for b in paired for i in b.syn}) == 120  # synthetic rows drawn without repeats


def test_union_dilutes_the_real_rows():
    union = plan("real+syn", 20, 380, 50, 8, seed=1)
    real_seen = sum(len(b.real) for b in union)
    assert all(len(b.real) + len(b.syn) == 8 for b in union)
    assert real_seen < 0.15 * 50 * 8  # ~5 % of 400 visits, vs 100 % in real-only / paired
    assert all(0 <= i < 380 for b in union for i in b.syn)


def test_syn_only_and_fallbacks():
    syn = plan("syn", 10, 30, 12, 5, seed=2)
    assert all(not b.real and len(b.syn) == 5 for b in syn)
    # a mixing strategy given no synthetic rows trains on the real rows alone
    assert plan("paired", 10, 0, 12, 5, seed=2) == plan("real", 10, 0, 12, 5, seed=2)
    with pytest.raises(DataError, match="strategy 'syn' needs synthetic rows"):
        plan("syn", 10, 0, 12, 5, seed=2)
    with pytest.raises(DataError, match="needs real training rows"):
        plan("paired", 0, 10, 12, 5, seed=2)


def test_plans_are_deterministic_per_seed():
    assert plan("paired", 30, 90, 20, 8, seed=3) == plan("paired", 30, 90, 20, 8, seed=3)
    assert plan("paired", 30, 90, 20, 8, seed=3) != plan("paired", 30, 90, 20, 8, seed=4)


def test_length_grouping_still_covers_every_row():
    import torch

    lengths = [128] * 16 + [40] * 112  # few long real rows among many short synthetic ones
    take = lambda stream: [next(stream) for _ in range(GROUP_BATCHES)]  # noqa: E731 - one window = one epoch here
    grouped = take(index_stream(128, 8, torch.Generator().manual_seed(3), lengths))
    plain = take(index_stream(128, 8, torch.Generator().manual_seed(3)))
    for batches in (grouped, plain):
        assert all(len(b) == 8 for b in batches)
        assert sorted(i for b in batches for i in b) == list(range(128))  # one epoch, each row once
    padded = lambda batches: sum(8 * max(lengths[i] for i in b) for b in batches)  # noqa: E731
    assert sum(max(lengths[i] for i in b) == 128 for b in grouped) == 2  # long rows share two batches
    assert padded(grouped) == 8 * (2 * 128 + 14 * 40) < 0.55 * padded(plain)  # ~half the padded tokens
    assert grouped != sorted(grouped, key=lambda b: max(lengths[i] for i in b))  # batch order shuffled


@pytest.mark.parametrize("strategy, first", [("real->syn", "real"), ("syn->real", "syn")])
def test_sequential_strategies_see_the_batches_of_paired_in_epoch_order(strategy, first):
    """Each epoch is one pass over the real rows (20 rows / 4 = 5 batches) and 5 synthetic batches, real
    first or synthetic first; over the run they are exactly paired's batches, one source per step."""
    steps = 12
    paired = plan("paired", 20, 500, steps, 4, seed=5)
    seq = plan(strategy, 20, 500, steps, 4, seed=5)
    assert len(seq) == 2 * steps and all(bool(b.real) != bool(b.syn) for b in seq)
    sources = ["real" if b.real else "syn" for b in seq]
    second = "syn" if first == "real" else "real"
    # epochs of 5 + 5 batches, then a last partial epoch of 2 + 2 (12 = 5 + 5 + 2)
    assert sources == [first] * 5 + [second] * 5 + [first] * 5 + [second] * 5 + [first] * 2 + [second] * 2
    assert [b.real for b in seq if b.real] == [b.real for b in paired]
    assert [b.syn for b in seq if b.syn] == [b.syn for b in paired]
    # a real epoch covers every real row once: real rows are not starved by 500 synthetic ones
    first_real_epoch = [i for b in [b for b in seq if b.real][:5] for i in b.real]
    assert sorted(first_real_epoch) == list(range(20))


def test_paired_gs_has_paired_batches():
    assert plan("paired+gs", 16, 64, 10, 4, seed=9) == plan("paired", 16, 64, 10, 4, seed=9)
