"""What a grid's few-shot splits and synthetic sets depend on: their fingerprints (a stage is redone when
its fingerprint changes) and the method, curation and prompt count behind a set. The pipeline runs the
stages; `fewforge run --estimate` (estimate.py) reads the same fingerprints to tell finished sets apart.
"""

from __future__ import annotations

import math
from typing import Any

from fewforge.fingerprint import fingerprint
from fewforge.grid import Plan, SetKey, TaskData
from fewforge.synthesis.curation import semantic


def split_fingerprint(data: TaskData, shots: int, seed: int) -> str:
    return fingerprint({"pool": data.pool_fingerprint, "shots": shots, "seed": seed, "v": 2})


def set_method(plan: Plan, key: SetKey) -> tuple[Any, Any, int | None]:
    """(the method that writes set `key`, its curation or None, the per_label curation keeps or None):
    a curated set with `overgenerate` asks its method for more rows than it keeps."""
    method = plan.method(key)
    curation = plan.curation.get(key.method)  # a label audit of the set (synthesis/curation), or None
    keep_per_label = None
    if curation is not None and curation.overgenerate > 1:  # generate more, keep each label's best per_label
        keep_per_label = method.config.per_label
        method = type(method)(method.config.model_copy(
            update={"per_label": math.ceil(keep_per_label * curation.overgenerate)}))
    return method, curation, keep_per_label


def set_fingerprint(plan: Plan, key: SetKey, split_fp: str | None, generator: Any) -> str:
    """Everything a synthetic set depends on. The backend enters as its cache namespace, so a change of
    transport (the Batch API instead of the online API of one model) redoes nothing."""
    method, curation, _ = set_method(plan, key)
    return fingerprint(
        {
            "source": split_fp if split_fp is not None else plan.data[key.task].pool_fingerprint,
            "seed": key.seed,
            "method": method.name,
            "config": method.config.identity(),
            "backend": generator.cache_namespace,
            "model": generator.model_id,
            "options": generator.output_options(),
            # only when set: sets without curation keep the fingerprints their finished runs hold
            **({"curate": semantic(curation)} if curation is not None else {}),
        }
    )


def set_prompts(plan: Plan, key: SetKey) -> int:
    """Prompts a set will need (for the grid bar's ETA; top-up rounds are not foreseen)."""
    method, _, _ = set_method(plan, key)
    n_labels = len(plan.data[key.task].task.groups)
    return int(getattr(method.config, "per_label", 0) * getattr(method.config, "oversample", 1.0) * n_labels)
