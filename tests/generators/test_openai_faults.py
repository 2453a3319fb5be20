"""The OpenAI-compatible client against a loopback server that misbehaves as hosted APIs do
(fake_openai.py): retries, shared cool-downs, per-request failures, deadlines, keys, several URLs, and
a SIGKILL in the middle of a run. Every test has a hard cap on the requests its server answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI, Fault, prompt_of

from fewforge.errors import BackendError
from fewforge.generators import CachedGenerator, get_generator
from fewforge.generators.base import SamplingParams
from fewforge.generators.failures import FailureLedger
from fewforge.generators.openai_compat import OpenAICompatGenerator

PARAMS = SamplingParams(temperature=0.9, max_new_tokens=24, seed=3)
PROMPTS = [f"Write review number {i}." for i in range(20)]


def client(url: str, **options) -> OpenAICompatGenerator:
    return OpenAICompatGenerator("fake", base_url=url, **{"backoff": 0.01, "backoff_cap": 0.05, **options})


def test_a_429_burst_converges_with_one_retry_each(tmp_path: Path):
    with FakeOpenAI(rule=lambda n, b: Fault(429, headers={"retry-after-ms": "40"}) if n <= 10 else None, cap=60) as srv:
        gen = client(srv.url, concurrency=16)
        out = CachedGenerator(gen, tmp_path / "c.sqlite").generate(PROMPTS, PARAMS)
        assert not any(c.failed for c in out)
        assert srv.count == 30 and not srv.overflowed  # 20 answers + one retry for each of the 10 refused
        assert gen.client.endpoints[0].limiter.cool_downs >= 1  # the 429s held every request, not only their own


def test_transient_errors_and_malformed_answers_are_retried():
    faults = {1: Fault(500), 2: Fault(503), 3: Fault(body=b"<html>upstream error</html>"), 4: Fault(empty_choices=True),
              5: Fault(408)}
    with FakeOpenAI(rule=lambda n, b: faults.get(n), cap=40) as srv:
        out = client(srv.url, concurrency=1).generate(PROMPTS[:5], PARAMS)
        assert [c.failed for c in out] == [False] * 5 and all(c.text for c in out)
        assert srv.count == 10  # five faults, each retried once


def test_one_permanently_rejected_request_leaves_every_other_cached(tmp_path: Path):
    bad = PROMPTS[6]
    with FakeOpenAI(rule=lambda n, b: Fault(400, "prompt rejected by the content filter") if prompt_of(b) == bad else None,
                    cap=60) as srv:
        cached = CachedGenerator(client(srv.url), tmp_path / "c.sqlite")
        cached.ledger = ledger = FailureLedger(0.2)
        out = cached.generate(PROMPTS, PARAMS)
        failed = [c for c in out if c.failed]
        assert [c.prompt for c in failed] == [bad] and srv.count == 20  # a 400 is not retried
        assert failed[0].candidates[0].failure.message == "prompt rejected by the content filter"
        assert ledger.failed == 1 and ledger.requests == 20 and ledger.rows[0]["status"] == 400
        ledger.check()  # 5 % of the requests: under the 20 % allowed
        assert cached.info()["rows"] == 19
        again = cached.generate(PROMPTS, PARAMS)  # a rerun asks again for the failed request only
        assert srv.count == 21 and sum(c.cached for c in again) == 19


def test_too_many_failures_stop_the_set_with_one_line(closed_url: str, tmp_path: Path):
    cached = CachedGenerator(client(closed_url, max_attempts=2, concurrency=4), tmp_path / "c.sqlite")
    cached.ledger = FailureLedger(0.2, min_to_stop=8)
    with pytest.raises(BackendError) as err:
        cached.generate(PROMPTS * 3, PARAMS)
    message = str(err.value)
    assert message.startswith("stopped early: ") and "generation requests failed" in message
    assert f"cannot reach the generator server at {closed_url}" in message and "\n" not in message
    assert cached.ledger.requests < len(PROMPTS) * 3  # it stopped sending to a dead server


def test_a_hanging_server_ends_at_the_deadline(tmp_path: Path):
    with FakeOpenAI(rule=lambda n, b: Fault(hang=True), cap=20) as srv:
        cached = CachedGenerator(client(srv.url, timeout=0.3, deadline=0.8), tmp_path / "c.sqlite")
        cached.ledger = ledger = FailureLedger(0.2)
        started = time.monotonic()
        out = cached.generate(PROMPTS[:3], PARAMS)
        assert time.monotonic() - started < 5
        assert all(c.failed for c in out)
        with pytest.raises(BackendError, match=r"3 of 3 generation requests failed .*no answer within") as err:
            ledger.check()
        assert "\n" not in str(err.value)


def test_openai_api_key_goes_only_to_openai(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    monkeypatch.setenv("MY_SERVER_KEY", "sk-mine")
    with FakeOpenAI(cap=10) as srv:
        client(srv.url).generate(PROMPTS[:1], PARAMS)
        client(srv.url, api_key_env="MY_SERVER_KEY").generate(PROMPTS[:1], PARAMS)
        assert srv.auth == ["Bearer sk-no-key-required", "Bearer sk-mine"]
    monkeypatch.delenv("MY_SERVER_KEY")
    with pytest.raises(BackendError, match="MY_SERVER_KEY .* is not set"):
        client("http://127.0.0.1:9/v1", api_key_env="MY_SERVER_KEY").generate(PROMPTS[:1], PARAMS)


def test_credentials_inside_a_url_are_used_but_never_shown(closed_url: str):
    with FakeOpenAI(cap=10) as srv:
        url = srv.url.replace("http://", "http://alice:pw-secret@") + "?key=q-secret"
        gen = get_generator(f"openai:fake@{url}", backoff=0.01)
        assert not gen.generate(PROMPTS[:1], PARAMS)[0].failed
        assert srv.auth[-1].startswith("Basic ") and srv.queries[-1] == "key=q-secret"  # both reached the server
        for shown in (repr(gen), gen.url):
            assert "pw-secret" not in shown and "q-secret" not in shown and "***" in shown
    dead = closed_url.replace("http://", "http://bob:pw-secret@") + "?token=t-secret"
    out = get_generator(f"openai:fake@{dead}", max_attempts=1).generate(PROMPTS[:1], PARAMS)
    message = out[0].candidates[0].failure.message
    assert "cannot reach" in message and "secret" not in message


def test_requests_spread_over_several_servers_with_one_cache_identity(closed_url: str, tmp_path: Path):
    with FakeOpenAI(latency=0.02, cap=60) as a, FakeOpenAI(latency=0.02, cap=60) as b:
        one = client(a.url)
        two = client(f"{a.url},{b.url}", concurrency=4)
        assert one.model_id == two.model_id and one.output_options() == two.output_options()
        cache = tmp_path / "c.sqlite"
        CachedGenerator(two, cache).generate(PROMPTS, PARAMS)
        assert a.completions >= 5 and b.completions >= 5 and a.completions + b.completions == 20
        replica_added = CachedGenerator(client(f"{a.url},{b.url},{closed_url}"), cache).generate(PROMPTS, PARAMS)
        assert all(c.cached for c in replica_added)  # adding a replica regenerates nothing
    with FakeOpenAI(cap=40) as live:  # a dead replica beside a live one: the live one serves everything
        out = client(f"{closed_url},{live.url}", concurrency=4).generate(PROMPTS, PARAMS)
        assert not any(c.failed for c in out) and live.completions == 20


def test_the_servers_announced_limit_is_adopted():
    with FakeOpenAI(rpm=6000, cap=20) as srv:
        gen = client(srv.url)
        gen.generate(PROMPTS[:2], PARAMS)
        assert gen.limits()["rpm"] == [6000.0]


KILLED_RUN = textwrap.dedent(
    """
    import sys
    from fewforge.generators import CachedGenerator
    from fewforge.generators.base import SamplingParams
    from fewforge.generators.openai_compat import OpenAICompatGenerator

    url, path = sys.argv[1], sys.argv[2]
    gen = CachedGenerator(OpenAICompatGenerator("fake", base_url=url, concurrency=4), path)
    done = [0]
    def progress(n):
        done[0] += n
        print(done[0], flush=True)
    gen.generate([f"Write review number {i}." for i in range(100)],
                 SamplingParams(temperature=0.9, max_new_tokens=24, seed=3), progress=progress)
    """
)


def test_sigkill_at_40_percent_then_a_rerun_sends_at_most_concurrency_more(tmp_path: Path):
    prompts = [f"Write review number {i}." for i in range(100)]
    with FakeOpenAI(latency=0.03, cap=300) as srv:
        cache = tmp_path / "c.sqlite"
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED_RUN, srv.url, str(cache)], stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert child.stdout is not None
        for line in child.stdout:
            if int(line) >= 40:
                child.send_signal(signal.SIGKILL)
                break
        child.wait(timeout=60)
        assert child.returncode == -signal.SIGKILL
        before = srv.completions
        out = CachedGenerator(client(srv.url, concurrency=4), cache).generate(prompts, PARAMS)
        assert not any(c.failed for c in out) and sum(c.cached for c in out) >= 40
        assert srv.completions <= 100 + 4, (before, srv.completions)  # only the requests in flight were lost
