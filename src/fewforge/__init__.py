"""fewforge: turn a handful of labeled examples into a good text classifier with LLM-synthesized data.

The public API is imported lazily so that `import fewforge` (and `fewforge tasks`) stays instant.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# OpenMP threads that spin while waiting (llama.cpp, torch, faiss) starve each other whenever another
# process or library shares the cores: measured 5-10x slower. libgomp reads this once, when it loads,
# so it is set on import, before any of them; an explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

_EXPORTS = {
    "load_task": "fewforge.tasks",
    "Task": "fewforge.tasks.base",
    "Example": "fewforge.data.schema",
    "FewShotSplit": "fewforge.data.schema",
    "read_examples": "fewforge.data.io",
    "load_task_data": "fewforge.data.sources",
    "sample_fewshot": "fewforge.data.fewshot",
    "get_generator": "fewforge.generators",
    "CachedGenerator": "fewforge.generators.cache",
    "SamplingParams": "fewforge.generators.base",
    "get_method": "fewforge.synthesis",
    "SynthesisContext": "fewforge.synthesis.base",
    "get_learner": "fewforge.learners",
    "score": "fewforge.evaluation",
    "RunConfig": "fewforge.config",
    "run_experiment": "fewforge.pipeline",
    "FewforgeError": "fewforge.errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fewforge' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
