"""The client-side rate limiter (generators/limits.py), timed by an injected virtual clock, never sleeps."""

from __future__ import annotations

import asyncio
import heapq
import random

import pytest

from fewforge.generators.limits import RateLimiter, backoff_delay, parse_duration, retry_after


class VirtualClock:
    """Virtual time for asyncio code that waits only through `sleep`: when every task is blocked,
    time jumps to the earliest wake-up."""

    def __init__(self) -> None:
        self.t = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future]] = []
        self._seq = 0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.t + seconds, self._seq, future))
        self._seq += 1
        await future

    def run(self, *coros) -> list:
        async def drive() -> list:
            tasks = [asyncio.ensure_future(c) for c in coros]
            while not all(t.done() for t in tasks):
                for _ in range(50):  # let every runnable task run until it blocks
                    await asyncio.sleep(0)
                if self._sleepers and not all(t.done() for t in tasks):
                    wake, _, future = heapq.heappop(self._sleepers)
                    self.t = max(self.t, wake)
                    future.set_result(None)
            return [t.result() for t in tasks]

        return asyncio.run(drive())


def starts(limiter: RateLimiter, clock: VirtualClock, n: int, tokens: int = 0, hold: float = 0.0) -> list[float]:
    """When each of n concurrent requests gets through the limiter (each holds its slot `hold` s)."""

    async def one() -> float:
        await limiter.acquire(tokens)
        t = clock.now()
        await clock.sleep(hold)
        limiter.release(tokens, tokens)
        return t

    async def opened() -> None:
        limiter.open()

    clock.run(opened())
    return clock.run(*(one() for _ in range(n)))


def test_requests_per_minute_are_paced_after_one_second_of_burst():
    clock = VirtualClock()
    limiter = RateLimiter(rpm=600, concurrency=100, clock=clock)  # 10 a second
    times = sorted(starts(limiter, clock, 60))
    assert times[:11] == [0.0] * 11  # one second of burst credit
    gaps = [b - a for a, b in zip(times[11:], times[12:])]
    assert all(abs(g - 0.1) < 1e-9 for g in gaps)
    assert times[-1] == pytest.approx(4.9)  # 60 requests at 10/s after 10 free: the rate, not faster


def test_concurrency_caps_requests_in_flight():
    clock = VirtualClock()
    limiter = RateLimiter(concurrency=3, clock=clock)
    times = sorted(starts(limiter, clock, 9, hold=1.0))
    assert times == [0.0] * 3 + [1.0] * 3 + [2.0] * 3


def test_a_spent_limit_holds_every_request_then_resumes_at_the_pace():
    clock = VirtualClock()
    limiter = RateLimiter(rpm=60, concurrency=50, clock=clock)

    async def cool() -> None:
        limiter.open()
        limiter.adopt({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "5s"})

    clock.run(cool())
    times = sorted(starts(limiter, clock, 4))
    assert times == [5.0, 6.0, 7.0, 8.0]  # nobody during the cool-down, no burst right after it
    assert limiter.cool_downs == 1


def test_an_overload_429_holds_every_request_and_keeps_the_credit_to_catch_up():
    clock = VirtualClock()
    limiter = RateLimiter(rpm=600, concurrency=50, clock=clock)  # 10 a second

    async def cool() -> None:
        limiter.open()
        limiter.cool_down(0.5)

    clock.run(cool())
    times = sorted(starts(limiter, clock, 15))
    assert min(times) == 0.5  # nobody during the cool-down
    assert times == pytest.approx([0.5] * 11 + [0.6, 0.7, 0.8, 0.9])  # then the pace, with the credit it kept


def test_tokens_per_minute_let_a_big_request_go_and_charge_the_next():
    clock = VirtualClock()
    limiter = RateLimiter(tpm=6000, concurrency=10, clock=clock)  # 100 tokens a second, 100 of burst
    times = sorted(starts(limiter, clock, 3, tokens=300))
    assert times == [0.0, 2.0, 5.0]  # the first fits the credit; each later waits for the 300 it costs


def test_server_limits_are_adopted_when_tighter_and_spent_limits_wait_for_their_reset():
    clock = VirtualClock()
    limiter = RateLimiter(rpm=1000, clock=clock)
    limiter.adopt({"x-ratelimit-limit-requests": "120", "x-ratelimit-limit-tokens": "9000"})
    assert (limiter.rpm, limiter.tpm) == (120, 9000)
    limiter.adopt({"x-ratelimit-limit-requests": "5000"})  # looser: ours stays
    assert limiter.rpm == 120
    limiter.adopt({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s"})
    assert limiter.blocked_until == pytest.approx(1.5)


def test_full_jitter_backoff_stays_under_its_exponential_ceiling():
    rng = random.Random(0)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (8, 30.0)):
        values = [backoff_delay(attempt, 0.5, 30.0, rng) for _ in range(500)]
        assert all(0.0 <= v <= ceiling for v in values)
        assert max(values) > 0.8 * ceiling and min(values) < 0.2 * ceiling  # spread over the whole range


def test_retry_after_and_reset_durations():
    assert retry_after({"Retry-After-Ms": "250"}) == 0.25
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert retry_after({}) is None
    assert parse_duration("6m0s") == 360.0 and parse_duration("20ms") == 0.02 and parse_duration("1.5s") == 1.5
    assert parse_duration("1h2m") == 3720.0 and parse_duration("soon") is None
