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
