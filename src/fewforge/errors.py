"""User-facing errors: one line saying what is wrong, and a hint saying how to fix it.

The CLI catches `FewforgeError` once and prints `error: <message>` plus `hint: <hint>`; anything else
is a bug and keeps its traceback. Raise where the file, line or label is known.
"""

from __future__ import annotations

from typing import Any


class FewforgeError(Exception):
    """Base class of every error a user can cause and fix."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with its hint: an error raised in a worker process reaches the driver whole."""
        return (type(self), (self.message, self.hint))


class ConfigError(FewforgeError):
    """An option, config file or parameter value is invalid."""


class TaskError(FewforgeError):
    """Unknown task or label, or a malformed task definition."""


class DataError(FewforgeError):
    """A data file is missing, malformed, or does not fit the task."""


class BackendError(FewforgeError):
    """A generator backend could not be loaded or did not answer."""


class ResumeError(FewforgeError):
    """An existing run directory cannot be reused safely."""


class StorageError(FewforgeError):
    """The disk refused a write or a read: full, read-only, permission denied, a damaged store."""


class PendingWork(FewforgeError):
    """Work handed to an engine that has not finished yet (Batch API batches after `--submit-only`):
    nothing failed, and a later run collects it."""


class CellsFailed(FewforgeError):
    """Cells of a grid failed; the others finished, and results.json and the report were written."""
