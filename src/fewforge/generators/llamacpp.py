"""GGUF models through xllamacpp: llama.cpp's server, embedded in-process (the default backend).

Requests are submitted from a thread pool as wide as the server's slots, so llama.cpp's continuous
batching decodes them together (~260 tok/s aggregate for SmolLM2 on 2 cores vs ~150 one at a time).
Same seed gives the same text, also under batching.

`score` forces the continuation's tokens with a token-level grammar (`root ::= <[id]> <[id]> ...`) and
reads each forced token's log-probability, which llama.cpp reports from the raw logits, before grammar
and sampling (`post_sampling_probs` off). llama.cpp's server has no other way to score given text: it
ignores `echo` (no prompt log-probabilities), and forcing the text with a plain grammar lets the model
pick an unusual tokenization of it (" banana" as " " + "b" + "anan"). The continuation's ids come from
the GGUF's tokenizer read by transformers (a few seconds, once), since the embedded server exposes no
tokenize call.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from fewforge.errors import BackendError
from fewforge.generators._gguf import file_id, has_chat_template, require_file
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


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))  # respects CPU pinning / containers
    except AttributeError:  # not on Linux
        return os.cpu_count() or 2


def import_xllamacpp() -> Any:
    """Import xllamacpp with OpenMP workers that sleep instead of spin while waiting.

    ggml runs on OpenMP; with the default (spinning) wait policy a busy machine made decoding 5-10x
    slower (3-5 vs 30-70 tok/s measured with other processes on the 2 cores). libgomp reads the
    variable once, when it is first loaded; an explicit user setting wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import xllamacpp
    except ImportError:
        raise BackendError(
            "the llama.cpp backend needs the xllamacpp package", hint="run: pip install xllamacpp"
        ) from None
    return xllamacpp


class LlamaCppGenerator(Generator):
    """A GGUF file served by an embedded llama.cpp with `n_parallel` decoding slots.

    `chat=None` picks chat completions when the GGUF has a chat template and raw text completion
    otherwise (a base model such as Gemma 3 270M produces garbage through llama.cpp's ChatML fallback).

    llama.cpp's server keeps host memory for every generated token and never returns it (measured: ~2 MB
    per 64-token SmolLM2 request, not reclaimed by malloc_trim; ggml-org/llama.cpp#25740, #25953), which
    would take a 200k-row ZeroGen run far past any machine's memory. So the server is rebuilt every
    `recycle_every` requests (0.3 s for SmolLM2); outputs do not change, since every request carries its
    own seed.
    """

    backend = "llamacpp"
    supports_scoring = True
    reports_candidates = True

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_parallel: int = 16,
        n_ctx_per_slot: int = 1024,  # a SQuAD paragraph + instruction + answer fits; 16 slots of SmolLM2 KV: ~0.4 GB
        n_threads: int | None = None,
        chat: bool | None = None,
        recycle_every: int = 500,
    ) -> None:
        self.model_path = Path(model_path).expanduser()
        self.n_parallel = n_parallel
        self.n_ctx_per_slot = n_ctx_per_slot
        self.n_threads = n_threads or default_threads()
        self.recycle_every = recycle_every
        self._chat = chat
        self._server: Any = None
        self._served = 0  # requests answered by the current server
        self._lock = threading.Lock()
        self._tokenizer: Any = None  # the GGUF's tokenizer through transformers, loaded for `score` only

    def __repr__(self) -> str:
        return f"LlamaCppGenerator({str(self.model_path)!r}, n_parallel={self.n_parallel})"

    @property
    def model_id(self) -> str:
        return file_id(self.model_path)

    def output_options(self) -> dict[str, Any]:
        return {"chat": self.chat}  # the chat template on or off: different text for the same prompt

    @property
    def chat(self) -> bool:
        """Whether prompts go through the model's chat template (resolved from the GGUF when auto)."""
        if self._chat is None:
            self._chat = has_chat_template(require_file(self.model_path))
        return self._chat

    def load(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            path = require_file(self.model_path)
            _ = self.chat  # resolve auto chat mode before serving
            xlc = import_xllamacpp()

            p = xlc.CommonParams()
            p.model.path = str(path)
            p.n_parallel = self.n_parallel
            p.n_ctx = self.n_ctx_per_slot * self.n_parallel  # shared by all slots
            p.cpuparams.n_threads = self.n_threads
            p.cpuparams_batch.n_threads = self.n_threads
            p.warmup = False
            p.verbosity = 0  # llama.cpp logs to fd 2 from C++; Python cannot redirect them
            try:
                self._server = xlc.Server(p)
            except RuntimeError as e:
                raise BackendError(
                    f"llama.cpp could not load {path}: {str(e).splitlines()[0]}",
                    hint="check that the file is a complete GGUF model (re-download or re-assemble it)",
                ) from None

    def close(self) -> None:
        with self._lock:
            self._server = None  # dropping the Server frees the model, its context and what it leaked
            self._served = 0

    def _request(self, prompt: str, params: SamplingParams, seed: int) -> Candidate:
        """One completion; a request llama.cpp rejects (a prompt longer than its slot) is a failed
        candidate with llama.cpp's message, not an error that ends the call."""
        try:
            return self._complete(prompt, params, seed)
        except BackendError as e:
            return Candidate.from_failure(RequestFailure(400, f"{e.message} ({e.hint})" if e.hint else e.message))

    def _complete(self, prompt: str, params: SamplingParams, seed: int) -> Candidate:
        body: dict[str, Any] = {
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_k": params.top_k,  # 0 disables, as in SamplingParams
            "top_p": params.top_p,
            "min_p": 0.0,  # llama.cpp defaults to 0.05; keep sampling exactly what the params say
            "repeat_penalty": params.repetition_penalty,
            "seed": seed,
            "stop": list(params.stop),
        }
        try:
            if self.chat:
                body["messages"] = [{"role": "user", "content": prompt}]
                response = self._server.handle_chat_completions(body)
            else:
                body["prompt"] = prompt
                response = self._server.handle_completions(body)
        except ValueError as e:  # xllamacpp's answer to a malformed request
            raise BackendError(f"llama.cpp rejected a request: {e}") from None
        if "error" in response:
            error = response["error"]
            message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
            raise BackendError(
                f"llama.cpp rejected a request: {message}",
                hint="shorten the prompt or max_new_tokens, or raise n_ctx_per_slot",
            )
        choice = response["choices"][0]
        text = choice["message"]["content"] if self.chat else choice["text"]
        usage = response.get("usage") or {}
        return Candidate(
            text=text or "",
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            n_tokens=int(usage["completion_tokens"]),
            prompt_tokens=int(usage["prompt_tokens"]) if usage.get("prompt_tokens") is not None else None,
        )

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
        n = params.n
        where = positions(start_index, len(prompts))
        results: list[list[Candidate | None]] = [[None] * n for _ in prompts]
        remaining = [n] * len(prompts)
        done_lock = threading.Lock()

        def run(i: int, j: int) -> None:
            seed = params.request_seed(where[i], j)
            results[i][j] = candidate = self._request(prompts[i], params, seed)
            if on_candidate is not None:
                on_candidate(i, j, candidate)
            with done_lock:
                remaining[i] -= 1
                finished = remaining[i] == 0
            if finished and progress is not None:
                progress(1)

        # Prompt-major submission: slots work through prompts roughly in order.
        self._serve([lambda i=i, j=j: run(i, j) for i in range(len(prompts)) for j in range(n)])
        return [
            Completion(prompt=prompt, candidates=tuple(c for c in cands if c is not None))
            for prompt, cands in zip(prompts, results)
        ]

    def _serve(self, jobs: list[Any], width: int | None = None) -> None:
        """Run request callables on the server's slots, in runs of at most `recycle_every`, with a fresh
        server whenever the current one has served that many (see the class docstring)."""
        while jobs:
            if self.recycle_every and self._served >= self.recycle_every:
                self.close()  # bound llama.cpp's per-token memory growth
            self.load()
            budget = self.recycle_every - self._served if self.recycle_every else len(jobs)
            run_of, jobs = jobs[:budget], jobs[budget:]
            with ThreadPoolExecutor(max_workers=width or self.n_parallel) as pool:
                futures = [pool.submit(job) for job in run_of]
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    for future in futures:  # fail fast: drop the queued requests
                        future.cancel()
                    raise
            self._served += len(run_of)

    # -- scoring -----------------------------------------------------------------------------------
    def score(
        self,
        prompts: Sequence[str],
        continuations: Sequence[str],
        *,
        adapter: AdapterRequest | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[Score]:
        """Log-probabilities of continuations (Generator.score), each as a request that must generate
        exactly the continuation's tokens (see the module docstring). The prompt goes through the same
        endpoint as in `generate` (chat template or raw), so it is rendered as a generation request's is;
        the continuation is tokenized alone, with no special tokens. Requests run one at a time and
        recompute their prompt: llama.cpp's logits move with what shares a batch and with reused prompt
        prefixes (one RTE row scored 0.579 after other rows, 0.502 fresh, flipping a near-tie's label), and
        a score must not depend on what the server did before. It costs ~10 % on RTE (60 rows: 34 s vs 38 s)."""
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts for {len(continuations)} continuations")  # a caller bug
        self.check_adapter(adapter)
        ids = [self._continuation_ids(c) for c in continuations]
        scores: list[Score] = [Score(0.0, 0)] * len(prompts)
        done_lock = threading.Lock()

        def run(i: int) -> None:
            scores[i] = self._score_request(prompts[i], ids[i])
            if progress is not None:
                with done_lock:
                    progress(1)

        if progress is not None and any(not t for t in ids):
            progress(sum(not t for t in ids))  # an empty continuation scores 0 without a request
        self._serve([lambda i=i: run(i) for i in range(len(prompts)) if ids[i]], width=1)
        return scores

    def _text_tokenizer(self) -> Any:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    self._tokenizer = _gguf_tokenizer(require_file(self.model_path))
        return self._tokenizer

    def count_tokens(self, prompts: Sequence[str]) -> list[int] | None:
        tokenizer = self._text_tokenizer()
        if self.chat:
            rendered = [
                tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
                for p in prompts
            ]
            return [len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in rendered]
        return [len(tokenizer(p)["input_ids"]) for p in prompts]

    def _continuation_ids(self, text: str) -> list[int]:
        if not text:
            return []
        ids = list(self._text_tokenizer()(text, add_special_tokens=False)["input_ids"])
        end = {self._tokenizer.eos_token_id, self._tokenizer.pad_token_id} - {None}  # loaded above
        if end & set(ids):  # llama.cpp stops at an end-of-generation token: it cannot be forced
            raise BackendError(
                f"llama.cpp cannot score a continuation holding an end-of-sequence token: {text[:60]!r}",
                hint="score it through the transformers backend: --generator hf:smollm2 (or hf:MODEL)",
            )
        return ids

    def _score_request(self, prompt: str, ids: list[int]) -> Score:
        body: dict[str, Any] = {
            "max_tokens": len(ids),
            "temperature": 0.0,  # greedy among the one token the grammar allows
            "top_k": 0,
            "top_p": 1.0,
            "min_p": 0.0,
            "repeat_penalty": 1.0,
            "seed": 0,
            "grammar": "root ::= " + " ".join(f"<[{t}]>" for t in ids),
            "post_sampling_probs": False,  # the model's own probabilities, not the grammar-masked ones
            "cache_prompt": False,
        }
        try:
            if self.chat:
                body.update(messages=[{"role": "user", "content": prompt}], logprobs=True, top_logprobs=1)
                response = self._server.handle_chat_completions(body)
            else:
                body.update(prompt=prompt, logprobs=1)
                response = self._server.handle_completions(body)
        except ValueError as e:  # xllamacpp's answer to a malformed request
            raise BackendError(f"llama.cpp rejected a scoring request: {e}") from None
        if "error" in response:
            error = response["error"]
            message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
            raise BackendError(
                f"llama.cpp could not score a continuation: {str(message).splitlines()[0][:200]}",
                hint="shorten the prompt or raise n_ctx_per_slot; or score through --generator hf:MODEL",
            )
        content = ((response["choices"][0].get("logprobs") or {}).get("content")) or []
        got = [t.get("id") for t in content]
        if got != ids:  # the grammar was not honoured: never return the score of other tokens
            raise BackendError(
                f"llama.cpp generated tokens {got[:8]} instead of the continuation's {ids[:8]} while scoring",
                hint="score through the transformers backend: --generator hf:MODEL",
            )
        return Score(logprob=float(sum(t["logprob"] for t in content)), n_tokens=len(ids))


def _gguf_tokenizer(path: Path) -> Any:
    """The GGUF's own tokenizer as transformers reads it (the same vocabulary and merges llama.cpp uses)."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise BackendError(
            "scoring through llama.cpp needs transformers (to tokenize continuations)",
            hint="run: pip install transformers gguf",
        ) from None
    try:
        converted = _converted_dir(path)  # hf:smollm2's dequantized copy, if made: 0.3 s instead of ~3-6 s
        if converted is not None:
            return AutoTokenizer.from_pretrained(str(converted))
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except (OSError, ValueError, KeyError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise BackendError(
            f"cannot read the tokenizer of {path} to score continuations: {first}",
            hint="score through the transformers backend: --generator hf:PATH.gguf",
        ) from None


def _converted_dir(path: Path) -> Path | None:
    """The transformers directory `fewforge.packaged.lm_source` dequantized this very GGUF into, if any."""
    from fewforge.generators.hf import _converted_from
    from fewforge.packaged import cache_root

    name, _, digest = file_id(path).partition("@")
    target = cache_root() / "models" / f"{Path(name).stem}-{digest}"
    return target if _converted_from(target) == file_id(path) else None
