"""Auditors by name: a new one is one module (an `Auditor` with its `Options`) plus one
`AUDITORS.register` line here. The stage (stage.py) and the grid's plan-time checks look auditors up here."""

from __future__ import annotations

from typing import Any, Mapping

from fewforge.errors import ConfigError
from fewforge.registry import Registry
from fewforge.synthesis.curation.base import Auditor, CurateConfig

AUDITORS: Registry[type[Auditor]] = Registry("auditor")
AUDITORS.register("fewshot", "fewforge.synthesis.curation.fewshot:FewShotAuditor")
AUDITORS.register("generator", "fewforge.synthesis.curation.generator:GeneratorAuditor")
AUDITORS.register("teacher", "fewforge.synthesis.curation.teacher:TeacherAuditor")


def get_auditor(name: str, options: Mapping[str, Any] | None = None) -> Auditor:
    """The auditor registered as `name` with its options validated (one-line errors naming the option)."""
    from pydantic import ValidationError

    from fewforge.config import config_error

    cls = AUDITORS.get(name)
    try:
        return cls(cls.Options.model_validate(dict(options or {})))
    except ValidationError as exc:
        raise config_error(exc, cls.Options, path=f"{name} auditor option") from None


def auditor_class(name: str) -> type[Auditor]:
    """The class registered as `name` (its `reads_fewshot`, `needs_scoring`, `needs_adapters`)."""
    try:
        return AUDITORS.get(name)
    except ConfigError as exc:
        raise ConfigError(f"curate.auditor: {exc.message}", hint=exc.hint) from None


def semantic(config: CurateConfig) -> dict[str, Any]:
    """What of a curation can change the set (for its fingerprint): every option, the auditor's defaults
    filled in, without the ones marked `semantic: False` (batch sizes)."""
    cls = auditor_class(config.auditor)
    options = cls.Options.model_validate(config.options)
    skip = {n for n, f in cls.Options.model_fields.items() if (f.json_schema_extra or {}).get("semantic") is False}
    # overgenerate only when set, so that sets curated before it existed keep their fingerprints
    exclude = {"options"} | ({"overgenerate"} if config.overgenerate == 1.0 else set())
    return {**config.model_dump(mode="json", exclude=exclude), "options": options.model_dump(mode="json", exclude=skip)}
