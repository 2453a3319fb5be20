"""Any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, TGI, OpenAI) through `openai`.

One request per candidate (n=1, its own seed): many servers ignore `n` together with `seed`. Requests go
through `OpenAIClient` (openai_client.py): our own retries and backoff, rate limits (`rpm`, `tpm`,
`concurrency`, tightened by the server's `x-ratelimit-*` headers), a cool-down shared by every request
after a 429, and several servers of one model (`MODEL@URL1,URL2`, the same cache identity as one URL). A
request that fails for good comes back as a failed candidate with the server's message: it never takes
the call's other requests down. OPENAI_API_KEY goes only to OpenAI's own host; other servers get a key
only through `api_key_env`; credentials written inside a URL are used but never shown.

`score` reads prompt log-probabilities from the completions endpoint (`echo=True, logprobs=1`, one
generated token), as vLLM's OpenAI server and OpenAI's legacy completion models return them. Raw prompts
(`chat=False`) send prompt + continuation as text and take the tokens from the prompt's end on, by their
`text_offset`s (a token that straddles the boundary counts with the continuation). Chat prompts need the
server's rendering of its chat template: they use vLLM's `/tokenize` (messages in, ids out), then send
prompt ids + continuation ids, so the continuation is tokenized alone, as the other backends do.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Sequence

from fewforge.errors import BackendError
from fewforge.generators import urls as urltools
from fewforge.generators.base import (
    AdapterRequest,
    Candidate,
    CandidateCallback,
    Completion,
    Generator,
    Positions,
    ProgressCallback,
    RequestFailure,
    SamplingParams,
    Score,
    positions,
)
from fewforge.generators.openai_client import (
    RETRYABLE_STATUS,
    Endpoint,
    Malformed,
    OpenAIClient,
    run_sync,
    status_hint,
)

DEFAULT_URL = urltools.OPENAI_URL
__all__ = ["DEFAULT_URL", "RETRYABLE_STATUS", "Malformed", "OpenAICompatGenerator", "run_sync"]


class OpenAICompatGenerator(Generator):
    """`chat=True` sends chat.completions (instruct models); `chat=False` sends raw completions."""

    backend = "openai"
    supports_scoring = True
    reports_candidates = True

    def __init__(
        self,
        model: str,
        *,
        base_url: str | list[str] | None = None,
        chat: bool = True,
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
        self.model = model
        self.chat = chat
        self.client = OpenAIClient(
            urltools.split_urls(base_url), concurrency=concurrency, rpm=rpm, tpm=tpm, max_attempts=max_attempts,
            timeout=timeout, deadline=deadline, backoff=backoff, backoff_cap=backoff_cap, api_key_env=api_key_env,
        )
        self.urls = urltools.split_urls(base_url)  # as given (empty: OPENAI_BASE_URL or OpenAI's own)
        self.api_key_env = api_key_env

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model!r}, base_url={self.client.shown!r}, chat={self.chat})"

    @property
    def model_id(self) -> str:
        return f"openai:{self.model}"  # no URL: the same model served elsewhere shares the cache

    def output_options(self) -> dict[str, Any]:
        return {"chat": self.chat}

    @property
    def url(self) -> str:
        """The first server's URL, redacted (for messages)."""
        return self.client.url

    @property
    def endpoints(self) -> list[Endpoint]:
        return self.client.endpoints

    def limits(self) -> dict[str, Any]:
        return self.client.limits()

    # -- generation ------------------------------------------------------------------------------------
    def _request_args(self, prompt: str, params: SamplingParams, seed: int) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": seed,
            "n": 1,
        }
        if params.stop:
            args["stop"] = list(params.stop)
        extra: dict[str, Any] = {}
        if params.top_k > 0:  # sent only when set: OpenAI itself rejects unknown fields
            extra["top_k"] = params.top_k
        if params.repetition_penalty != 1.0:
            extra["repetition_penalty"] = params.repetition_penalty  # vLLM, TGI
            extra["repeat_penalty"] = params.repetition_penalty  # llama.cpp server, Ollama
        if extra:
            args["extra_body"] = extra
        if self.chat:
            args["messages"] = [{"role": "user", "content": prompt}]
        else:
            args["prompt"] = prompt
        return args

    def request_body(self, prompt: str, params: SamplingParams, seed: int) -> dict[str, Any]:
        """The JSON body of one request as the server receives it (the Batch API's `body`)."""
        args = self._request_args(prompt, params, seed)
        return {**{k: v for k, v in args.items() if k != "extra_body"}, **args.get("extra_body", {})}

    def parse_choice(self, response: Any) -> Candidate:
        """A candidate from a parsed completion (SDK object or plain dict); Malformed when it has none."""
        try:
            get = (lambda o, k: o.get(k)) if isinstance(response, dict) else getattr
            choice = get(response, "choices")[0]
            if self.chat:
                message = get(choice, "message")
                text = get(message, "content")
            else:
                text = get(choice, "text")
            finish = get(choice, "finish_reason")
            usage = get(response, "usage")
        except (AttributeError, IndexError, KeyError, TypeError) as e:
            raise Malformed(f"no completion in the answer ({type(e).__name__})") from None
        if text is not None and not isinstance(text, str):
            raise Malformed("the completion is not text")
        get_usage = (lambda k: usage.get(k)) if isinstance(usage, dict) else (lambda k: getattr(usage, k, None))
        completion_tokens = get_usage("completion_tokens") if usage else None
        prompt_tokens = get_usage("prompt_tokens") if usage else None
        return Candidate(
            text=text or "",
            finish_reason="length" if finish == "length" else "stop",
            n_tokens=int(completion_tokens or 0),
            prompt_tokens=int(prompt_tokens) if prompt_tokens is not None else None,
        )

    def _parse_generation(self, answer: Any) -> tuple[Candidate, int | None]:
        try:
            response = answer.parse()
        except Exception as e:  # noqa: BLE001 - whatever the SDK makes of a broken body, it is malformed
            raise Malformed(f"unreadable body ({type(e).__name__})") from None
        cand = self.parse_choice(response)
        used = (cand.prompt_tokens or 0) + cand.n_tokens if cand.prompt_tokens is not None else None
        return cand, used

    def estimated_tokens(self, prompt: str, params: SamplingParams) -> int:
        """A request's token cost before it is sent (for `tpm`): ~4 characters a token, plus max_tokens."""
        return len(prompt) // 4 + 8 + params.max_new_tokens

    async def _one(self, prompt: str, params: SamplingParams, seed: int) -> Candidate:
        args = self._request_args(prompt, params, seed)

        def call(client: Any) -> Awaitable[Any]:
            api = client.chat.completions if self.chat else client.completions
            return api.with_raw_response.create(**args)

        out = await self.client.send(call, self._parse_generation, self.estimated_tokens(prompt, params))
        return Candidate.from_failure(out) if isinstance(out, RequestFailure) else out

    async def _generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        start_index: Positions,
        progress: ProgressCallback | None,
        on_candidate: CandidateCallback | None,
    ) -> list[Completion]:
        where = positions(start_index, len(prompts))
        left = [params.n] * len(prompts)

        async def candidate_task(i: int, j: int) -> Candidate:
            cand = await self._one(prompts[i], params, params.request_seed(where[i], j))
            if on_candidate is not None:
                on_candidate(i, j, cand)
            left[i] -= 1
            if left[i] == 0 and progress is not None:
                progress(1)
            return cand

        tasks = [
            asyncio.ensure_future(candidate_task(i, j)) for i in range(len(prompts)) for j in range(params.n)
        ]
        try:
            results = await asyncio.gather(*tasks)
        finally:
            for task in tasks:  # after an exception (the caller's failure budget), stop what is in flight
                task.cancel()
        return [
            Completion(prompt=p, candidates=tuple(results[i * params.n : (i + 1) * params.n]))
            for i, p in enumerate(prompts)
        ]

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
        prompts = list(prompts)
        return run_sync(self.client.session(lambda: self._generate(prompts, params, start_index, progress, on_candidate)))

    # -- scoring -----------------------------------------------------------------------------------
    def score(
        self,
        prompts: Sequence[str],
        continuations: Sequence[str],
        *,
        adapter: AdapterRequest | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[Score]:
        """Log-probabilities of continuations (Generator.score) from the server's prompt log-probabilities
        (see the module docstring); a server that returns none is a one-line BackendError, and so is a
        pair whose request failed for good (a score cannot be left out the way a row can)."""
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts for {len(continuations)} continuations")  # a caller bug
        self.check_adapter(adapter)
        if not prompts:
            return []
        pairs = list(zip(prompts, continuations))
        return run_sync(self.client.session(lambda: self._score(pairs, progress)))

    async def _score(self, pairs: list[tuple[str, str]], progress: ProgressCallback | None) -> list[Score]:
        async def pair_task(prompt: str, continuation: str) -> Score:
            score = await self._score_one(prompt, continuation)
            if progress is not None:
                progress(1)
            return score

        tasks = [asyncio.ensure_future(pair_task(p, c)) for p, c in pairs]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:  # after a failure, stop the requests still in flight
                task.cancel()

    def _no_logprobs(self) -> BackendError:
        return BackendError(
            f"the server at {self.url} returned no log-probabilities for prompt tokens "
            "(completions with echo=True, logprobs=1), so it cannot score continuations",
            hint="score through a vLLM OpenAI server, or through the transformers backend: --generator hf:MODEL",
        )

    async def _echo(self, prompt: Any, tokens: int) -> Any:
        """One completions request that echoes `prompt` with its tokens' log-probabilities."""
        args: dict[str, Any] = {"model": self.model, "max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 1}

        def parse(answer: Any) -> tuple[Any, int | None]:
            try:
                response = answer.parse()
                return response.choices[0], None
            except Exception as e:  # noqa: BLE001 - a broken body
                raise Malformed(f"no completion in the answer ({type(e).__name__})") from None

        out = await self.client.send(
            lambda client: client.completions.with_raw_response.create(**args, prompt=prompt), parse, tokens
        )
        if isinstance(out, RequestFailure):
            raise BackendError(
                f"scoring failed at {self.url}: {out}", hint=status_hint(out.status, self.api_key_env)
            )
        return out

    async def _score_one(self, prompt: str, continuation: str) -> Score:
        if not continuation:
            return Score(0.0, 0)
        if self.chat:  # the server renders its chat template: ids through vLLM's /tokenize
            messages = [{"role": "user", "content": prompt}]
            context = await self._tokenize({"messages": messages, "add_generation_prompt": True})
            target = await self._tokenize({"prompt": continuation, "add_special_tokens": False})
            choice = await self._echo(context + target, len(context) + len(target) + 1)
            logprobs = getattr(choice.logprobs, "token_logprobs", None) or []
            values = logprobs[len(context) : len(context) + len(target)]
            if len(values) < len(target) or any(v is None for v in values):
                raise self._no_logprobs()
            return Score(logprob=float(sum(values)), n_tokens=len(target))
        text = prompt + continuation
        choice = await self._echo(text, len(text) // 4 + 9)
        offsets = getattr(choice.logprobs, "text_offset", None)
        logprobs = getattr(choice.logprobs, "token_logprobs", None)
        if not offsets or not logprobs or not (choice.text or "").startswith(text):  # echo ignored
            raise self._no_logprobs()
        ends = [*offsets[1:], len(choice.text)]
        # the continuation's tokens: from the one that covers its first character, up to the generated one
        picked = [lp for start, end, lp in zip(offsets, ends, logprobs) if end > len(prompt) and start < len(text)]
        if not picked or any(v is None for v in picked):
            raise BackendError(
                f"the server at {self.url} gave no log-probability for the first token of a continuation",
                hint="score continuations of a non-empty prompt",
            )
        return Score(logprob=float(sum(picked)), n_tokens=len(picked))

    async def _tokenize(self, body: dict[str, Any]) -> list[int]:
        """Token ids from vLLM's /tokenize (at the server's root, beside /v1)."""
        def call(client: Any) -> Awaitable[Any]:
            root = str(client.base_url).rstrip("/").removesuffix("/v1")
            return client.post(f"{root}/tokenize", cast_to=object, body={"model": self.model, **body})

        def parse(payload: Any) -> tuple[Any, int | None]:
            return payload, None

        out = await self.client.send(call, parse, 0)
        payload = None if isinstance(out, RequestFailure) else out
        if isinstance(out, RequestFailure) and out.status is None:
            raise BackendError(
                f"cannot reach the generator server at {self.url}",
                hint="start the server or fix --generator openai:MODEL@URL",
            )
        tokens = payload.get("tokens") if isinstance(payload, dict) else None
        if not isinstance(tokens, list) or not tokens:
            raise BackendError(
                f"the server at {self.url} cannot tokenize chat prompts (no vLLM /tokenize), so it cannot score "
                "continuations of chat prompts",
                hint="score raw prompts (chat=False), through a vLLM OpenAI server, or through --generator hf:MODEL",
            )
        return [int(t) for t in tokens]


def failure_hint(failure: RequestFailure | None, key_env: str | None = None) -> str:
    """What to do about a request that failed for good (for the one-line error of a failed call)."""
    return status_hint(failure.status if failure else None, key_env)
