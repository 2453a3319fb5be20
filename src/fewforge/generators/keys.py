"""What identifies a generation or a score in the cache (and a request at the Batch API): a hash of the
engine's cache namespace, the model, the backend's output options, the prompt, the sampling parameters
without seed and n, the candidate's request seed, and the adapter's content hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

from fewforge.generators.base import AdapterRequest, Generator, SamplingParams


def cache_key(
    backend: str,
    model_id: str,
    prompt: str,
    params: SamplingParams,
    seed: int,
    options: dict[str, Any] | None = None,
    adapter: AdapterRequest | None = None,
) -> str:
    sampling = {k: v for k, v in params.to_dict().items() if k not in ("seed", "n")}
    identity: list[Any] = [backend, model_id, prompt, sampling, seed]
    if options:  # only when a backend reports some, so keys of backends without any stay as they were
        identity.append(options)
    if adapter is not None:  # likewise: keys without an adapter are unchanged
        identity.append({"adapter": adapter.content_hash})
    payload = json.dumps(identity, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def score_key(
    backend: str,
    model_id: str,
    prompt: str,
    continuation: str,
    options: dict[str, Any] | None = None,
    adapter: AdapterRequest | None = None,
) -> str:
    """The key of one cached score: its own namespace, never equal to a generation's key."""
    identity = ["score", backend, model_id, options or {}, prompt, continuation]
    identity.append(adapter.content_hash if adapter is not None else None)
    payload = json.dumps(identity, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def request_keys(
    generator: Generator,
    prompts: Sequence[str],
    params: SamplingParams,
    where: Sequence[int],
    adapter: AdapterRequest | None = None,
) -> list[list[str]]:
    """The cache key of every candidate of every prompt (prompt i at seed position where[i]): what the
    cache looks up, what the Batch API sends as `custom_id`, and what `fewforge estimate` counts."""
    namespace, model_id, options = generator.cache_namespace, generator.model_id, generator.output_options()
    return [
        [cache_key(namespace, model_id, p, params, params.request_seed(where[i], j), options, adapter) for j in range(params.n)]
        for i, p in enumerate(prompts)
    ]
