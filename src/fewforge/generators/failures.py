"""Requests that failed for good, per synthetic set: counted, listed in `failures.jsonl`, and allowed up to
`max_failed_fraction` of the set's requests.

A failed request is not cached, so a rerun asks for it again and nothing else. While a set generates,
the ledger stops it early when failures pile up (at least `min_to_stop` and more than the fraction):
a dead server must not be sent every request of a 200k-row set, each after its retries.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fewforge.errors import BackendError
from fewforge.generators.base import RequestFailure

DEFAULT_MAX_FAILED_FRACTION = 0.2


@dataclass
class FailureLedger:
    max_failed_fraction: float = DEFAULT_MAX_FAILED_FRACTION
    min_to_stop: int = 20
    requests: int = 0  # candidates asked of the engine and answered, one way or the other
    failed: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def answered(self, key: str, position: int, candidate: int, failure: RequestFailure | None) -> None:
        """Count one answer; a failure is listed, and too many of them stop the set now."""
        with self._lock:
            self.requests += 1
            if failure is None:
                return
            self.failed += 1
            self.rows.append(
                {
                    "key": key,
                    "position": position,
                    "candidate": candidate,
                    "status": failure.status,
                    "message": failure.message,
                    "attempts": failure.attempts,
                }
            )
            if self.failed >= self.min_to_stop and self.failed > self.max_failed_fraction * self.requests:
                raise self.error(stopped=True)

    @property
    def first(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows else None

    def check(self) -> None:
        """At the end of a set: one line when more than the allowed fraction of its requests failed."""
        if self.requests and self.failed > self.max_failed_fraction * self.requests:
            raise self.error(stopped=False)

    def error(self, stopped: bool) -> BackendError:
        first = self.first or {}
        reason = f"{first.get('status')}: {first.get('message')}" if first.get("status") is not None else first.get("message")
        share = 100 * self.failed / max(self.requests, 1)
        when = "stopped early: " if stopped else ""
        return BackendError(
            f"{when}{self.failed} of {self.requests} generation requests failed ({share:.0f}% > "
            f"max_failed_fraction {self.max_failed_fraction:g}); the first: {reason}",
            hint="fix the cause (failures.jsonl in the set's folder lists each one) or raise "
            "generator_options.max_failed_fraction; a rerun asks again for the failed requests only",
        )

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "max_failed_fraction": self.max_failed_fraction,
            **({"first": self.first} if self.first else {}),
        }

    def write(self, path: Path) -> None:
        """failures.jsonl: one line per failed request (key, position, status, message, attempts)."""
        from fewforge.files import write_lines

        if self.rows:
            write_lines(path, self.rows)
