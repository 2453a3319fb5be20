"""Shared fixtures: real packaged models and the real task data, all offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# A wrong local path must fail as a missing file, never turn into a hub download attempt.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see fewforge/cli/app.py

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real task data (../shared/data, or FEWFORGE_DATA)."""
    path = Path(os.environ.get("FEWFORGE_DATA", REPO.parent / "shared" / "data"))
    if not (path / "sst2" / "train.jsonl").exists():
        pytest.fail(f"real task data not found at {path}; set FEWFORGE_DATA to the data directory")
    return path


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    from fewforge.packaged import smollm2_gguf

    return smollm2_gguf()


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    from fewforge.packaged import minilm_dir

    return minilm_dir()


@pytest.fixture(scope="session")
def tiny_causal_lm():
    """A factory of tiny random Llama models (GQA, like SmolLM2), eager attention so the bi-level step
    can differentiate twice (CPU flash attention cannot): tiny_causal_lm(layers=3, hidden=16, ...)."""

    def make(vocab: int = 60, hidden: int = 32, layers: int = 2, heads: int = 4, kv_heads: int = 2):
        import torch
        from transformers import AutoModelForCausalLM, LlamaConfig

        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            max_position_embeddings=64,
        )
        return AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()

    return make


@pytest.fixture(scope="session")
def tiny_t5():
    """A factory of randomly initialised 2-layer T5 models with a word-level tokenizer, saved into a folder:
    the seq2seq paths without downloaded weights. tiny_t5(directory) -> directory."""

    def make(directory: Path) -> Path:
        import torch
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

        words = ["<pad>", "</s>", "<unk>", "great", "terrible", "it", "was", "a", "film", "movie", "dull", "fun"]
        backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
        backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
        )
        config = T5Config(vocab_size=len(words), d_model=16, d_ff=32, d_kv=4, num_heads=2, num_layers=2,
                          decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
        torch.manual_seed(0)
        T5ForConditionalGeneration(config).save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        return directory

    return make
