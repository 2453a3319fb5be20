"""A fake `vllm` (see ../README.md): LLM.generate with vLLM's argument and output shapes."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

WORDS = "a calm bright story of two old friends who walk by the river and talk about the films they love".split()


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int | None = 16
    stop: list[str] | None = None
    seed: int | None = None
    repetition_penalty: float = 1.0
    prompt_logprobs: int | None = None
    logprobs: int | None = None

    def __post_init__(self) -> None:  # vLLM's own checks on the values fewforge sends
        if self.top_k == 0 or self.top_k < -1:
            raise ValueError(f"top_k must be -1 (disable) or at least 1, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str | None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int] | None
    prompt_logprobs: list[dict[int, Logprob] | None] | None
    outputs: list[CompletionOutput] = field(default_factory=list)


class LLM:
    def __init__(self, model: str, **kwargs: Any) -> None:
        from transformers import AutoTokenizer

        if not os.path.isdir(model):
            raise OSError(f"{model} is not a local model directory")
        self.model, self.kwargs = model, kwargs
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        _log({"event": "init", "model": model, **{k: v for k, v in kwargs.items() if isinstance(v, (bool, int, float, str))}})

    def get_tokenizer(self) -> Any:
        return self.tokenizer

    def generate(self, prompts: Any, sampling_params: Any = None, lora_request: Any = None, use_tqdm: bool = True) -> list[RequestOutput]:
        prompts = prompts if isinstance(prompts, list) else [prompts]
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        loras = lora_request if isinstance(lora_request, list) else [lora_request] * len(prompts)
        if len(params) != len(prompts) or len(loras) != len(prompts):
            raise ValueError("the lengths of prompts, sampling_params and lora_request must match")
        outputs, kinds = [], []
        for n, (prompt, sp, lora) in enumerate(zip(prompts, params, loras)):
            if lora is not None and not self.kwargs.get("enable_lora"):
                raise ValueError("LoRA is not enabled: start the engine with enable_lora=True")
            if isinstance(prompt, dict) and "prompt_embeds" in prompt:
                if not self.kwargs.get("enable_prompt_embeds"):
                    raise ValueError("prompt embeddings are not enabled: enable_prompt_embeds=True")
                embeds = prompt["prompt_embeds"]
                identity, ids, kinds = f"embeds:{float(embeds.sum()):.6f}:{tuple(embeds.shape)}", None, kinds + [["embeds", list(embeds.shape)]]
            elif isinstance(prompt, dict):
                ids = list(prompt["prompt_token_ids"])
                identity, kinds = f"ids:{ids}", kinds + [["ids", len(ids)]]
            else:
                ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
                identity, kinds = f"text:{prompt}", kinds + [["text", len(ids)]]
            identity += f"|seed:{sp.seed}|lora:{lora.lora_int_id if lora else None}"
            digest = hashlib.sha256(identity.encode()).digest()
            count = min(4 + digest[0] % 6, sp.max_tokens or 16)
            text = " " + " ".join(WORDS[b % len(WORDS)] for b in digest[1 : 1 + count])
            finish = "length" if count == sp.max_tokens else "stop"
            plps = None
            if sp.prompt_logprobs is not None and ids is not None:
                plps = [None] + [{t: Logprob(-_unit(f"{identity}:{k}") * 4 - 0.01, 1)} for k, t in enumerate(ids[1:], 1)]
            outputs.append(RequestOutput(str(n), prompt if isinstance(prompt, str) else None, ids, plps,
                                         [CompletionOutput(0, text, list(range(count)), finish)]))
        _log({"event": "generate", "n": len(prompts), "seeds": [sp.seed for sp in params],
              "loras": [[lr.lora_name, lr.lora_int_id, lr.lora_path] if lr else None for lr in loras],
              "kinds": kinds, "prompt_logprobs": [sp.prompt_logprobs for sp in params][:1]})
        return outputs


def _unit(text: str) -> float:
    """A deterministic number in [0, 1) for `text` (the same in every process)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") / 2**32


def _log(record: dict) -> None:
    path = os.environ.get("FAKE_VLLM_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
