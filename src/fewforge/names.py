"""Every name that becomes a path segment — task names, method and learner ids, grid names — is checked
here, once, at plan time, before a file is read or moved.

A name is `[A-Za-z0-9][A-Za-z0-9._+-]*`: it cannot be `.` or `..`, hold a separator, start with a dot
(hidden and temporary files in a run directory start with one) or be empty. A method id `..` once made a
set's folder the task's whole synthetic tree, and a task name `../x` chose which data folder was read.
"""

from __future__ import annotations

import re
from typing import Iterable

from fewforge.errors import ConfigError

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._+-]*"
_NAME = re.compile(NAME_PATTERN)


def check_name(value: str, what: str) -> str:
    """`value` if it is a safe path segment, else a ConfigError naming `what` (e.g. "methods[1].id")."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or value in (".", ".."):
        raise ConfigError(
            f"{what} {value!r} cannot name a folder",
            hint=f"use letters, digits and . _ + - only, starting with a letter or digit ({NAME_PATTERN})",
        )
    return value


def check_distinct_folders(names: Iterable[tuple[str, str]], kind: str) -> None:
    """Two names that map to one folder (`a+b` and `a_b` both become `a_b`) would share their outputs."""
    seen: dict[str, str] = {}
    for where, name in names:
        folder = folder_name(name)
        if folder in seen and seen[folder] != name:
            raise ConfigError(
                f"{kind} {seen[folder]!r} and {where} {name!r} would share the folder {folder!r}",
                hint="give one of them another id",
            )
        seen[folder] = name


def folder_name(name: str) -> str:
    """A folder name for a task/method/learner/strategy name: path separators, '+' and '->' are replaced.
    Names are checked at plan time (check_name); a name that still cannot be a folder is refused here."""
    slug = name.replace("->", "_to_").replace("/", "_").replace("\\", "_").replace("+", "_").replace(" ", "_")
    slug = slug.replace(":", "_")
    if slug in ("", ".", ".."):
        check_name(name, "name")  # raises: '..' or '.' would address a parent or the folder itself
    return slug
