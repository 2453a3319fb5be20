"""fewforge: turn a handful of labeled examples into a good text classifier with LLM-synthesized data.

The public API is imported lazily so that `import fewforge` (and `fewforge tasks`) stays instant.
"""

from __future__ import annotations

import importlib
from typing import Any

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
