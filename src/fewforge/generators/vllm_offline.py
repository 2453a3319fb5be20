"""vLLM's offline engine (`vllm:MODEL_OR_DIR`, extra `fewforge[vllm]`), in a spawned child process.

The engine lives in a child so that `close()` frees the GPU (vLLM keeps its memory for the life of
the process that built it). Every cache miss of a call goes to the engine in one `LLM.generate`, each
request with its own `SamplingParams(seed=...)`, so the engine batches them as it likes; the cache is
what keeps results stable, since vLLM's outputs for one seed can depend on what it batched them with
(docs/fidelity.md). Adapters ride along per request: a LoRA folder as a `LoRARequest` whose integer id
is derived from the adapter's content hash; a soft prompt placed on the input embeddings
(`placement: prompt`) as `prompt_embeds` (the label's vectors, then the embeddings of the raw text).
Per-layer prefixes (`placement: prefix`) cannot be expressed to vLLM: a one-line error names the `hf:`
backend. `score` sends prompt + continuation ids with `prompt_logprobs` and sums the continuation's.

The engine is started with LoRA or prompt-embedding support only when a request needs it (a restart,
logged), since both cost memory. Any message the child sends back is plain data (lists, strings).
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
from pathlib import Path
from typing import Any, Sequence

from fewforge.errors import BackendError
from fewforge.generators.base import (
    AdapterRequest,
    Candidate,
    CandidateCallback,
    Completion,
    Generator,
    Positions,
    ProgressCallback,
    SamplingParams,
    Score,
    positions,
)

log = logging.getLogger("fewforge")
INSTALL_HINT = "run: pip install 'fewforge[vllm]' on a machine with a GPU (vLLM ships CUDA wheels only)"


def lora_int_id(adapter: AdapterRequest) -> int:
    """vLLM's integer adapter id, stable for one adapter content (1 .. 2^31-1)."""
    digest = adapter.content_hash.split(":")[1]
    return int(digest[:7], 16) + 1


class VLLMGenerator(Generator):
    backend = "vllm"
    supports_adapters = True
    supports_scoring = True
    reports_candidates = True
    whole_calls = True  # every miss of a call in one LLM.generate: the engine schedules the batch

    def __init__(
        self,
        model: str,
        *,
        chat: bool = True,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
        max_lora_rank: int = 16,
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.chat = chat
        self.engine_kwargs: dict[str, Any] = {
            "model": model,
            "dtype": dtype,
            "gpu_memory_utilization": gpu_memory_utilization,
            "tensor_parallel_size": tensor_parallel_size,
            "max_lora_rank": max_lora_rank,
            **({"max_model_len": max_model_len} if max_model_len else {}),
            **(engine_options or {}),
        }
        self.needs = {"enable_lora": False, "enable_prompt_embeds": False}
        self._proc: Any = None
        self._conn: Any = None
        self._model_id: str | None = None

    def __repr__(self) -> str:
        return f"VLLMGenerator({self.model!r}, chat={self.chat})"

    @property
    def model_id(self) -> str:
        if self._model_id is None:
            path = Path(self.model)
            if path.is_dir():
                from fewforge.generators.hf_loading import dir_id

                self._model_id = dir_id(path)
            else:
                self._model_id = self.model  # a hub id, as the user pinned it
        return self._model_id

    def output_options(self) -> dict[str, Any]:
        return {"chat": self.chat}

    # -- the child process ------------------------------------------------------------------------------
    def load(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        if importlib.util.find_spec("vllm") is None:
            raise BackendError("the vllm backend needs the vllm package, which is not installed", hint=INSTALL_HINT)
        ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        self._conn, child = ctx.Pipe()
        kwargs = {**self.engine_kwargs, **{k: True for k, on in self.needs.items() if on}}
        self._proc = ctx.Process(target=serve, args=(child, kwargs, self.chat), daemon=True)
        self._proc.start()
        child.close()
        self._expect()  # ("ready", ...) or the engine's one-line error

    def close(self) -> None:
        if self._proc is None:
            return
        try:
            self._conn.send(("close",))
        except (OSError, EOFError):
            pass
        self._proc.join(timeout=60)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=10)
        self._conn.close()
        self._proc = self._conn = None

    def _expect(self) -> Any:
        try:
            status, payload = self._conn.recv()
        except (EOFError, OSError):
            code = self._proc.exitcode if self._proc is not None else None
            self.close()
            raise BackendError(f"the vLLM engine process ended (exit code {code})", hint=INSTALL_HINT) from None
        if status == "error":
            self.close()
            raise BackendError(f"vLLM: {payload}", hint="check the model path, GPU memory and engine options")
        return payload

    def _ask(self, *message: Any) -> Any:
        self.load()
        self._conn.send(message)
        return self._expect()

    def _require(self, adapter: AdapterRequest | None) -> dict[str, Any] | None:
        """The adapter as the child takes it, restarting the engine with what the adapter needs."""
        if adapter is None:
            return None
        need = "enable_lora" if adapter.kind == "lora" else "enable_prompt_embeds"
        if adapter.kind == "soft-prompt":
            _check_soft_prompt(adapter)
        if not self.needs[need]:
            log.info("restarting the vLLM engine with %s for adapter %s", need, adapter.name)
            self.needs[need] = True
            self.close()
        return {
            "kind": adapter.kind,
            "name": adapter.name,
            "path": str(adapter.path),
            "label": adapter.label,
            "id": lora_int_id(adapter),
        }

    # -- the generator contract ---------------------------------------------------------------------------
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
        sent = self._require(adapter)
        where = positions(start_index, len(prompts))
        sampling = {k: v for k, v in params.to_dict().items() if k not in ("seed", "n")}
        requests = [
            {"prompt": p, "seed": params.request_seed(where[i], j), "adapter": sent}
            for i, p in enumerate(prompts)
            for j in range(params.n)
        ]
        answers = self._ask("generate", requests, sampling)
        out = []
        for i, prompt in enumerate(prompts):
            cands = []
            for j in range(params.n):
                text, finish, n_tokens, prompt_tokens = answers[i * params.n + j]
                cand = Candidate(text=text, finish_reason="length" if finish == "length" else "stop",
                                 n_tokens=n_tokens, prompt_tokens=prompt_tokens)
                if on_candidate is not None:
                    on_candidate(i, j, cand)
                cands.append(cand)
            out.append(Completion(prompt=prompt, candidates=tuple(cands)))
        if progress is not None:
            progress(len(prompts))
        return out

    def score(
        self,
        prompts: Sequence[str],
        continuations: Sequence[str],
        *,
        adapter: AdapterRequest | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[Score]:
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts for {len(continuations)} continuations")  # a caller bug
        self.check_adapter(adapter)
        if adapter is not None and adapter.kind == "soft-prompt":
            raise BackendError(
                "the vllm backend cannot score under a soft prompt (vLLM gives no prompt log-probabilities "
                "for prompt embeddings)",
                hint="score through the transformers backend: --generator hf:MODEL",
            )
        if not prompts:
            return []
        sent = self._require(adapter)
        answers = self._ask("score", list(zip(prompts, continuations)), sent)
        if progress is not None:
            progress(len(prompts))
        return [Score(logprob=lp, n_tokens=n) for lp, n in answers]


def _check_soft_prompt(adapter: AdapterRequest) -> None:
    from safetensors import safe_open

    with safe_open(str(adapter.path), framework="pt") as f:
        placement = (f.metadata() or {}).get("placement", "")
    if placement != "prompt":
        raise BackendError(
            f"adapter {adapter.name!r}: vLLM takes soft prompts on the input embeddings only (placement: prompt), "
            f"and this one is a per-layer prefix ({placement or 'unknown'})",
            hint="generate with per-layer prefixes through the transformers backend: --generator hf:MODEL",
        )


# -- in the child process ----------------------------------------------------------------------------------


def serve(conn: Any, engine_kwargs: dict[str, Any], chat: bool) -> None:
    """The child: build the engine, then answer ("generate" | "score" | "close", ...) messages."""
    try:
        from vllm import LLM

        engine = _Engine(LLM(**engine_kwargs), engine_kwargs["model"], chat)
    except Exception as exc:  # noqa: BLE001 - the parent shows it as one line
        conn.send(("error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message[0] == "close":
            return
        try:
            handler = engine.generate if message[0] == "generate" else engine.score
            conn.send(("ok", handler(*message[1:])))
        except Exception as exc:  # noqa: BLE001
            conn.send(("error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))


class _Engine:
    def __init__(self, llm: Any, model: str, chat: bool) -> None:
        self.llm, self.model, self.chat = llm, model, chat
        self.tokenizer = llm.get_tokenizer()
        self._embeddings: Any = None
        self._prompts: dict[str, Any] = {}

    def render(self, prompt: str, adapter: dict[str, Any] | None) -> str:
        """As every backend renders a request: the chat template unless an adapter is sent."""
        if self.chat and adapter is None:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        return prompt

    def _input(self, prompt: str, adapter: dict[str, Any] | None) -> Any:
        if adapter is None or adapter["kind"] == "lora":
            return self.render(prompt, adapter)
        import torch

        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        embedded = self.embeddings()[torch.tensor(ids, dtype=torch.long)]
        soft = self.soft_prompt(adapter["path"])[adapter["label"]].to(embedded.dtype)
        return {"prompt_embeds": torch.cat([soft, embedded], dim=0)}

    def _lora(self, adapter: dict[str, Any] | None) -> Any:
        if adapter is None or adapter["kind"] != "lora":
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest(adapter["name"], adapter["id"], adapter["path"])

    def generate(self, requests: list[dict[str, Any]], sampling: dict[str, Any]) -> list[tuple]:
        from vllm import SamplingParams as VLLMParams

        params = [
            VLLMParams(
                n=1,
                temperature=sampling["temperature"],
                top_p=sampling["top_p"],
                top_k=sampling["top_k"] if sampling["top_k"] > 0 else -1,
                max_tokens=sampling["max_new_tokens"],
                stop=list(sampling["stop"]) or None,
                repetition_penalty=sampling["repetition_penalty"],
                seed=r["seed"],
            )
            for r in requests
        ]
        inputs = [self._input(r["prompt"], r["adapter"]) for r in requests]
        loras = [self._lora(r["adapter"]) for r in requests]
        outputs = self.llm.generate(inputs, params, lora_request=loras if any(loras) else None, use_tqdm=False)
        answers = []
        for out in outputs:
            first = out.outputs[0]
            prompt_ids = getattr(out, "prompt_token_ids", None)
            answers.append((first.text, first.finish_reason or "stop", len(first.token_ids),
                            len(prompt_ids) if prompt_ids is not None else None))
        return answers

    def score(self, pairs: list[tuple[str, str]], adapter: dict[str, Any] | None) -> list[tuple[float, int]]:
        from vllm import SamplingParams as VLLMParams

        inputs, spans = [], []
        for prompt, continuation in pairs:
            rendered = self.render(prompt, adapter)
            context = self.tokenizer(rendered, add_special_tokens=adapter is None and not self.chat)["input_ids"]
            target = self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
            inputs.append({"prompt_token_ids": list(context) + list(target)})
            spans.append((len(context), len(target)))
        params = VLLMParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)
        outputs = self.llm.generate(inputs, params, lora_request=self._lora(adapter), use_tqdm=False)
        answers = []
        for out, (start, n) in zip(outputs, spans):
            ids = out.prompt_token_ids
            logprobs = out.prompt_logprobs
            total = 0.0
            for k in range(start, start + n):
                total += float(logprobs[k][ids[k]].logprob)
            answers.append((total, n))
        return answers

    def embeddings(self) -> Any:
        """The model's input embedding matrix, read from its safetensors (prompt_embeds are built here)."""
        if self._embeddings is None:
            from safetensors import safe_open

            for path in sorted(Path(self.model).glob("*.safetensors")):
                with safe_open(str(path), framework="pt") as f:
                    for name in f.keys():
                        if name.endswith(("embed_tokens.weight", "wte.weight", "word_embeddings.weight")):
                            self._embeddings = f.get_tensor(name)
                            return self._embeddings
            raise ValueError(f"no input embedding matrix in the safetensors of {self.model}")
        return self._embeddings

    def soft_prompt(self, path: str) -> Any:
        if path not in self._prompts:
            from safetensors import safe_open

            with safe_open(path, framework="pt") as f:
                self._prompts[path] = f.get_tensor("values")
        return self._prompts[path]
