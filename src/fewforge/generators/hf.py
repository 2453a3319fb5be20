"""Local Hugging Face transformers models (causal or seq2seq), batched `generate` with left padding.

Seeding: every candidate row samples with its own `torch.Generator` seeded with
`params.request_seed(prompt, candidate)`, through a logits processor that draws the token and hands
greedy decoding a one-hot choice. A candidate's text therefore depends on its seed alone, not on which
batch it landed in (up to float rounding of padded batches), and reruns are reproducible.

Adapters: soft prompts (`soft_prompts.py`) and peft LoRA folders (hf_lora.py: a PeftModel over a module
tree that shares this model's weights, so adapter-less requests and `trainable()` keep the bare model).
`score` runs the same model, prompt encoding and adapter as `generate`, one forward per batch.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from fewforge.errors import BackendError
from fewforge.generators._gguf import file_id, require_file
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
    TrainableLM,
    positions,
)
from fewforge.generators.hf_loading import dir_id, load_model
from fewforge.generators.hf_lora import LoraAdapters
from fewforge.generators.hf_sampling import SeededSampler, mask_positions, padded
from fewforge.hf import offline

_HUB_ID = re.compile(r"^[A-Za-z0-9_][\w.-]*(/[\w.-]+)?$")
_CONVERTED_MARKER = "fewforge_source.json"


class HFGenerator(Generator):
    """A transformers model from a local directory, a local `.gguf` file, or a hub id.

    A hub id is only resolved when given explicitly; with HF_HUB_OFFLINE set it must already be in the
    local cache (`local_files_only`). `chat=None` applies the tokenizer's chat template when it has one.
    """

    backend = "hf"
    reports_candidates = True
    supports_adapters = True  # soft-prompt adapters (label prompts or prefixes; causal LMs) and peft LoRA folders
    supports_scoring = True

    def __init__(
        self,
        model: str | Path,
        *,
        device: str = "auto",
        dtype: str | None = None,
        batch_size: int = 8,
        chat: bool | None = None,
        revision: str | None = None,
    ) -> None:
        self.model_name = str(model)
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self.revision = revision
        self._chat = chat
        self._model: Any = None
        self._tokenizer: Any = None
        self._model_id: str | None = None
        self._lock = threading.Lock()
        self._adapters: dict[str, Any] = {}  # content hash -> loaded LabelPrompts
        # LoRA adapters live on a PeftModel over a second module tree that shares every weight tensor
        # with self._model (hf_lora.py), so self._model itself is never wrapped or changed.
        self._loras = LoraAdapters(self.model_name)

    def __repr__(self) -> str:
        return f"HFGenerator({self.model_name!r}, device={self.device!r}, batch_size={self.batch_size})"

    # -- where the weights are -------------------------------------------------------------------
    def _source(self) -> tuple[str, dict[str, Any], Path | None]:
        """(name or dir for from_pretrained, its kwargs, the GGUF file if any)."""
        path = Path(self.model_name).expanduser()
        if path.suffix == ".gguf":
            path = require_file(path)
            return str(path.parent), {"gguf_file": path.name}, path
        if path.is_dir():
            return str(path.resolve()), {}, None
        if path.exists() or not _HUB_ID.match(self.model_name):  # a path, not "org/name"
            raise BackendError(
                f"model directory not found: {path}",
                hint="pass a directory holding config.json, a .gguf file, or a Hugging Face model id",
            )
        kwargs: dict[str, Any] = {"local_files_only": offline()}
        if self.revision:
            kwargs["revision"] = self.revision
        return self.model_name, kwargs, None

    @property
    def model_id(self) -> str:
        if self._model_id is None:
            self._model_id = self._compute_model_id()
        return self._model_id

    def _compute_model_id(self) -> str:
        source, kwargs, gguf = self._source()
        if gguf is not None:
            return file_id(gguf)
        if Path(source).is_dir():
            return dir_id(Path(source))
        # Hub id: the resolved commit, read from the local cache when possible (no network).
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source, "config.json", revision=self.revision)
        if isinstance(cached, str):
            return f"{source}@{Path(cached).parent.name}"
        self.load()
        commit = getattr(self._model.config, "_commit_hash", None)
        return f"{source}@{commit or self.revision or 'main'}"

    # -- loading ---------------------------------------------------------------------------------
    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            self._model, self._tokenizer = load_model(self._source(), self.device, self.dtype, self.model_name)

    def close(self) -> None:
        with self._lock:
            self._model = self._tokenizer = None
            self._adapters = {}
            self._loras = LoraAdapters(self.model_name)

    @property
    def model(self) -> Any:
        """The loaded torch model (loads on first use)."""
        self.load()
        return self._model

    @property
    def tokenizer(self) -> Any:
        self.load()
        return self._tokenizer

    def export(self, out_dir: str | Path) -> Path:
        """Save the loaded model and tokenizer as a plain transformers directory and return it.

        A GGUF-loaded model is dequantized already but flagged unserializable by its GGUF quantizer;
        dropping that flag is safe (reloaded logits are identical). `out_dir` is replaced whole only
        when it holds an earlier fewforge export; any other non-empty directory is an error.
        """
        out = Path(out_dir).expanduser()
        if out.exists() and any(out.iterdir()) and not (out / _CONVERTED_MARKER).is_file():
            raise BackendError(
                f"{out} is not empty and is not a fewforge conversion",
                hint="pick an empty or new directory for the converted model",
            )
        model, tokenizer = self.model, self.tokenizer
        quantizer = getattr(model, "hf_quantizer", None)
        quant_config = getattr(model.config, "quantization_config", None)
        model.hf_quantizer = None
        if quant_config is not None:
            del model.config.quantization_config
        side = tokenizer.padding_side
        tokenizer.padding_side = "right"  # the saved default suits training; generation sets left
        tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        finally:  # leave this generator as it was
            model.hf_quantizer, tokenizer.padding_side = quantizer, side
            if quant_config is not None:
                model.config.quantization_config = quant_config
        marker = {"source": self.model_name, "source_id": self.model_id}
        (tmp / _CONVERTED_MARKER).write_text(json.dumps(marker))
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)  # a half-written export never looks complete
        return out

    @property
    def chat(self) -> bool:
        if self._chat is None:
            self._chat = bool(getattr(self.tokenizer, "chat_template", None))
        return self._chat

    def output_options(self) -> dict[str, Any]:
        return {"chat": self.chat, "dtype": self.dtype}  # template on/off and precision change the text

    # -- generation ------------------------------------------------------------------------------
    def _render(self, prompt: str) -> str:
        """The prompt as the model reads it: inside the chat template when the backend uses one."""
        if not self.chat:
            return prompt
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )

    def _tokens(self, text: str, start: bool = True) -> list[int]:
        """Ids of `text`; `start`: it begins the sequence (the tokenizer's special tokens, e.g. BOS, unless
        the chat template already wrote them as text)."""
        return self.tokenizer(text, add_special_tokens=start and not self.chat)["input_ids"]

    def _encode(self, prompt: str) -> list[int]:
        return self._tokens(self._render(prompt))

    def trainable(self) -> TrainableLM:
        self.load()
        return TrainableLM(self._model, self._tokenizer, self._render, self._tokens)

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
        self.load()
        where = positions(start_index, len(prompts))
        # Rows are (prompt, candidate) pairs, prompt-major, so a batch holds whole prompts when it can.
        rows = [(i, j) for i in range(len(prompts)) for j in range(params.n)]
        results: dict[tuple[int, int], Candidate] = {}
        left = [params.n] * len(prompts)
        with self._running(adapter) as (model, soft):
            encoded = [self._prompt_ids(p, adapter) for p in prompts]
            for b in range(0, len(rows), self.batch_size):
                batch = rows[b : b + self.batch_size]
                seeds = [params.request_seed(where[i], j) for i, j in batch]
                candidates = self._generate_batch(model, [encoded[i] for i, _ in batch], seeds, params, soft, adapter)
                for (i, j), cand in zip(batch, candidates):
                    results[i, j] = cand
                    if on_candidate is not None:
                        on_candidate(i, j, cand)
                    left[i] -= 1
                    if left[i] == 0 and progress is not None:
                        progress(1)
        return [
            Completion(prompt=p, candidates=tuple(results[i, j] for j in range(params.n)))
            for i, p in enumerate(prompts)
        ]

    def _prompt_ids(self, prompt: str, adapter: AdapterRequest | None) -> list[int]:
        """A request's prompt ids: rendered and started as a sequence without an adapter; with one, the raw
        text after the tuned prompt or inside the tuned model (no chat template, no BOS: Generator.generate)."""
        return self._encode(prompt) if adapter is None else self._tokens(prompt, start=False)

    @contextmanager
    def _running(self, adapter: AdapterRequest | None) -> Iterator[tuple[Any, Any]]:
        """(the model to run, the soft prompts to run it under or None) for a request's adapter."""
        if adapter is None:
            yield self._model, None
        elif adapter.kind == "lora":
            with self._loras.lock:  # the LoRA tree has one active adapter at a time
                yield self._loras.activate(self._model, adapter), None
        else:
            yield self._model, self._adapter(adapter)

    def _adapter(self, adapter: AdapterRequest) -> Any:
        """The adapter's soft prompts on this model, loaded once per content."""
        from fewforge.generators.soft_prompts import LabelPrompts

        if self._model.config.is_encoder_decoder:
            raise BackendError(
                f"adapter {adapter.name!r}: soft prompts are implemented for causal LMs, and {self.model_name} "
                "is an encoder-decoder",
                hint="tune and generate with a causal LM (e.g. the packaged SmolLM2)",
            )
        key = adapter.content_hash
        if key not in self._adapters:
            self._adapters[key] = LabelPrompts.load(self._model, Path(adapter.path))
        prompts = self._adapters[key]
        if not 0 <= adapter.label < prompts.n_labels:
            raise BackendError(
                f"adapter {adapter.name!r} has {prompts.n_labels} label prompts, not label {adapter.label}"
            )
        return prompts

    def _generate_batch(
        self,
        model: Any,
        inputs: list[list[int]],
        seeds: list[int],
        params: SamplingParams,
        prompts: Any = None,
        adapter: AdapterRequest | None = None,
    ) -> list[Candidate]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        tok = self._tokenizer
        batch = tok.pad({"input_ids": inputs}, padding=True, return_tensors="pt")  # mask from lengths
        batch = {k: v.to(model.device) for k, v in batch.items()}
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos if eos is not None else tok.eos_token_id])
        config = GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=False,  # sampling happens in SeededSampler (hf_sampling.py), per row
            num_beams=1,
            repetition_penalty=params.repetition_penalty,
            pad_token_id=tok.pad_token_id,
            eos_token_id=sorted(eos_ids),
            stop_strings=list(params.stop) or None,
        )
        processors = LogitsProcessorList()
        if params.temperature > 0:
            processors.append(SeededSampler(seeds, params.temperature, params.top_k, params.top_p))
        inputs_kw: dict[str, Any] = dict(batch)
        start = batch["input_ids"].shape[1]
        if prompts is not None and adapter is not None:
            inputs_kw = prompts.generation_inputs(adapter.label, batch["input_ids"], batch["attention_mask"])
            start = inputs_kw.pop("input_length")
        with torch.inference_mode():
            out = model.generate(
                **inputs_kw,
                generation_config=config,
                logits_processor=processors,
                tokenizer=tok if params.stop else None,
            )
        # Causal models echo the (left-padded) prompt; seq2seq outputs start with the decoder start.
        new = out[:, 1:] if model.config.is_encoder_decoder else out[:, start:]
        end_ids = eos_ids | {tok.pad_token_id}  # finished rows are filled with pad
        return [self._candidate(row.tolist(), end_ids, params) for row in new]

    # -- scoring -----------------------------------------------------------------------------------
    def score(
        self,
        prompts: Sequence[str],
        continuations: Sequence[str],
        *,
        adapter: AdapterRequest | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[Score]:
        """Log-probabilities of continuations (Generator.score). The ids are the prompt's, encoded as
        `generate` encodes it, then the continuation's alone with no special tokens: the tokens the model
        would have to generate. Rows are sorted by length and left-padded with the positions `generate`
        gives them, one forward per `batch_size` rows that keeps only the continuations' logits; under a
        soft prompt or a LoRA adapter the forward runs exactly as that adapter's generation does. These
        are the model's own probabilities: sampling settings (temperature, repetition penalty) play no part.
        """
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts for {len(continuations)} continuations")  # a caller bug
        self.check_adapter(adapter)
        self.load()
        scores: list[Score | None] = [None] * len(prompts)
        with self._running(adapter) as (model, soft):
            contexts = [self._prompt_ids(p, adapter) for p in prompts]
            targets = [self._tokens(c, start=False) for c in continuations]
            soft_first = soft is not None and soft.placement == "prompt"  # soft tokens precede the text
            for i, (context, target) in enumerate(zip(contexts, targets)):
                if target and not context and not soft_first:
                    raise BackendError(
                        f"prompt {i} is empty, so nothing comes before the continuation to predict its first token",
                        hint="score continuations of a non-empty prompt",
                    )
                if not target:
                    scores[i] = Score(0.0, 0)  # an empty continuation: log 1
            todo = [i for i in range(len(prompts)) if targets[i]]
            todo.sort(key=lambda i: len(contexts[i]) + len(targets[i]))  # little padding per batch
            if progress is not None and len(todo) < len(prompts):
                progress(len(prompts) - len(todo))
            run = self._score_seq2seq_batch if model.config.is_encoder_decoder else self._score_batch
            for b in range(0, len(todo), self.batch_size):
                batch = todo[b : b + self.batch_size]
                sums = run(model, [contexts[i] for i in batch], [targets[i] for i in batch], soft, adapter)
                for i, total in zip(batch, sums):
                    scores[i] = Score(logprob=total, n_tokens=len(targets[i]))
                if progress is not None:
                    progress(len(batch))
        return [s for s in scores if s is not None]

    def _score_batch(
        self, model: Any, contexts: list[list[int]], targets: list[list[int]], soft: Any, adapter: AdapterRequest | None
    ) -> list[float]:
        import torch

        from fewforge.generators.soft_prompts import target_log_probs

        ids, mask = padded([c + t for c, t in zip(contexts, targets)], self._tokenizer.pad_token_id, model.device)
        keep = max(map(len, targets)) + 1  # the last positions: they predict every row's continuation
        kwargs = self._forward_inputs(ids, mask, soft, adapter)
        if "logits_to_keep" in inspect.signature(model.forward).parameters:
            kwargs["logits_to_keep"] = keep  # no [batch, length, vocab] logits for the prompts
        with torch.inference_mode():
            logits = model(**kwargs).logits[:, -keep:]
        logp = target_log_probs(logits[:, :-1], ids[:, 1 - keep :]).double()  # left padding: all rows end here
        return [float(logp[r, logp.shape[1] - len(t) :].sum()) for r, t in enumerate(targets)]

    def _forward_inputs(self, ids: Any, mask: Any, soft: Any, adapter: AdapterRequest | None) -> dict[str, Any]:
        """One forward's inputs for left-padded rows, with the positions `generate` gives them (counted
        from each row's first real token, after a soft prompt's n positions), so padding moves nothing."""
        if soft is None or adapter is None:
            return {"input_ids": ids, "attention_mask": mask, "position_ids": mask_positions(mask), "use_cache": False}
        inputs = soft.generation_inputs(adapter.label, ids, mask)
        inputs.pop("input_length")
        where = mask_positions(inputs["attention_mask"])
        if "inputs_embeds" in inputs:  # prompt placement: the soft tokens are the first n embeddings
            return {**inputs, "position_ids": where, "use_cache": False}
        n = soft.n_tokens  # prefix placement: the cache holds the n prefix positions, not the placeholders
        return {**inputs, "input_ids": inputs["input_ids"][:, n:], "position_ids": where[:, n:], "use_cache": True}

    def _score_seq2seq_batch(
        self, model: Any, contexts: list[list[int]], targets: list[list[int]], soft: Any, adapter: AdapterRequest | None
    ) -> list[float]:
        import torch

        from fewforge.generators.soft_prompts import target_log_probs

        pad = self._tokenizer.pad_token_id
        start = model.generation_config.decoder_start_token_id
        start = model.config.decoder_start_token_id if start is None else start
        enc, enc_mask = padded(contexts, pad, model.device)
        dec, dec_mask = padded([[start, *t[:-1]] for t in targets], pad, model.device, left=False)
        gold, _ = padded(targets, pad, model.device, left=False)
        with torch.inference_mode():
            logits = model(
                input_ids=enc, attention_mask=enc_mask, decoder_input_ids=dec, decoder_attention_mask=dec_mask,
                use_cache=False,
            ).logits  # fmt: skip
        logp = target_log_probs(logits, gold).double()
        return [float(logp[r, : len(t)].sum()) for r, t in enumerate(targets)]

    def _candidate(self, ids: list[int], end_ids: set[int], params: SamplingParams) -> Candidate:
        end = next((k for k, t in enumerate(ids) if t in end_ids), None)
        kept = ids if end is None else ids[:end]
        text = self._tokenizer.decode(kept, skip_special_tokens=True)
        cut = min((pos for s in params.stop if (pos := text.find(s)) >= 0), default=None)
        if cut is not None:
            return Candidate(text=text[:cut], finish_reason="stop", n_tokens=len(kept))
        if end is not None:  # the end-of-sequence token was generated: count it, as llama.cpp does
            return Candidate(text=text, finish_reason="stop", n_tokens=end + 1)
        return Candidate(text=text, finish_reason="length", n_tokens=len(kept))


def convert_gguf_to_hf(gguf_path: str | Path, out_dir: str | Path) -> Path:
    """Dequantize a GGUF into a plain transformers directory (config, safetensors, tokenizer).

    Loading a GGUF through transformers takes ~11 s (SmolLM2) and the result refuses
    `save_pretrained`; the converted directory reloads in ~0.2 s and can be trained (prompt tuning).
    Skips the work when `out_dir` already holds a conversion of this exact file.
    """
    src = require_file(Path(gguf_path), "GGUF file")
    out = Path(out_dir).expanduser()
    if _converted_from(out) == file_id(src):
        return out
    gen = HFGenerator(src, device="cpu", dtype="float32")
    try:
        return gen.export(out)
    finally:
        gen.close()


def _converted_from(out: Path) -> str | None:
    """The source model_id recorded in a fewforge-converted directory, if it is complete."""
    marker = out / _CONVERTED_MARKER
    if not (marker.is_file() and (out / "config.json").is_file()):
        return None
    return json.loads(marker.read_text()).get("source_id")
