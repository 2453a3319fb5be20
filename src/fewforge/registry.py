"""Name → implementation registries with lazy imports, so `fewforge tasks` starts instantly."""

from __future__ import annotations

import importlib
from typing import Generic, TypeVar

from fewforge.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a short name to "module:attr"; the module is imported on first lookup."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._targets: dict[str, str] = {}

    def register(self, name: str, target: str) -> None:
        if name in self._targets:
            raise ValueError(f"{self.kind} {name!r} is already registered as {self._targets[name]}")
        self._targets[name] = target

    def names(self) -> list[str]:
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def get(self, name: str) -> T:
        if name not in self._targets:
            raise ConfigError(
                f"unknown {self.kind} {name!r}",
                hint=f"choose one of: {', '.join(self.names())}",
            )
        module_name, attr = self._targets[name].split(":")
        return getattr(importlib.import_module(module_name), attr)
