"""Curation of synthetic sets anchored on the real examples: a label audit, then keep / filter / relabel /
weight (`stage.py`). A grid method takes it as `curate: {auditor: fewshot, action: filter, threshold: 0.5}`;
the CLI as `--curate auditor=fewshot,action=filter,threshold=0.5`.

Auditors by name: a new one is one module (an `Auditor` with its `Options`) plus one `AUDITORS.register`
line in `registry.py`.
"""

from __future__ import annotations

from fewforge.synthesis.curation.base import Audit, AuditContext, Auditor, AuditorOptions, CurateConfig
from fewforge.synthesis.curation.registry import AUDITORS, auditor_class, get_auditor, semantic
from fewforge.synthesis.curation.stage import REASONS, curate

__all__ = [
    "AUDITORS",
    "Audit",
    "AuditContext",
    "Auditor",
    "AuditorOptions",
    "CurateConfig",
    "REASONS",
    "auditor_class",
    "curate",
    "get_auditor",
    "semantic",
]
