"""The run directory: where every artifact of an experiment lives, and which stages are finished.

    <output>/config.yaml                         resolved config (every default filled in)
    <output>/fewshot/seed13/{train,dev}.jsonl    LM-BFF split + split.json
    <output>/synthetic/seed13/<method>.jsonl     synthetic data with lineage (+ .parquet, .card.json)
    <output>/cache/generations.sqlite            generation cache (resume after an interruption)
    <output>/models/<condition>-seed13/          trained model
    <output>/records/<condition>-seed13.json     one result record
    <output>/results.json                        all records + mean ± std per condition
    <output>/logs/run.log

A finished stage writes `done.json` holding its fingerprint. On a rerun a stage whose fingerprint
matches is reused; a stage whose inputs changed is moved to `_stale/` (never deleted) and redone.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

DONE = "done.json"


def write_json_atomic(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str))
    os.replace(tmp, path)


class RunDir:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def cache_path(self) -> Path:
        return self.root / "cache" / "generations.sqlite"

    @property
    def log_path(self) -> Path:
        return self.root / "logs" / "run.log"

    @property
    def results_path(self) -> Path:
        return self.root / "results.json"

    def split_dir(self, seed: int) -> Path:
        return self.root / "fewshot" / f"seed{seed}"

    def synthetic_dir(self, seed: int) -> Path:
        return self.root / "synthetic" / f"seed{seed}"

    def model_dir(self, condition: str, seed: int) -> Path:
        return self.root / "models" / f"{_slug(condition)}-seed{seed}"

    def record_path(self, condition: str, seed: int) -> Path:
        return self.root / "records" / f"{_slug(condition)}-seed{seed}.json"

    # -- stage bookkeeping ------------------------------------------------------------------

    def done_fingerprint(self, stage_dir: Path) -> str | None:
        marker = stage_dir / DONE
        if not marker.exists():
            return None
        try:
            return json.loads(marker.read_text()).get("fingerprint")
        except (OSError, json.JSONDecodeError):
            return None

    def is_done(self, stage_dir: Path, fingerprint: str) -> bool:
        return self.done_fingerprint(stage_dir) == fingerprint

    def mark_done(self, stage_dir: Path, fingerprint: str, **info: Any) -> None:
        write_json_atomic(stage_dir / DONE, {"fingerprint": fingerprint, "finished": time.time(), **info})

    def retire(self, path: Path, fingerprint: str | None) -> Path | None:
        """Move a finished-but-outdated artifact to _stale/<relative path>/<fingerprint>/."""
        if not path.exists():
            return None
        target = self.root / "_stale" / path.relative_to(self.root) / (fingerprint or f"partial-{int(time.time())}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        shutil.move(str(path), str(target))
        return target


def _slug(condition: str) -> str:
    return condition.replace("+", "_")
