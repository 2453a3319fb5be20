"""One writer per run directory: an exclusive `fcntl.flock` on `<run>/.lock`, held for the whole run.

The kernel releases a flock when its process dies, however it dies (SIGKILL, OOM, a lost SSH session),
so a lock left by a dead run never blocks the next one: there is no stale-lock timeout to guess. The
lock file holds the holder's pid, host, command and start time, only to say who holds it; its
existence means nothing. Read-only commands (`report`, `quality`, `cache info`) never take it and work
beside a running grid. The lock belongs to the driver process: cells that an executor runs elsewhere
(issue 27) write only their own stage folders and never take or wait for it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from fewforge.errors import ResumeError
from fewforge.storage import disk_errors

LOCK_FILE = ".lock"


class RunInUseError(ResumeError):
    """Another process holds the run directory's lock."""


class RunLock:
    """`with RunLock(root, command):` — the whole body runs as the only writer of `root`."""

    def __init__(self, root: str | Path, command: str | None = None) -> None:
        self.root = Path(root)
        self.path = self.root / LOCK_FILE
        self.command = command or " ".join(["fewforge", *sys.argv[1:]])
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        with disk_errors(self.path):
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise self._in_use() from None
        except OSError as exc:  # a file system without flock (some network mounts)
            os.close(fd)
            raise ResumeError(
                f"cannot lock {self.path}: {exc.strerror}",
                hint="put the run directory on a local disk, or on a network file system that supports flock",
            ) from None
        self._fd = fd
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command, "since": time.time()}
        with disk_errors(self.path):
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # no holder to name once it is gone
        except OSError:
            pass  # a full or read-only disk: the lock itself is released below all the same
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _in_use(self) -> RunInUseError:
        holder = read_holder(self.path)
        who = "another process"
        if holder.get("pid"):
            who = f"pid {holder['pid']}"
            if holder.get("host") and holder["host"] != socket.gethostname():
                who += f" on {holder['host']}"
            if holder.get("command"):
                who += f" ({holder['command']})"
            if holder.get("since"):
                who += f", running since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(holder['since']))}"
        return RunInUseError(
            f"run directory {self.root} is in use by {who}",
            hint="wait for it to finish or stop it, or use another --output; report, quality and cache info "
            "work beside a running grid",
        )


def read_holder(path: Path) -> dict[str, Any]:
    """Who holds the lock, as the holder wrote it; a holder that has only just taken the lock may not have
    written yet, so an empty file is read again for a moment."""
    for _ in range(20):
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError:
            return {}
        if text:
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                return {}
            return value if isinstance(value, dict) else {}
        time.sleep(0.01)
    return {}
