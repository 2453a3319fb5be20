"""Synthesis methods by name. A new method is one module plus one `METHODS.register` line here."""

from __future__ import annotations

from typing import Any, Mapping

from fewforge.errors import ConfigError
from fewforge.registry import Registry
from fewforge.synthesis.base import MethodConfig, SynthesisMethod, SyntheticDataset

__all__ = ["METHODS", "MethodConfig", "SynthesisMethod", "SyntheticDataset", "get_method"]

METHODS: Registry[type[SynthesisMethod]] = Registry("synthesis method")
METHODS.register("zerogen", "fewforge.synthesis.zerogen:ZeroGen")
METHODS.register("fewgen", "fewforge.synthesis.fewgen.method:FewGen")
METHODS.register("dawgen", "fewforge.synthesis.fewgen.method:DawGen")
METHODS.register("daftt-annotate", "fewforge.synthesis.daftt.method:DafttAnnotate")
METHODS.register("daftt-generate", "fewforge.synthesis.daftt.method:DafttGenerate")
METHODS.register("s3", "fewforge.synthesis.s3.method:S3")
METHODS.register("goldgen", "fewforge.synthesis.s3.extrapolation:GoldGen")
METHODS.register("auto", "fewforge.synthesis.auto:Auto")


def _fields(model: type[MethodConfig], path: tuple[Any, ...]) -> list[str]:
    """The valid option names at `path` inside a (possibly nested) config model."""
    from pydantic import BaseModel

    for part in path:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def get_method(name: str, config: Mapping[str, Any] | None = None) -> SynthesisMethod:
    """The method registered as `name`, configured from a plain dict (e.g. a YAML section)."""
    from pydantic import ValidationError

    cls = METHODS.get(name)
    try:
        cfg = cls.Config.model_validate(dict(config or {}))
    except ValidationError as e:
        unknown = [err["loc"] for err in e.errors() if err["type"] == "extra_forbidden"]
        if unknown:
            names = ", ".join(".".join(map(str, loc)) for loc in unknown)
            valid = _fields(cls.Config, unknown[0][:-1])
            raise ConfigError(
                f"unknown option(s) for synthesis method {name!r}: {names}",
                hint=f"valid options: {', '.join(valid)}",
            ) from None
        err = e.errors()[0]
        where = ".".join(map(str, err["loc"]))
        raise ConfigError(
            f"invalid option for synthesis method {name!r}: {where}: {err['msg']} (got {err.get('input')!r})",
            hint=f"valid options: {', '.join(_fields(cls.Config, ()))}",
        ) from None
    return cls(cfg)
