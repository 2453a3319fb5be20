"""peft LoRA folders on a loaded Hugging Face model (the hf backend's `kind="lora"` adapters): loaded once
per content into one PeftModel over a module tree that shares the model's weight tensors, the least
recently used dropped beyond MAX_LORAS, one active at a time."""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from fewforge.errors import BackendError
from fewforge.generators.base import AdapterRequest

MAX_LORAS = 8  # LoRA adapters kept loaded at once; the least recently used one is dropped first


def first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def shared_copy(model: Any) -> Any:
    """A second module tree for `model` whose parameters and buffers are `model`'s own tensors: peft can
    wrap its layers while `model` keeps its modules, and no weight is duplicated."""
    memo = {id(t): t for t in (*model.parameters(), *model.buffers())}
    return copy.deepcopy(model, memo)


class LoraAdapters:
    """The LoRA adapters loaded on one model (`model_name` names it in errors)."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.lock = threading.Lock()  # one active LoRA adapter at a time on the shared tree
        self._lora_model: Any = None
        self._names: OrderedDict[str, str] = OrderedDict()  # content hash -> peft adapter name, LRU order

    def activate(self, model: Any, adapter: AdapterRequest) -> Any:
        """`model` with `adapter`'s LoRA active (call under `lock`).

        Adapters load into one PeftModel built over a copy of `model`'s module tree that shares all
        its parameter tensors (no second set of weights): peft swaps that copy's target layers for LoRA
        layers, while `model` — what adapter-less requests, soft prompts and `trainable()` use — keeps
        its own modules and weights. Adapters are keyed by content (a retrained folder loads afresh), and
        at most MAX_LORAS stay loaded, the least recently used dropped first.
        """
        key = adapter.content_hash  # also checks that the folder holds adapter_config.json
        name = self._names.get(key) or self._load(model, adapter, key)
        self._names.move_to_end(key)
        self._lora_model.set_adapter(name)
        return self._lora_model.get_base_model()

    def _load(self, model: Any, adapter: AdapterRequest, key: str) -> str:
        try:
            from peft import PeftModel
        except ImportError:
            raise BackendError("LoRA adapters need the peft package", hint="run: pip install peft") from None
        path = Path(adapter.path)
        try:
            peft_type = json.loads((path / "adapter_config.json").read_text()).get("peft_type")
        except (OSError, ValueError) as e:
            raise BackendError(
                f"adapter {adapter.name!r}: cannot read {path / 'adapter_config.json'}: {first_line(e)}",
                hint="save the adapter with peft's save_pretrained",
            ) from None
        if peft_type != "LORA":
            raise BackendError(
                f"adapter {adapter.name!r} in {path} is a {peft_type} peft adapter, not LoRA",
                hint="send LoRA adapters as kind='lora' (soft prompts are kind='soft-prompt')",
            )
        if len(self._names) >= MAX_LORAS and self._lora_model is not None:
            _, oldest = self._names.popitem(last=False)
            self._lora_model.delete_adapter(oldest)
        name = "fewforge_" + hashlib.sha256(key.encode()).hexdigest()[:16]  # a valid module name
        flags = [(p, p.requires_grad) for p in model.parameters()]
        try:
            if self._lora_model is None:
                shell = shared_copy(model)
                self._lora_model = PeftModel.from_pretrained(shell, str(path), adapter_name=name, is_trainable=False)
            else:
                self._lora_model.load_adapter(str(path), adapter_name=name, is_trainable=False)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
            self._lora_model = None  # drop a half-loaded tree; the next LoRA request builds a new one
            self._names.clear()
            raise BackendError(
                f"adapter {adapter.name!r}: peft cannot load {path} onto {self.model_name}: {first_line(e)}",
                hint="send a LoRA tuned on this same base model",
            ) from None
        finally:
            for p, flag in flags:  # peft freezes the base weights it wraps, and they are `model`'s
                p.requires_grad_(flag)
        self._lora_model.eval()
        self._names[key] = name
        return name
