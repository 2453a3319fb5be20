"""Client-side rate limits for HTTP backends: requests and tokens per minute, a concurrency cap, a
cool-down shared by every request after a 429, and full-jitter exponential backoff.

Requests and tokens are paced with GCRA (the "virtual scheduling" form of a token bucket): each
request reserves the next free slot the moment it asks, so waiters are served in order without
polling, and up to `burst_seconds` of unused capacity may be spent at once. A request larger than the
token burst goes when credit is left and pushes later requests back (a debt), so no request is too
big to ever start. A 429 moves the shared `blocked_until` forward (honouring `retry-after-ms` /
`retry-after`) and every request waits behind it: a burst of 429s is retried at the server's pace, not
by every request at once. When the server says the limit itself is spent (`x-ratelimit-remaining-*: 0`),
requests resume at the pace after its reset; a 429 for another reason (an overloaded server) keeps the
credit built up meanwhile, so the lost time is caught up. Limits the server announces in
`x-ratelimit-*` headers are adopted when they are tighter than the configured ones.

Time comes from a `Clock` (monotonic seconds and an async sleep), so tests drive it with virtual time.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from typing import Mapping, Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): uniform in
    [0, min(cap, base * 2^(attempt-1))] after the `attempt`-th failure, so retries of a burst spread out."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return (rng or random).uniform(0.0, ceiling)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """OpenAI's reset durations ("20ms", "1.5s", "6m0s", "1h2m") or plain seconds ("2"), in seconds."""
    if not text:
        return None
    text = text.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a server asks us to wait: `retry-after-ms` (OpenAI) first, then `retry-after` (seconds;
    an HTTP date is ignored — the backoff covers it)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    ms = lowered.get("retry-after-ms")
    if ms is not None:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    seconds = lowered.get("retry-after")
    if seconds is not None:
        try:
            return max(float(seconds), 0.0)
        except ValueError:
            return None
    return None


class _Pacer:
    """GCRA for one quantity (requests or tokens) at `per_minute`, with `burst_seconds` of credit."""

    def __init__(self, per_minute: float | None, burst_seconds: float) -> None:
        self.per_minute = per_minute
        self.burst_seconds = burst_seconds
        self.tat = float("-inf")  # theoretical arrival time of the next unit

    def reserve(self, now: float, cost: float) -> float:
        """Book `cost` units; returns the seconds to wait before using them."""
        if not self.per_minute or cost <= 0:
            return 0.0
        tat = max(self.tat, now)
        wait = max(0.0, tat - self.burst_seconds - now)
        self.tat = tat + cost * 60.0 / self.per_minute
        return wait

    def refund(self, cost: float) -> None:
        """Give back units booked but not used (a reply shorter than its reservation)."""
        if self.per_minute and cost:
            self.tat -= cost * 60.0 / self.per_minute

    def drain(self, until: float) -> None:
        """No credit left at `until`: the server says this limit is spent, so after its reset requests
        resume at the pace, not in a burst."""
        if self.per_minute:
            self.tat = max(self.tat, until + self.burst_seconds)


class RateLimiter:
    """The limits of one server (one URL): `rpm`, `tpm` (None = unlimited) and `concurrency` requests
    in flight. State that spans calls (pacing, cool-down, adopted limits) lives here; the concurrency
    semaphore belongs to an event loop, so `open()` makes a fresh one at the start of every call."""

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        concurrency: int = 16,
        *,
        clock: Clock | None = None,
        burst_seconds: float = 1.0,
    ) -> None:
        self.clock = clock or MonotonicClock()
        self.concurrency = concurrency
        self.requests = _Pacer(rpm, burst_seconds)
        self.tokens = _Pacer(tpm, burst_seconds)
        self.blocked_until = float("-inf")
        self.cool_downs = 0
        self._slots: asyncio.Semaphore | None = None

    @property
    def rpm(self) -> float | None:
        return self.requests.per_minute

    @property
    def tpm(self) -> float | None:
        return self.tokens.per_minute

    def open(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrency)

    async def acquire(self, tokens: int = 0) -> None:
        """Wait for a concurrency slot, the end of any cool-down, and this request's place in the pace."""
        if self._slots is None:
            self.open()
        assert self._slots is not None
        await self._slots.acquire()
        try:
            await self._unblocked()
            now = self.clock.now()
            wait = max(self.requests.reserve(now, 1), self.tokens.reserve(now, tokens))
            if wait > 0:
                await self.clock.sleep(wait)
            await self._unblocked()  # a 429 while we waited for our place: wait it out, keep the place
        except BaseException:
            self._slots.release()
            raise

    async def _unblocked(self) -> None:
        while (now := self.clock.now()) < self.blocked_until:
            await self.clock.sleep(self.blocked_until - now)

    def release(self, reserved_tokens: int = 0, used_tokens: int | None = None) -> None:
        """Free the slot; settle the token reservation against what the reply says it used."""
        if used_tokens is not None and used_tokens < reserved_tokens:
            self.tokens.refund(reserved_tokens - used_tokens)
        elif used_tokens is not None and used_tokens > reserved_tokens:
            self.tokens.reserve(self.clock.now(), used_tokens - reserved_tokens)
        if self._slots is not None:
            self._slots.release()

    def cool_down(self, seconds: float, spent: str | None = None) -> None:
        """Every request of this server waits `seconds` from now (a 429). `spent` ("requests" or "tokens"):
        the server announced that limit as used up, so its credit is gone too; a 429 for any other reason
        (an overloaded server) keeps the credit that builds up meanwhile, to catch up after it."""
        until = self.clock.now() + max(seconds, 0.0)
        if until > self.blocked_until:
            self.blocked_until = until
            self.cool_downs += 1
        if spent == "requests":
            self.requests.drain(until)
        elif spent == "tokens":
            self.tokens.drain(until)

    def adopt(self, headers: Mapping[str, str]) -> None:
        """Take the server's own limits (`x-ratelimit-limit-*`) when tighter, and wait out a spent one
        (`x-ratelimit-remaining-*` = 0 until `x-ratelimit-reset-*`)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        for pacer, unit in ((self.requests, "requests"), (self.tokens, "tokens")):
            limit = _number(lowered.get(f"x-ratelimit-limit-{unit}"))
            if limit and (pacer.per_minute is None or limit < pacer.per_minute):
                pacer.per_minute = limit
            remaining = _number(lowered.get(f"x-ratelimit-remaining-{unit}"))
            reset = parse_duration(lowered.get(f"x-ratelimit-reset-{unit}"))
            if remaining is not None and remaining <= 0 and reset:
                self.cool_down(reset, spent=unit)


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
