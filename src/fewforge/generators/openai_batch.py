"""The OpenAI Batch API (`openai-batch:MODEL[@URL]`): half the price at hosted providers, answers within
the completion window (24 h).

Each call sends its requests as one JSONL file (`/v1/files`, purpose "batch") and one batch
(`/v1/batches`), with `custom_id` = the request's cache key, so the cache holds batch and online answers
alike under one key (`cache_namespace` "openai"): switching transport never regenerates anything. Every
submitted batch is recorded atomically in `<run>/cache/batches/<id>.json` before anything waits on it,
so a process that stops (or `fewforge generate --submit-only`, which returns as soon as its batches are
submitted) loses nothing: the next call finds the batch that holds its keys and collects it. A batch
that ends failed, expired or cancelled, or with some lines missing, has only its missing requests sent
again, in at most `max_rounds` batches per request; a line the server refused (4xx) is a failed request.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

from fewforge.errors import BackendError, PendingWork
from fewforge.files import read_json, write_json
from fewforge.generators.base import (
    AdapterRequest,
    Candidate,
    CandidateCallback,
    Completion,
    Positions,
    ProgressCallback,
    RequestFailure,
    SamplingParams,
    positions,
)
from fewforge.generators.cache import request_keys
from fewforge.generators.openai_client import Malformed, retryable, run_sync
from fewforge.generators.openai_compat import OpenAICompatGenerator, failure_hint

TERMINAL = ("completed", "failed", "expired", "cancelled")


class OpenAIBatchGenerator(OpenAICompatGenerator):
    backend = "openai-batch"
    supports_scoring = False  # echo + logprobs per pair: score online (openai:MODEL@URL)
    is_batch = True

    def __init__(
        self,
        model: str,
        *,
        base_url: str | list[str] | None = None,
        chat: bool = True,
        poll_interval: float = 30.0,
        max_rounds: int = 3,
        completion_window: str = "24h",
        max_attempts: int = 6,
        timeout: float = 300.0,
        api_key_env: str | None = None,
    ) -> None:
        super().__init__(
            model, base_url=base_url, chat=chat, max_attempts=max_attempts, timeout=timeout, deadline=None,
            api_key_env=api_key_env, concurrency=4,
        )
        self.poll_interval = poll_interval
        self.max_rounds = max(1, max_rounds)
        self.completion_window = completion_window
        self.state_dir: Path | None = None
        self.submit_only = False  # `fewforge generate --submit-only`: submit, then return without waiting

    @property
    def cache_namespace(self) -> str:
        return "openai"  # batch and online answers of one model are the same cache rows

    def bind_state_dir(self, path: Path) -> None:
        """Where submitted batches are recorded (the cache calls this: `<run>/cache/batches/`)."""
        self.state_dir = Path(path)

    @property
    def endpoint_path(self) -> str:
        return "/v1/chat/completions" if self.chat else "/v1/completions"

    # -- state -------------------------------------------------------------------------------------------
    def _batches(self) -> list[dict[str, Any]]:
        if self.state_dir is None or not self.state_dir.is_dir():
            return []
        return [read_json(p) for p in sorted(self.state_dir.glob("*.json"))]

    def _save(self, batch: dict[str, Any]) -> None:
        assert self.state_dir is not None
        write_json(self.state_dir / f"{batch['id']}.json", batch)

    # -- the generator contract -----------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        start_index: Positions = 0,
        progress: ProgressCallback | None = None,
        adapter: AdapterRequest | None = None,
        on_candidate: CandidateCallback | None = None,
    ) -> list[Completion]:
        self.check_adapter(adapter)
        if not prompts:
            return []
        if self.state_dir is None:
            raise BackendError(
                "the openai-batch backend keeps its submitted batches beside the generation cache, which is off",
                hint="run without --no-cache (cache: true)",
            )
        prompts = list(prompts)
        where = positions(start_index, len(prompts))
        keys = request_keys(self, prompts, params, where)
        wanted = {
            key: (i, j, self.request_body(prompts[i], params, params.request_seed(where[i], j)))
            for i, row in enumerate(keys)
            for j, key in enumerate(row)
        }
        answers = run_sync(self.client.session(lambda: self._collect(wanted, on_candidate)))
        if progress is not None:
            progress(len(prompts))
        return [
            Completion(prompt=p, candidates=tuple(answers[k] for k in keys[i])) for i, p in enumerate(prompts)
        ]

    async def _collect(
        self, wanted: dict[str, tuple[int, int, dict[str, Any]]], on_candidate: CandidateCallback | None
    ) -> dict[str, Candidate]:
        """Answers for every wanted key: from the batches that hold them, submitting the keys no batch
        holds, until each key has an answer or has been in `max_rounds` batches."""
        answers: dict[str, Candidate] = {}

        def answer(key: str, candidate: Candidate) -> None:
            answers[key] = candidate
            if on_candidate is not None:
                i, j, _ = wanted[key]
                on_candidate(i, j, candidate)

        retry: dict[str, RequestFailure] = {}  # keys whose last batch line failed in a retryable way
        while len(answers) < len(wanted):
            missing = [k for k in wanted if k not in answers]
            batches = self._batches()
            holding = [b for b in batches if not b.get("collected") and set(b["keys"]) & set(missing)]
            held = {k for b in holding for k in b["keys"]}
            rounds = {k: 0 for k in missing}
            for b in batches:
                for k in b["keys"]:
                    if k in rounds:
                        rounds[k] = max(rounds[k], b.get("round", 1))
            spent = [k for k in missing if k not in held and rounds[k] >= self.max_rounds]
            for k in spent:
                last = retry.get(k)
                answer(k, Candidate.from_failure(RequestFailure(
                    last.status if last else None,
                    f"no answer after {self.max_rounds} batches" + (f" (last: {last.message})" if last else ""),
                    rounds[k],
                )))
            fresh = [k for k in missing if k not in held and k not in spent]
            if fresh:
                holding.append(await self._submit(fresh, wanted, 1 + max(rounds[k] for k in fresh)))
            if not holding:
                continue
            unfinished = [b for b in holding if b["status"] not in TERMINAL]
            if self.submit_only and unfinished:
                counts = ", ".join(f"{b['id']} {b['status']}" for b in unfinished)
                raise PendingWork(f"batches {counts}")
            for batch in holding:
                batch = await self._wait(batch)
                for key, candidate in (await self._results(batch)).items():
                    if key not in wanted or key in answers:
                        continue
                    failure = candidate.failure
                    if failure is not None and failure.status is not None and retryable(failure.status):
                        retry[key] = failure  # sent again in the next batch, while rounds last
                        continue
                    answer(key, candidate)
                batch["collected"] = True
                self._save(batch)
        return answers

    async def _submit(self, keys: list[str], wanted: dict[str, tuple[int, int, dict[str, Any]]], round_no: int) -> dict[str, Any]:
        lines = "".join(
            json.dumps({"custom_id": k, "method": "POST", "url": self.endpoint_path, "body": wanted[k][2]}) + "\n"
            for k in keys
        )
        upload = await self._call(
            lambda c: c.files.with_raw_response.create(file=("requests.jsonl", lines.encode(), "application/jsonl"),
                                                       purpose="batch"),
            "upload the batch file",
        )
        created = await self._call(
            lambda c: c.batches.with_raw_response.create(
                input_file_id=upload.id, endpoint=self.endpoint_path, completion_window=self.completion_window
            ),
            "create the batch",
        )
        batch = {
            "id": created.id,
            "status": created.status,
            "input_file_id": upload.id,
            "round": round_no,
            "submitted": time.time(),
            "model": self.model,
            "keys": keys,
            "collected": False,
        }
        self._save(batch)  # recorded before anything waits on it: a stopped process loses nothing
        return batch

    async def _wait(self, batch: dict[str, Any]) -> dict[str, Any]:
        while batch["status"] not in TERMINAL:
            await self.client.clock.sleep(self.poll_interval)
            state = await self._call(lambda c: c.batches.with_raw_response.retrieve(batch["id"]), "poll the batch")
            batch.update(
                status=state.status,
                output_file_id=getattr(state, "output_file_id", None),
                error_file_id=getattr(state, "error_file_id", None),
            )
            self._save(batch)
        return batch

    async def _results(self, batch: dict[str, Any]) -> dict[str, Candidate]:
        """The batch's answered lines by custom_id (output and error files); missing lines are absent."""
        out: dict[str, Candidate] = {}
        for file_id in (batch.get("output_file_id"), batch.get("error_file_id")):
            if not file_id:
                continue
            content = await self._call(lambda c, f=file_id: c.files.with_raw_response.content(f), "download results")
            text = content.text if hasattr(content, "text") else content.content.decode()
            for line in text.splitlines():
                if line.strip():
                    key, candidate = self._line(line)
                    if key is not None:
                        out[key] = candidate
        return out

    def _line(self, line: str) -> tuple[str | None, Candidate]:
        try:
            row = json.loads(line)
            key = row["custom_id"]
        except (ValueError, KeyError, TypeError):
            return None, Candidate.from_failure(RequestFailure(None, "unreadable batch line"))
        response = row.get("response") or {}
        status = response.get("status_code")
        error = row.get("error") or (response.get("body") or {}).get("error")
        if status == 200 and not error:
            try:
                return key, self.parse_choice(response.get("body") or {})
            except Malformed as e:
                return key, Candidate.from_failure(RequestFailure(500, f"malformed batch answer: {e}"))
        message = error.get("message", str(error)) if isinstance(error, dict) else str(error or "no answer")
        return key, Candidate.from_failure(RequestFailure(status, message[:200]))

    async def _call(self, call: Any, what: str) -> Any:
        """One file/batch API call with the client's retries; a failure here ends the call with one line."""

        def parse(answer: Any) -> tuple[Any, None]:
            if hasattr(answer, "parse"):
                try:
                    return answer.parse(), None
                except Exception as e:  # noqa: BLE001 - a broken body
                    raise Malformed(f"unreadable answer ({type(e).__name__})") from None
            return answer, None

        out = await self.client.send(call, parse, 0)
        if isinstance(out, RequestFailure):
            raise BackendError(
                f"the Batch API at {self.url} could not {what}: {out}", hint=failure_hint(out, self.api_key_env)
            )
        return out

