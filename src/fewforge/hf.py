"""Helpers shared by every layer that loads Hugging Face models."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, ContextManager, Iterator


def offline() -> bool:
    """Whether the hub must not be reached (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE set to a true value):
    every loader then reads local files only and says so when a hub id is not cached."""
    value = os.environ.get("HF_HUB_OFFLINE", "") or os.environ.get("TRANSFORMERS_OFFLINE", "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Mute transformers' loading reports and tqdm bars while loading a model: the "newly initialized"
    warning of a fresh classification head is expected, and fewforge shows its own progress."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """Mute `datasets`' progress bars ("Saving the dataset", "Creating parquet") for a block."""
    from datasets.utils import logging as ds_logging

    was_enabled = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            ds_logging.enable_progress_bar()


@contextmanager
def attention_implementation(model: Any, name: str | None) -> Iterator[None]:
    """The model under attention implementation `name` for a block (None: as it is), then back: the
    guard's sampling inside a tuning block that switched to eager attention generates as the final
    sampling does, under the model's own implementation."""
    before = getattr(model.config, "_attn_implementation", None)
    switch = name is not None and before is not None and name != before
    if switch:
        model.set_attn_implementation(name)
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(before)


def second_order_attention(model: Any, needed: bool = True) -> ContextManager[None]:
    """Eager attention for a block that differentiates through a gradient (FewGen's meta step, the
    `paired+reweight` look-ahead): PyTorch's fused CPU attention has no double backward. The model's
    own implementation comes back afterwards."""
    return attention_implementation(model, "eager" if needed else None)
