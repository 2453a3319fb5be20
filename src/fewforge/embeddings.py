"""Sentence embeddings (sentence-transformers; default: the packaged all-MiniLM-L6-v2), shared by the
near-duplicate filter, the linear-probe learner and the report.

The model loads once per process and each distinct text is embedded once per process: a grid embeds the
same test set for every cell and re-filters the same generations for every seed. The memo is bounded
(`MAX_MEMO` texts, ~300 MB of float32 vectors at 384 dimensions); past it, it starts over.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

MAX_MEMO = 200_000
BATCH_SIZE = 64

_MODELS: dict[str, Any] = {}
_VECTORS: dict[tuple[str, str], Any] = {}


def _model(key: str) -> Any:
    if key not in _MODELS:
        from sentence_transformers import SentenceTransformer

        from fewforge.hf import quiet_transformers

        with quiet_transformers():
            _MODELS[key] = SentenceTransformer(key, device="cpu")
    return _MODELS[key]


def model_key(model_dir: str | Path | None = None) -> str:
    from fewforge.packaged import minilm_dir

    return str(model_dir or minilm_dir())


def embed(texts: Sequence[str], model_dir: str | Path | None = None, *, show_progress: bool = False) -> Any:
    """Unit-norm embeddings, a float32 numpy array of shape (len(texts), dim), rows in input order."""
    import numpy as np

    key = model_key(model_dir)
    model = _model(key)
    todo = list(dict.fromkeys(t for t in texts if (key, t) not in _VECTORS))
    if len(_VECTORS) + len(todo) > MAX_MEMO:  # bound memory: start over with this call's texts
        _VECTORS.clear()
        todo = list(dict.fromkeys(texts))
    if todo:
        # Longest first: batches of similar length pad little (sentence-transformers sorts too, per call).
        fresh = model.encode(
            todo,
            batch_size=BATCH_SIZE,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        _VECTORS.update(((key, t), v) for t, v in zip(todo, fresh))
    if not texts:
        return np.zeros((0, model.get_embedding_dimension() or 0), dtype=np.float32)
    return np.stack([_VECTORS[(key, t)] for t in texts]).astype(np.float32, copy=False)
