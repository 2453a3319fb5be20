"""A loopback OpenAI-compatible server that misbehaves the way hosted APIs do, scripted per request.

Standard library only (`http.server`), bound to 127.0.0.1 on a free port, for the fault tests and
`bench/api_throughput.py`. Every answer is computed from the request: the text of a completion is
derived from (prompt, seed), so the same request always gets the same answer, as a seeded server's
would. What can go wrong is chosen per request by `FakeOpenAI.rule(n, body) -> Fault | None`
(n = the request's number, from 1) plus a few switches:

- `Fault(status=429, headers={"retry-after-ms": "50"})`, any status with a message; `Fault(body=b"...")`
  for a non-JSON answer; `Fault(empty_choices=True)`; `Fault(hang=True)` never answers;
- `rpm`: a token bucket (1 s of burst) that answers 429 with `retry-after-ms` and `x-ratelimit-*`
  headers when exceeded; `inject_429`: that share of requests answered 429 at random (seeded);
- `latency`: seconds before each answer;
- `cap`: the hard limit on requests per test; past it every request gets 503 and `overflowed` is set;
- the Batch API: `/v1/files`, `/v1/files/{id}/content`, `/v1/batches`, `/v1/batches/{id}`. A batch
  reaches its final status after `batch_polls` retrievals; `batch_final` ("completed", "expired", ...)
  (one status, or one per batch in order) and `batch_drop` (requests left out of a completed batch's
  output) script partial results; an expired batch has answered the first half of its requests.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

WORDS = (
    "the film was a quiet warm bright sharp dull slow brave odd story about two friends who find a lost "
    "letter in an old house near the sea and learn what it means to trust someone again after years apart"
).split()


def reply_text(prompt: str, seed: Any) -> str:
    """A deterministic sentence of 8-14 words for (prompt, seed): same request, same answer."""
    digest = hashlib.sha256(f"{prompt}\x00{seed}".encode()).digest()
    n = 8 + digest[0] % 7
    words = [WORDS[digest[1 + i] % len(WORDS)] for i in range(n)]
    return " ".join(words).capitalize() + "."


@dataclass
class Fault:
    status: int = 200
    message: str = "scripted failure"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # a raw body (not JSON)
    empty_choices: bool = False
    hang: bool = False


class FakeOpenAI:
    def __init__(
        self,
        *,
        rule: Callable[[int, dict[str, Any]], Fault | None] | None = None,
        latency: float = 0.0,
        rpm: float | None = None,
        inject_429: float = 0.0,
        retry_after_ms: int = 100,
        cap: int = 500,
        batch_polls: int = 1,
        batch_final: str | list[str] = "completed",
        batch_drop: int = 0,
        seed: int = 0,
    ) -> None:
        self.rule = rule
        self.latency = latency
        self.rpm = rpm
        self.inject_429 = inject_429
        self.retry_after_ms = retry_after_ms
        self.cap = cap
        self.batch_polls, self.batch_final, self.batch_drop = batch_polls, batch_final, batch_drop
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.count = 0  # every request, of any path
        self.completions = 0  # generation requests answered 200
        self.answered: dict[tuple[str, Any], int] = {}  # (prompt, seed) -> times answered 200
        self.log: list[tuple[str, int]] = []  # (path, status) per request
        self.auth: list[str] = []  # the Authorization header of each request
        self.queries: list[str] = []  # the query string of each request
        self.overflowed = False
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._tat = float("-inf")
        self._closing = threading.Event()
        self.server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()

    def statuses(self, path: str = "completions") -> list[int]:
        return [s for p, s in self.log if path in p]

    # -- limits ---------------------------------------------------------------------------------------
    def _over_rpm(self) -> float | None:
        """Seconds until the next request would fit (GCRA, 1 s of burst), or None when it fits now."""
        if not self.rpm:
            return None
        now, interval = time.monotonic(), 60.0 / self.rpm
        tat = max(self._tat, now)
        if tat - now > 1.0:
            return tat - now - 1.0
        self._tat = tat + interval
        return None

    def _limit_headers(self) -> dict[str, str]:
        if not self.rpm:
            return {}
        return {"x-ratelimit-limit-requests": str(int(self.rpm)), "x-ratelimit-reset-requests": "1s"}

    # -- answers --------------------------------------------------------------------------------------
    def _completion(self, body: dict[str, Any], chat: bool) -> dict[str, Any]:
        prompt = prompt_of(body)
        text = reply_text(prompt, body.get("seed"))
        words = text.split()
        limit = int(body.get("max_tokens") or 64)
        finish = "length" if len(words) > limit else "stop"
        text = " ".join(words[:limit])
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        usage = {"prompt_tokens": len(str(prompt).split()), "completion_tokens": min(len(words), limit)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {
            "id": "cmpl-fake",
            "object": "chat.completion" if chat else "text_completion",
            "created": 0,
            "model": body.get("model", "fake"),
            "choices": [choice],
            "usage": usage,
        }

    def _batch_output(self, batch: dict[str, Any]) -> str:
        lines = self.files[batch["input_file_id"]].decode().splitlines()
        requests = [json.loads(x) for x in lines if x.strip()]
        keep = requests[self.batch_drop :] if batch["status"] == "completed" else requests[: len(requests) // 2]
        out = []
        for req in keep:
            fault = self.rule(0, req["body"]) if self.rule else None
            if fault is not None and fault.status != 200:
                response = {"status_code": fault.status, "body": {"error": {"message": fault.message}}}
            else:
                response = {"status_code": 200, "body": self._completion(req["body"], req["url"].endswith("chat/completions"))}
            out.append(json.dumps({"id": "line", "custom_id": req["custom_id"], "response": response, "error": None}))
        return "\n".join(out) + "\n"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, payload: Any = None, headers: dict[str, str] | None = None,
                      raw: bytes | None = None) -> None:
                data = raw if raw is not None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json" if raw is None else "text/plain")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
                with fake.lock:
                    fake.log.append((self.path, status))

            def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
                self._send(status, {"error": {"message": message, "type": "fake"}}, headers)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("content-length") or 0))

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.path, _, query = self.path.partition("?")
                with fake.lock:
                    fake.queries.append(query)
                    fake.count += 1
                    fake.auth.append(self.headers.get("authorization", ""))
                m = re.match(r"^/v1/batches/([\w-]+)$", self.path)
                if m and m.group(1) in fake.batches:
                    batch = fake.batches[m.group(1)]
                    batch["polls"] += 1
                    if batch["polls"] >= fake.batch_polls and batch["status"] not in ("completed", "expired"):
                        finals = fake.batch_final if isinstance(fake.batch_final, list) else [fake.batch_final]
                        batch["status"] = finals[min(int(batch["id"].split("-")[1]) - 1, len(finals) - 1)]
                        out_id = f"file-out-{batch['id']}"
                        fake.files[out_id] = fake._batch_output(batch).encode()
                        batch["output_file_id"] = out_id
                    elif batch["status"] == "validating":
                        batch["status"] = "in_progress"
                    return self._send(200, {k: v for k, v in batch.items() if k != "polls"})
                m = re.match(r"^/v1/files/([\w-]+)/content$", self.path)
                if m and m.group(1) in fake.files:
                    return self._send(200, raw=fake.files[m.group(1)])
                self._error(404, f"no route {self.path}")

            def do_POST(self) -> None:  # noqa: N802
                raw = self._body()
                self.path, _, query = self.path.partition("?")
                with fake.lock:
                    fake.queries.append(query)
                    fake.count += 1
                    fake.auth.append(self.headers.get("authorization", ""))
                    n = fake.count
                    over_cap = n > fake.cap
                    fake.overflowed |= over_cap
                if over_cap:
                    return self._error(503, "request cap of this test reached")
                if self.path.endswith("/files"):
                    content = _multipart_file(raw, self.headers.get("content-type", ""))
                    file_id = f"file-{len(fake.files) + 1}"
                    fake.files[file_id] = content
                    return self._send(200, {"id": file_id, "object": "file", "bytes": len(content),
                                            "created_at": 0, "filename": "requests.jsonl", "purpose": "batch",
                                            "status": "processed"})
                if self.path.endswith("/batches"):
                    body = json.loads(raw)
                    batch_id = f"batch-{len(fake.batches) + 1}"
                    fake.batches[batch_id] = {
                        "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
                        "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                        "status": "validating", "output_file_id": None, "error_file_id": None, "created_at": 0,
                        "polls": 0,
                    }
                    return self._send(200, {k: v for k, v in fake.batches[batch_id].items() if k != "polls"})
                chat = self.path.endswith("/chat/completions")
                if not chat and not self.path.endswith("/completions"):
                    return self._error(404, f"no route {self.path}")
                body = json.loads(raw or b"{}")
                fault = fake.rule(n, body) if fake.rule else None
                if fault is not None and fault.hang:
                    fake._closing.wait(30)
                    return
                with fake.lock:  # limits answer at once, as a gateway in front of the model would
                    injected = fake.inject_429 and fake.rng.random() < fake.inject_429
                    wait = None if injected else fake._over_rpm()
                limits = fake._limit_headers()
                if wait is not None:  # the limit itself is spent: say so, as OpenAI's headers do
                    ms = str(max(int(wait * 1000), 1))
                    spent = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": f"{ms}ms"}
                    return self._error(429, "rate limit exceeded", {**limits, **spent, "retry-after-ms": ms})
                if injected:
                    return self._error(429, "overloaded", {**limits, "retry-after-ms": str(fake.retry_after_ms)})
                if fake.latency:
                    time.sleep(fake.latency)
                if fault is not None:
                    if fault.body is not None:
                        return self._send(200, raw=fault.body)
                    if fault.empty_choices:
                        return self._send(200, {"id": "x", "object": "chat.completion", "created": 0,
                                                "model": "fake", "choices": []})
                    if fault.status != 200:
                        return self._error(fault.status, fault.message, {**limits, **fault.headers})
                with fake.lock:
                    fake.completions += 1
                    request = (prompt_of(body), body.get("seed"))
                    fake.answered[request] = fake.answered.get(request, 0) + 1
                self._send(200, fake._completion(body, chat), limits)

        return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up (a killed run, a cancelled request) is part of these tests


def prompt_of(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"] if "messages" in body else body.get("prompt", ""))


def _multipart_file(raw: bytes, content_type: str) -> bytes:
    """The content of the part named "file" of a multipart/form-data body."""
    boundary = content_type.split("boundary=", 1)[1].strip().strip('"').encode()
    for part in raw.split(b"--" + boundary):
        head, _, data = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            return data.rsplit(b"\r\n", 1)[0]
    return b""
