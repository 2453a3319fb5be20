"""The generator contract, in vLLM's shape: a batch of prompts in, one Completion per prompt out.

`generate(prompts, params)` returns completions in prompt order, each with `params.n` candidates.
Every prompt gets its own seed derived from (params.seed, prompt index, candidate index), so a run is
reproducible, n samples of one prompt differ, and the same prompt repeated at different positions
gives different samples. Backends load lazily (first call or `load()`) and free memory in `close()`.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Sequence, Union

from fewforge.errors import BackendError, ConfigError

# "error": the request failed after its retries (`Candidate.failure` says why); such a candidate has
# no text, is never cached, and a method treats it like a filtered row (it tops up from other prompts).
FinishReason = Literal["stop", "length", "error"]
# Called with the number of prompts finished since the last call (drives progress bars).
ProgressCallback = Callable[[int], None]
# Where each prompt sits in the caller's full list (its seeds derive from that position): an int
# means consecutive positions from it; a sequence gives every prompt's position explicitly.
Positions = Union[int, Sequence[int]]


def positions(start_index: Positions, n: int) -> list[int]:
    """The seed position of each of `n` prompts."""
    if isinstance(start_index, int):
        return list(range(start_index, start_index + n))
    out = [int(i) for i in start_index]
    if len(out) != n:
        raise ValueError(f"{len(out)} positions for {n} prompts")  # a caller bug, not user input
    return out


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_k: int = 0  # 0 = disabled
    top_p: float = 1.0
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()
    seed: int = 0
    n: int = 1
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", tuple(self.stop))
        checks = {
            "temperature": self.temperature >= 0,
            "top_k": self.top_k >= 0,
            "top_p": 0 < self.top_p <= 1,
            "max_new_tokens": self.max_new_tokens >= 1,
            "n": self.n >= 1,
            "repetition_penalty": self.repetition_penalty > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"invalid sampling parameter {name}={getattr(self, name)!r}")

    def to_dict(self) -> dict:
        """JSON-native values (stop as a list), as they read back from a lineage record."""
        return {**asdict(self), "stop": list(self.stop)}

    def request_seed(self, prompt_index: int, candidate_index: int = 0) -> int:
        """A stable 31-bit seed for one candidate of one prompt."""
        digest = hashlib.sha256(f"{self.seed}:{prompt_index}:{candidate_index}".encode()).digest()
        return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@dataclass(frozen=True)
class RequestFailure:
    """Why one request failed for good: the HTTP status (None for a connection error, a timeout or a
    malformed answer), the server's message (credentials redacted), and how many attempts were made."""

    status: int | None
    message: str
    attempts: int = 1

    def __str__(self) -> str:
        return f"{self.status}: {self.message}" if self.status is not None else self.message


@dataclass(frozen=True)
class Candidate:
    text: str
    finish_reason: FinishReason
    n_tokens: int  # generated tokens
    prompt_tokens: int | None = None  # as the engine counted them, when it says (cost accounting)
    failure: RequestFailure | None = None  # set when finish_reason == "error"

    @classmethod
    def from_failure(cls, failure: RequestFailure) -> "Candidate":
        return cls(text="", finish_reason="error", n_tokens=0, failure=failure)

    @property
    def ok(self) -> bool:
        return self.failure is None


# Called by a backend as each candidate of a `generate` call finishes, from whichever thread finished it:
# (index of the prompt in the call, index of the candidate, the candidate). The cache stores it at once,
# so a killed run loses only the requests in flight.
CandidateCallback = Callable[[int, int, Candidate], None]


@dataclass(frozen=True)
class Completion:
    prompt: str
    candidates: tuple[Candidate, ...]
    cached: bool = False

    @property
    def text(self) -> str:
        return self.candidates[0].text

    @property
    def n_tokens(self) -> int:
        return sum(c.n_tokens for c in self.candidates)

    @property
    def failed(self) -> bool:
        """Some candidate's request failed for good (its text is empty)."""
        return any(not c.ok for c in self.candidates)


@dataclass(frozen=True)
class AdapterRequest:
    """A tuned adapter sent with a request while the engine's weights stay frozen, in vLLM's
    `lora_request` shape (a name and a local path). `label` picks one of a label-conditional adapter's
    prompts. Its `content_hash` (the file's bytes, the label) is part of every cache key, so a retrained
    adapter never reads the completions of the old one."""

    name: str
    path: str
    label: int = 0
    # "soft-prompt": a safetensors file of label prompts (FewGen/DawGen); "lora": a peft adapter folder
    # (adapter_config.json + weights, DAFTT's teacher), the folder vLLM's LoRARequest takes
    kind: Literal["soft-prompt", "lora"] = "soft-prompt"

    @cached_property
    def content_hash(self) -> str:
        path = Path(self.path)
        if self.kind == "lora":
            files = sorted(f for f in path.glob("*") if f.is_file()) if path.is_dir() else []
            if not any(f.name == "adapter_config.json" for f in files):
                raise BackendError(
                    f"adapter {self.name!r}: no peft adapter (adapter_config.json) in {path}",
                    hint="tune it again, or fix the path",
                )
            h = hashlib.sha256()
            for f in files:
                h.update(f.name.encode() + b"\0" + f.read_bytes())
            digest = h.hexdigest()[:16]
        else:
            if not path.is_file():
                raise BackendError(f"adapter {self.name!r}: no file at {path}", hint="tune it again, or fix the path")
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return f"{self.kind}:{digest}:{self.label}"

    def to_dict(self) -> dict[str, Any]:
        """For lineage records: which adapter wrote a row."""
        return {"name": self.name, "kind": self.kind, "label": self.label, "hash": self.content_hash}


@dataclass(frozen=True)
class Score:
    """How likely a model finds one continuation after its prompt: the sum of the natural-log
    probabilities of the continuation's tokens, and how many tokens that is (for a per-token mean)."""

    logprob: float
    n_tokens: int

    @property
    def mean(self) -> float:
        return self.logprob / max(self.n_tokens, 1)


@dataclass(frozen=True)
class TrainableLM:
    """What a method needs to tune an adapter for a backend (`Generator.trainable`): the frozen torch
    model and tokenizer the backend generates with, and how the backend turns text into token ids — so
    the rows an adapter is tuned on are tokenised exactly as its generation requests will be."""

    model: Any
    tokenizer: Any
    render: Callable[[str], str]  # a prompt as the model reads it (the chat template applied, if any)
    encode: Callable[[str, bool], list[int]]  # (text, starts the sequence) -> ids; see `Generator.generate`


class Generator(ABC):
    """Base class of every backend. Constructors only store settings; `load()` does the heavy work."""

    backend: ClassVar[str]  # registry name, e.g. "llamacpp"
    # True when `generate` accepts `on_candidate=` and calls it as each candidate finishes (every built-in
    # backend); the cache then commits each answer as it arrives instead of after the whole call.
    reports_candidates: ClassVar[bool] = False
    # True for an engine that schedules its own batches (vLLM): the cache sends it every miss of a call
    # at once instead of in chunks.
    whole_calls: ClassVar[bool] = False

    @property
    def cache_namespace(self) -> str:
        """The backend name inside cache keys. Transports of one engine share it (the Batch API and the
        online API of one model), so switching between them never regenerates anything."""
        return self.backend

    @property
    @abstractmethod
    def model_id(self) -> str:
        """What identifies the weights in cache keys (file hash, revision, or served model name)."""

    def load(self) -> None:  # noqa: B027 - optional hook
        """Do the heavy work (load weights, connect) now instead of on the first call."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free the model / connections. The generator may be used again after (it reloads)."""

    def output_options(self) -> dict[str, Any]:
        """Settings besides the weights that change what the model writes (e.g. the chat template):
        part of every cache key and synthesis fingerprint."""
        return {}

    supports_adapters: ClassVar[bool] = False

    def check_adapter(self, adapter: AdapterRequest | None) -> None:
        """A clear error from a backend that cannot load `adapter`."""
        if adapter is not None and not self.supports_adapters:
            raise BackendError(
                f"the {self.backend} backend cannot load adapters ({adapter.kind} {adapter.name!r})",
                hint="generate with a tuned adapter through the transformers backend: --generator hf:MODEL",
            )

    def trainable(self) -> TrainableLM:
        """The torch model behind the backend, for methods that tune adapters on it (FewGen, DawGen)."""
        raise BackendError(
            f"the {self.backend} backend cannot be tuned: it serves a model fewforge cannot train",
            hint="tune through the transformers backend: --generator hf:smollm2 (the packaged SmolLM2) or hf:MODEL",
        )

    def count_tokens(self, prompts: Sequence[str]) -> list[int] | None:
        """How many tokens each prompt is as the model reads it (chat template included), when the backend
        has the model's tokenizer at hand; None when only the server knows (cost estimates then guess)."""
        return None

    supports_scoring: ClassVar[bool] = False

    def score(
        self,
        prompts: Sequence[str],
        continuations: Sequence[str],
        *,
        adapter: AdapterRequest | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[Score]:
        """The log-probability of `continuations[i]` right after `prompts[i]` (DESIGN.md §4): label
        choice constrained to the verbalizers, annotation confidence, cloze baselines. A prompt is
        rendered exactly as `generate` renders it (the chat template unless an adapter is sent), and the
        continuation follows the rendered prompt as raw text, as a generated completion would."""
        raise BackendError(
            f"the {self.backend} backend cannot score continuations",
            hint="score through a backend that returns log-probabilities: --generator hf:smollm2 (transformers)",
        )

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        start_index: Positions = 0,
        progress: ProgressCallback | None = None,
        adapter: AdapterRequest | None = None,
    ) -> list[Completion]:
        """One Completion per prompt, in order. Prompt i uses seeds params.request_seed(position_i, j),
        position_i = `positions(start_index, len(prompts))[i]`.

        `start_index` lets a caller (the cache, or a method that grows a set label by label) generate
        a sub-list while keeping each prompt's seed tied to its position in the full list. `adapter`
        is applied to every prompt of the call; backends without adapters raise (`check_adapter`). With
        an adapter, a prompt is the raw text that follows the adapter's soft prompt — no chat template
        and no start-of-sequence token: the tuned prompt stands in for the instruction.

        A request that fails for good (after the backend's own retries) comes back as a
        `Candidate.from_failure(...)`, never as an exception that takes the call's other requests down; an
        exception means the backend as a whole cannot work (not installed, model missing). Backends with
        `reports_candidates` also take `on_candidate=` (CandidateCallback); an exception it raises stops
        the call (the cache's failure budget uses that to stop sending to a dead server).
        """

    def __enter__(self) -> "Generator":
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
