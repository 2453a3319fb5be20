"""Any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, TGI, OpenAI) through `openai`.

One request per candidate (n=1, its own seed): many servers ignore `n` together with `seed`. Requests
run concurrently under a semaphore; retries and backoff are the client's own (`max_retries`). The API
key is read from the environment at call time and never stored, logged or put in a cache key.

`score` reads prompt log-probabilities from the completions endpoint (`echo=True, logprobs=1`, one
generated token), as vLLM's OpenAI server and OpenAI's legacy completion models return them. Raw prompts
(`chat=False`) send prompt + continuation as text and take the tokens from the prompt's end on, by their
`text_offset`s (a token that straddles the boundary counts with the continuation). Chat prompts need the
server's rendering of its chat template: they use vLLM's `/tokenize` (messages in, ids out), then send
prompt ids + continuation ids, so the continuation is tokenized alone, as the other backends do.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Coroutine, Sequence, TypeVar

from fewforge.errors import BackendError
from fewforge.generators.base import (
    AdapterRequest,
    Candidate,
    Completion,
    Generator,
    Positions,
    ProgressCallback,
    SamplingParams,
    Score,
    positions,
)

T = TypeVar("T")
DEFAULT_URL = "https://api.openai.com/v1"
_LOCAL_DUMMY_KEY = "sk-no-key-required"  # local servers accept any key; the client insists on one


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, also when the caller is already inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:  # a fresh loop in a worker thread
        return pool.submit(asyncio.run, coro).result()


class OpenAICompatGenerator(Generator):
    """`chat=True` sends chat.completions (instruct models); `chat=False` sends raw completions."""

    backend = "openai"
    supports_scoring = True

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        chat: bool = True,
        concurrency: int = 16,
        max_retries: int = 3,
        timeout: float = 120.0,
        api_key_env: str = "OPENAI_API_KEY",
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.chat = chat
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.api_key_env = api_key_env

    def __repr__(self) -> str:
        return f"OpenAICompatGenerator({self.model!r}, base_url={self.url!r}, chat={self.chat})"

    @property
    def model_id(self) -> str:
        return f"openai:{self.model}"  # no base_url: the same model served elsewhere shares the cache

    def output_options(self) -> dict[str, Any]:
        return {"chat": self.chat}

    @property
    def url(self) -> str:
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_URL

    def _client(self) -> Any:
        try:
            from openai import AsyncOpenAI
        except ImportError:
            raise BackendError(
                "the openai backend needs the openai package", hint="run: pip install openai"
            ) from None
        return AsyncOpenAI(
            api_key=os.environ.get(self.api_key_env) or _LOCAL_DUMMY_KEY,
            base_url=self.url,
            max_retries=self.max_retries,
            timeout=self.timeout,
        )

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

    async def _one(
        self, client: Any, sem: asyncio.Semaphore, prompt: str, params: SamplingParams, seed: int
    ) -> Candidate:
        args = self._request_args(prompt, params, seed)
        create = client.chat.completions.create if self.chat else client.completions.create
        response = await self._call(sem, create, args)
        choice = response.choices[0]
        text = choice.message.content if self.chat else choice.text
        usage = getattr(response, "usage", None)
        return Candidate(
            text=text or "",
            finish_reason="length" if choice.finish_reason == "length" else "stop",
            n_tokens=int(usage.completion_tokens) if usage and usage.completion_tokens else 0,
        )

    async def _call(self, sem: asyncio.Semaphore, create: Any, args: dict[str, Any]) -> Any:
        """One API call under the concurrency limit, its failures as one-line BackendErrors."""
        import openai

        try:
            async with sem:
                return await create(**args)
        except openai.APIConnectionError:  # also covers timeouts, after the client's retries
            raise BackendError(
                f"cannot reach the generator server at {self.url}",
                hint="start the server or fix --generator openai:MODEL@URL",
            ) from None
        except openai.APIStatusError as e:
            raise BackendError(
                f"the generator server at {self.url} answered {e.status_code}: {_short(e)}",
                hint=_status_hint(e.status_code, self.api_key_env),
            ) from None

    async def _generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        start_index: Positions,
        progress: ProgressCallback | None,
    ) -> list[Completion]:
        sem = asyncio.Semaphore(self.concurrency)
        where = positions(start_index, len(prompts))
        async with self._client() as client:

            async def prompt_task(i: int) -> Completion:
                seeds = [params.request_seed(where[i], j) for j in range(params.n)]
                cands = await asyncio.gather(
                    *(self._one(client, sem, prompts[i], params, s) for s in seeds)
                )
                if progress is not None:
                    progress(1)
                return Completion(prompt=prompts[i], candidates=tuple(cands))

            tasks = [asyncio.ensure_future(prompt_task(i)) for i in range(len(prompts))]
            try:
                return list(await asyncio.gather(*tasks))
            finally:
                for task in tasks:  # after a failure, stop the requests still in flight
                    task.cancel()

    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        start_index: Positions = 0,
        progress: ProgressCallback | None = None,
        adapter: AdapterRequest | None = None,
    ) -> list[Completion]:
        self.check_adapter(adapter)
        if not prompts:
            return []
        return run_sync(self._generate(list(prompts), params, start_index, progress))

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
        (see the module docstring); a server that returns none is a one-line BackendError."""
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts for {len(continuations)} continuations")  # a caller bug
        self.check_adapter(adapter)
        if not prompts:
            return []
        return run_sync(self._score(list(prompts), list(continuations), progress))

    async def _score(
        self, prompts: list[str], continuations: list[str], progress: ProgressCallback | None
    ) -> list[Score]:
        sem = asyncio.Semaphore(self.concurrency)
        async with self._client() as client:

            async def pair_task(i: int) -> Score:
                score = await self._score_one(client, sem, prompts[i], continuations[i])
                if progress is not None:
                    progress(1)
                return score

            tasks = [asyncio.ensure_future(pair_task(i)) for i in range(len(prompts))]
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

    async def _score_one(self, client: Any, sem: asyncio.Semaphore, prompt: str, continuation: str) -> Score:
        if not continuation:
            return Score(0.0, 0)
        args: dict[str, Any] = {"model": self.model, "max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 1}
        if self.chat:  # the server renders its chat template: ids through vLLM's /tokenize
            messages = [{"role": "user", "content": prompt}]
            context = await self._tokenize(client, sem, {"messages": messages, "add_generation_prompt": True})
            target = await self._tokenize(client, sem, {"prompt": continuation, "add_special_tokens": False})
            response = await self._call(sem, client.completions.create, {**args, "prompt": context + target})
            logprobs = getattr(response.choices[0].logprobs, "token_logprobs", None) or []
            values = logprobs[len(context) : len(context) + len(target)]
            if len(values) < len(target) or any(v is None for v in values):
                raise self._no_logprobs()
            return Score(logprob=float(sum(values)), n_tokens=len(target))
        text = prompt + continuation
        response = await self._call(sem, client.completions.create, {**args, "prompt": text})
        choice = response.choices[0]
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

    async def _tokenize(self, client: Any, sem: asyncio.Semaphore, body: dict[str, Any]) -> list[int]:
        """Token ids from vLLM's /tokenize (at the server's root, beside /v1)."""
        import openai

        root = self.url.rstrip("/").removesuffix("/v1")
        try:
            async with sem:
                payload = await client.post(f"{root}/tokenize", cast_to=object, body={"model": self.model, **body})
        except openai.APIConnectionError:
            raise BackendError(
                f"cannot reach the generator server at {self.url}",
                hint="start the server or fix --generator openai:MODEL@URL",
            ) from None
        except openai.APIStatusError:
            payload = None  # no such endpoint, or another request shape: not vLLM's /tokenize
        tokens = payload.get("tokens") if isinstance(payload, dict) else None
        if not isinstance(tokens, list) or not tokens:
            raise BackendError(
                f"the server at {self.url} cannot tokenize chat prompts (no vLLM /tokenize), so it cannot score "
                "continuations of chat prompts",
                hint="score raw prompts (chat=False), through a vLLM OpenAI server, or through --generator hf:MODEL",
            )
        return [int(t) for t in tokens]


def _short(error: Any) -> str:
    body = getattr(error, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message", message)
    return (str(message or error).strip().splitlines() or [""])[0][:200]


def _status_hint(status: int, key_env: str) -> str:
    if status in (401, 403):
        return f"set the API key in the environment variable {key_env}"
    if status == 404:
        return "check the model name (GET <url>/models lists what the server serves)"
    if status == 429:
        return "the server is rate limiting: lower concurrency or raise max_retries"
    return "check the server logs and the sampling parameters"
