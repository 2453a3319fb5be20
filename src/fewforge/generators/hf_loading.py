"""Loading a Hugging Face model for the hf backend: transformers imported with an actionable error, a
local directory's identity (its config and weight files), and the model + tokenizer on a device in the
dtype that device runs well (fp32 on CPU; bf16, else fp16, on a GPU)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from fewforge.errors import BackendError
from fewforge.generators._gguf import file_id, read_string_field
from fewforge.hf import offline

SEQ2SEQ_GGUF_ARCHS = {"t5", "t5encoder"}


def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise BackendError(
            "the hf backend needs transformers and torch", hint="run: pip install transformers torch"
        ) from None
    return transformers


def _load_error(source: str, error: Exception) -> BackendError:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    hint = (
        "HF_HUB_OFFLINE is set: pass a local model directory or .gguf file, or download the model first"
        if offline()
        else "pass a local model directory, a .gguf file, or a Hugging Face model id"
    )
    return BackendError(f"cannot load the Hugging Face model {source}: {first}", hint=hint)


def dir_id(path: Path) -> str:
    """Hash of config.json plus the identity of every weight file in a local model directory."""
    digest = hashlib.sha256()
    config = path / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        digest.update(file_id(weights).encode())
    return f"{path.name}@{digest.hexdigest()[:16]}"


def load_model(
    source: tuple[str, dict[str, Any], Path | None], device: str, dtype: str | None, name: str
) -> tuple[Any, Any]:
    transformers = _import_transformers()
    import torch

    where, kwargs, gguf = source
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype is None:  # fp32 on CPU (fast bf16 kernels are not a given there)
        cuda_bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
        dtype = "bfloat16" if cuda_bf16 else ("float16" if device.startswith("cuda") else "float32")
    try:
        if gguf is not None:
            seq2seq = read_string_field(gguf, "general.architecture") in SEQ2SEQ_GGUF_ARCHS
        else:
            seq2seq = bool(transformers.AutoConfig.from_pretrained(where, **kwargs).is_encoder_decoder)
        auto = transformers.AutoModelForSeq2SeqLM if seq2seq else transformers.AutoModelForCausalLM
        tokenizer = transformers.AutoTokenizer.from_pretrained(where, **kwargs)
        model = auto.from_pretrained(where, dtype=getattr(torch, dtype), **kwargs)
    except (OSError, ValueError) as e:
        raise _load_error(name, e) from None
    model.to(device).eval()
    tokenizer.padding_side = "left"  # batched causal generation continues right after the prompt
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
