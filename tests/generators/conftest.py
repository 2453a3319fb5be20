"""Real backends on the packaged SmolLM2 GGUF, shared by the generator tests (loaded once each)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Iterator

import pytest

# OpenMP workers that sleep instead of spin: on a busy 2-core machine spinning made llama.cpp and
# torch 5-10x slower. Only effective if nothing loaded libgomp yet.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def closed_url() -> str:
    """An OpenAI-style base URL on loopback where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/v1"


@pytest.fixture(scope="session")
def llamacpp_gen(smollm2_path: Path) -> Iterator:
    from fewforge.generators.llamacpp import LlamaCppGenerator

    gen = LlamaCppGenerator(smollm2_path, n_parallel=8, n_ctx_per_slot=256)
    yield gen
    gen.close()


@pytest.fixture(scope="session")
def hf_gguf_gen(smollm2_path: Path) -> Iterator:
    """HFGenerator straight on the GGUF: transformers dequantizes it (~11 s, paid once)."""
    from fewforge.generators.hf import HFGenerator

    gen = HFGenerator(smollm2_path, batch_size=4)
    gen.load()
    yield gen
    gen.close()


@pytest.fixture(scope="session")
def hf_dir(hf_gguf_gen, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2 as a plain transformers directory, exported from the already loaded GGUF model
    (what `convert_gguf_to_hf` does after its own load)."""
    return hf_gguf_gen.export(tmp_path_factory.mktemp("hf") / "smollm2")


@pytest.fixture(scope="session")
def hf_gen(hf_dir: Path) -> Iterator:
    from fewforge.generators.hf import HFGenerator

    gen = HFGenerator(hf_dir, batch_size=4)
    yield gen
    gen.close()


@pytest.fixture(scope="session")
def llama_server(smollm2_path: Path) -> Iterator[str]:
    """llama.cpp's own OpenAI-compatible HTTP server on loopback; yields its /v1 base URL."""
    from fewforge.generators.llamacpp import import_xllamacpp

    xlc = import_xllamacpp()
    p = xlc.CommonParams()
    p.model.path = str(smollm2_path)
    p.n_parallel = 4
    p.n_ctx = 256 * 4
    p.cpuparams.n_threads = p.cpuparams_batch.n_threads = 2
    p.warmup = False
    p.verbosity = 0
    p.port = free_port()
    p.hostnames = ["127.0.0.1"]
    server = xlc.Server(p)
    yield server.listening_address + "/v1"
    del server  # dropping the Server stops the HTTP listener


FAKE_VLLM = Path(__file__).parent / "fake_vllm"
TINY_WORDS = (
    "a an the of to in and or is was it this that film movie story review positive negative good bad "
    "name color animal number write one word sentence about calm bright two old friends who walk by river "
    "talk films they love"
).split()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder as vLLM reads one: config.json, a word-level tokenizer with a chat template, and an
    8-wide input embedding matrix in model.safetensors (what prompt_embeds are built from)."""
    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-vllm-model")
    vocab = {w: i for i, w in enumerate(["[UNK]", "<s>", "</s>", "<|user|>", "<|assistant|>", *TINY_WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="<s>", eos_token="</s>")
    fast.chat_template = (
        "{% for m in messages %}<|user|> {{ m['content'] }} {% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    fast.save_pretrained(folder)
    from transformers import LlamaConfig

    LlamaConfig(vocab_size=len(vocab), hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1).save_pretrained(folder)
    torch.manual_seed(0)
    save_file({"model.embed_tokens.weight": torch.randn(len(vocab), 8)}, str(folder / "model.safetensors"))
    return folder


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The fake `vllm` package importable here and in spawned children; returns its call log."""
    log = tmp_path / "vllm-calls.jsonl"
    monkeypatch.syspath_prepend(str(FAKE_VLLM))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(FAKE_VLLM), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("FAKE_VLLM_LOG", str(log))
    return log
