"""Generator backends and the `--generator` spec parser.

A new backend is one file here plus one `GENERATORS.register` line; `get_generator("<name>:<arg>")`
then builds it as `Cls(arg, **options)`. Backends are imported on first use, so importing this
package does not import torch, transformers, xllamacpp or openai.
"""

from __future__ import annotations

import inspect
from typing import Any

from fewforge.errors import ConfigError
from fewforge.generators.base import (
    AdapterRequest,
    Candidate,
    Completion,
    Generator,
    SamplingParams,
    Score,
    TrainableLM,
)
from fewforge.generators.cache import CachedGenerator
from fewforge.registry import Registry

__all__ = [
    "DEFAULT_GENERATOR",
    "AdapterRequest",
    "GENERATORS",
    "CachedGenerator",
    "Candidate",
    "Completion",
    "Generator",
    "SamplingParams",
    "Score",
    "TrainableLM",
    "get_generator",
]

GENERATORS: Registry[type[Generator]] = Registry("generator backend")
GENERATORS.register("llamacpp", "fewforge.generators.llamacpp:LlamaCppGenerator")
GENERATORS.register("hf", "fewforge.generators.hf:HFGenerator")
GENERATORS.register("openai", "fewforge.generators.openai_compat:OpenAICompatGenerator")
GENERATORS.register("openai-batch", "fewforge.generators.openai_batch:OpenAIBatchGenerator")
GENERATORS.register("vllm", "fewforge.generators.vllm_offline:VLLMGenerator")
URL_BACKENDS = ("openai", "openai-batch")  # specs of the form NAME:MODEL@URL1,URL2

DEFAULT_GENERATOR = "smollm2"

SPEC_FORMS = (
    "smollm2 (default: packaged SmolLM2-135M-Instruct GGUF)",
    "gemma3-270m (Gemma 3 270M base GGUF; needs fewforge[gemma], Gemma Terms of Use)",
    "llamacpp:PATH.gguf",
    "hf:smollm2 (the packaged SmolLM2 through transformers: loads adapters, can be tuned)",
    "hf:DIR_OR_GGUF_OR_HUB_ID",
    "openai:MODEL@URL (e.g. openai:Qwen/Qwen2.5-7B@http://localhost:8000/v1)",
    "openai:MODEL@URL1,URL2,... (several servers of one model; each request goes to the least busy)",
    "openai:MODEL (OpenAI's API, key in OPENAI_API_KEY)",
    "openai-batch:MODEL[@URL] (the Batch API: half the price, answers within 24 h; shares the openai cache)",
    "vllm:MODEL_OR_DIR (vLLM's offline engine in a child process; needs fewforge[vllm] and a GPU)",
)


def _build(name: str, arg: Any, options: dict[str, Any]) -> Generator:
    cls = GENERATORS.get(name)
    accepted = [
        p.name
        for p in list(inspect.signature(cls.__init__).parameters.values())[2:]
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for the {name} generator",
            hint=f"valid options: {', '.join(accepted)}",
        )
    return cls(arg, **options)


def get_generator(spec: str | None = None, **options: Any) -> Generator:
    """Build a backend from a spec string (see SPEC_FORMS); `options` go to its constructor."""
    spec = (spec or DEFAULT_GENERATOR).strip()
    if spec == "smollm2":
        from fewforge.packaged import smollm2_gguf

        return _build("llamacpp", smollm2_gguf(), options)
    if spec == "gemma3-270m":
        from fewforge.packaged import gemma3_270m_gguf

        options.setdefault("chat", False)  # a base model without a chat template: raw completions
        return _build("llamacpp", gemma3_270m_gguf(), options)
    name, sep, arg = spec.partition(":")
    if sep and arg and name in GENERATORS:
        if name == "hf" and arg == "smollm2":  # dequantized once into the fewforge cache
            from fewforge.packaged import lm_source

            arg = lm_source(None)
        if name in URL_BACKENDS:
            from fewforge.generators.urls import parse_model_at_urls

            arg, urls = parse_model_at_urls(arg)
            if urls:
                options.setdefault("base_url", urls)
        return _build(name, arg, options)
    from fewforge.generators.urls import redact_text

    raise ConfigError(f"unknown generator spec {redact_text(spec)!r}", hint="use one of: " + "; ".join(SPEC_FORMS))
