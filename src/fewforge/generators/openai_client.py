"""The transport under the OpenAI-compatible backends: one or several servers of one model, each with its
own rate limits (limits.py), requests retried by us (the SDK's retries are off), keys sent only where
they belong and URLs shown only redacted (urls.py).

`send(call, parse, tokens)` sends one request until `parse` accepts the answer, or returns why it failed
for good (a `RequestFailure`): connection errors, timeouts, 408/409/429/5xx and malformed answers (no
JSON, no choices) are retried with full-jitter backoff, up to `max_attempts` and within `deadline`
seconds of the first attempt; a 429 makes every request of that server wait (`retry-after-ms` /
`retry-after`); 400, 401, 404 and other refusals fail that request only, with the server's message.
Each attempt goes to the reachable server with the fewest outstanding requests; a server that cannot be
reached is left alone for a growing while, so a dead replica does not attract traffic by failing fast.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

from fewforge.errors import BackendError
from fewforge.generators import urls as urltools
from fewforge.generators.base import RequestFailure
from fewforge.generators.limits import Clock, MonotonicClock, RateLimiter, backoff_delay, retry_after

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({408, 409, 429})  # and every 5xx


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, also when the caller is already inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:  # a fresh loop in a worker thread
        return pool.submit(asyncio.run, coro).result()


def retryable(status: int | None) -> bool:
    return status is None or status in RETRYABLE_STATUS or status >= 500


class Malformed(Exception):
    """A 2xx answer without what the request asks for (no JSON, no choices): retried like a 5xx."""


@dataclass
class Endpoint:
    """One server URL: its limits, how many requests are on their way to it, and when it may be tried
    again after it could not be reached."""

    url: str
    limiter: RateLimiter
    outstanding: int = 0
    down_until: float = float("-inf")
    down_for: float = 0.0
    client: Any = field(default=None, repr=False)

    @property
    def shown(self) -> str:
        return urltools.redact(self.url)


class OpenAIClient:
    def __init__(
        self,
        urls: list[str],
        *,
        concurrency: int = 16,
        rpm: float | None = None,
        tpm: float | None = None,
        max_attempts: int = 6,
        timeout: float = 120.0,
        deadline: float | None = 600.0,
        backoff: float = 0.5,
        backoff_cap: float = 30.0,
        api_key_env: str | None = None,
    ) -> None:
        self.urls = urls or urltools.split_urls(os.environ.get("OPENAI_BASE_URL")) or [urltools.OPENAI_URL]
        self.concurrency = concurrency
        self.rpm, self.tpm = rpm, tpm
        self.max_attempts = max(1, max_attempts)
        self.timeout = timeout
        self.deadline = deadline
        self.backoff, self.backoff_cap = backoff, backoff_cap
        self.api_key_env = api_key_env
        self.clock: Clock = MonotonicClock()  # tests set a virtual clock before the first call
        self.rng = random.Random()  # backoff jitter only: never touches what is generated
        self._endpoints: list[Endpoint] | None = None

    @property
    def url(self) -> str:
        """The first server's URL, redacted (for messages)."""
        return urltools.redact(self.urls[0])

    @property
    def shown(self) -> str:
        return ",".join(urltools.redact(u) for u in self.urls)

    @property
    def endpoints(self) -> list[Endpoint]:
        """One per URL; their limiters keep pace and cool-downs across calls."""
        if self._endpoints is None:
            self._endpoints = [
                Endpoint(u, RateLimiter(self.rpm, self.tpm, self.concurrency, clock=self.clock)) for u in self.urls
            ]
        return self._endpoints

    def limits(self) -> dict[str, Any]:
        """What paces requests now (configured, or tightened by the server's headers), for estimates."""
        eps = self.endpoints
        return {
            "servers": len(eps),
            "concurrency": self.concurrency,
            "rpm": [e.limiter.rpm for e in eps],
            "tpm": [e.limiter.tpm for e in eps],
        }

    # -- connections -----------------------------------------------------------------------------------
    def _connect(self) -> None:
        """Clients and concurrency slots for this call's event loop (both belong to one loop)."""
        try:
            from openai import AsyncOpenAI
        except ImportError:
            raise BackendError(
                "the openai backend needs the openai package", hint="run: pip install openai"
            ) from None
        key = urltools.api_key(self.urls, self.api_key_env)
        for endpoint in self.endpoints:
            base, query = urltools.client_url(endpoint.url)
            endpoint.client = AsyncOpenAI(
                api_key=key, base_url=base, default_query=query or None, max_retries=0, timeout=self.timeout
            )
            endpoint.limiter.open()

    async def _disconnect(self) -> None:
        for endpoint in self.endpoints:
            if endpoint.client is not None:
                await endpoint.client.close()
                endpoint.client = None

    async def session(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` (which calls `send`) with connected clients, closed after."""
        self._connect()
        try:
            return await work()
        finally:
            await self._disconnect()

    def _pick(self) -> Endpoint:
        """The reachable server with the fewest outstanding requests (the first on ties)."""
        now = self.clock.now()
        live = [e for e in self.endpoints if e.down_until <= now] or self.endpoints
        return min(live, key=lambda e: (e.outstanding, e.down_until))

    # -- one request, with retries ---------------------------------------------------------------------
    async def send(
        self,
        call: Callable[[Any], Awaitable[Any]],
        parse: Callable[[Any], tuple[T, int | None]],
        tokens: int,
    ) -> T | RequestFailure:
        """Send `call(client)` until `parse(answer)` accepts it, or return why it failed for good.
        `parse` returns (value, tokens the answer used) and raises Malformed on a broken answer."""
        import openai

        first: float | None = None
        attempt = 0
        while True:
            attempt += 1
            endpoint = self._pick()
            endpoint.outstanding += 1
            used: int | None = None
            again = True
            try:
                await endpoint.limiter.acquire(tokens)
                try:
                    first = time.monotonic() if first is None else first
                    left = None if self.deadline is None else self.deadline - (time.monotonic() - first)
                    if left is not None and left <= 0:
                        raise asyncio.TimeoutError
                    answer = await asyncio.wait_for(call(endpoint.client), timeout=left)
                    endpoint.limiter.adopt(getattr(answer, "headers", None) or {})
                    value, used = parse(answer)
                    endpoint.down_for = 0.0
                    return value
                finally:
                    endpoint.limiter.release(tokens, used)
            except asyncio.TimeoutError:
                failure = RequestFailure(None, f"no answer within the deadline of {self.deadline:g} s", attempt)
                again = False
            except openai.APITimeoutError:
                failure = RequestFailure(None, f"{endpoint.shown} gave no answer within {self.timeout:g} s", attempt)
            except openai.APIConnectionError:
                failure = RequestFailure(None, f"cannot reach the generator server at {endpoint.shown}", attempt)
                endpoint.down_for = min(max(2 * endpoint.down_for, self.backoff), self.backoff_cap)
                endpoint.down_until = self.clock.now() + endpoint.down_for
            except openai.APIStatusError as e:
                status = int(e.status_code)
                failure = RequestFailure(status, urltools.redact_text(short_message(e)), attempt)
                headers = getattr(getattr(e, "response", None), "headers", None) or {}
                endpoint.limiter.adopt(headers)
                if status == 429:
                    wait = retry_after(headers)
                    endpoint.limiter.cool_down(
                        wait if wait is not None else backoff_delay(attempt, self.backoff, self.backoff_cap, self.rng)
                    )
                again = retryable(status)
            except Malformed as e:
                failure = RequestFailure(200, f"malformed answer from {endpoint.shown}: {e}", attempt)
            finally:
                endpoint.outstanding -= 1
            spent = time.monotonic() - first if first is not None else 0.0
            if not again or attempt >= self.max_attempts or (self.deadline is not None and spent >= self.deadline):
                return failure
            delay = backoff_delay(attempt, self.backoff, self.backoff_cap, self.rng)
            if self.deadline is not None:
                delay = min(delay, max(self.deadline - spent, 0.0))
            await self.clock.sleep(delay)


def short_message(error: Any) -> str:
    body = getattr(error, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message", message)
    return (str(message or error).strip().splitlines() or [""])[0][:200]


def status_hint(status: int | None, key_env: str | None) -> str:
    """What to do about a request that failed for good with `status` (None: no answer at all)."""
    if status in (401, 403):
        return f"set the API key in the environment variable {key_env or 'OPENAI_API_KEY'} (api_key_env for other hosts)"
    if status == 404:
        return "check the model name (GET <url>/models lists what the server serves)"
    if status == 429:
        return "the server is rate limiting: set rpm / tpm / concurrency in generator_options"
    if status is None:
        return "start the server or fix --generator openai:MODEL@URL"
    return "check the server logs and the sampling parameters"
