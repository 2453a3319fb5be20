"""The disk as a user meets it: OS and SQLite failures become one line naming the path and the fix, a
cleanup step never hides the error that started it, and a damaged SQLite file is moved aside.

A full disk usually fails twice: the write that ran out of space, then the bookkeeping after it (the
results store marks the cell failed, a log line, a temporary file removed). Only the first failure tells
the user what happened, so every cleanup that runs while an error is on its way up goes through
`quietly` (logged, never raised over the first).
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from fewforge.errors import FewforgeError, StorageError

log = logging.getLogger("fewforge")

_RERUN = "then rerun the same command: finished work is kept and the run resumes"
_OS_REASONS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the disk", f"free space on that disk or choose another --output, {_RERUN}"),
    errno.EDQUOT: ("the disk quota is exceeded", f"free space within your quota or choose another --output, {_RERUN}"),
    errno.EFBIG: ("the file size limit is reached", f"raise the limit (ulimit -f unlimited), {_RERUN}"),
    errno.EROFS: ("the file system is read-only", f"choose a writable --output (or remount the disk), {_RERUN}"),
    errno.EACCES: ("permission denied", f"make the folder writable for you (chmod/chown) or choose another --output, {_RERUN}"),
    errno.EPERM: ("operation not permitted", f"make the folder writable for you (chmod/chown) or choose another --output, {_RERUN}"),
    errno.EIO: ("an input/output error", f"check the disk (dmesg, fsck), {_RERUN}"),
}
# SQLite reports the OS failure in its own words (and never names the file): matched on its message.
_SQLITE_REASONS: tuple[tuple[str, int], ...] = (
    ("database or disk is full", errno.ENOSPC),
    ("readonly database", errno.EACCES),
    ("unable to open database file", errno.EACCES),
    ("disk i/o error", errno.EIO),
)
_DAMAGED = ("file is not a database", "malformed", "file is encrypted")


def is_damaged(exc: BaseException) -> bool:
    """A SQLite file whose bytes are not a database (random bytes, a truncated copy, a half-synced disk)."""
    return isinstance(exc, sqlite3.DatabaseError) and any(m in str(exc).lower() for m in _DAMAGED)


def storage_error(exc: BaseException, path: str | Path | None = None) -> StorageError | None:
    """The one-line error for a disk failure (None when `exc` is not one). `path` names the file when the
    exception does not (SQLite never does)."""
    where = getattr(exc, "filename", None) or path
    named = f" ({where})" if where else ""
    if isinstance(exc, OSError) and exc.errno in _OS_REASONS:
        reason, hint = _OS_REASONS[exc.errno]
        return StorageError(f"cannot write{named}: {reason}", hint=hint)
    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        if is_damaged(exc):
            return StorageError(
                f"the SQLite file{named} is damaged ({exc})",
                hint="rerun the same command: a damaged store is moved aside and rebuilt",
            )
        for fragment, code in _SQLITE_REASONS:
            if fragment in text:
                if code == errno.EIO and path is not None:  # SQLite's word for a refused write, whatever refused it
                    code = _probable_cause(Path(path)) or code
                reason, hint = _OS_REASONS[code]
                return StorageError(f"cannot write{named}: {reason} (SQLite: {exc})", hint=hint)
    return None


def _probable_cause(path: Path) -> int | None:
    """Why the OS refused SQLite's write, when it can be told from outside: a file at the size limit
    (`ulimit -f`) or a disk with (almost) no space left. SQLite reports both as a disk I/O error."""
    import resource
    import shutil

    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    files = [path.with_name(path.name + suffix) for suffix in ("", "-wal", "-journal")]
    sizes = [f.stat().st_size for f in files if f.is_file()]
    if soft != resource.RLIM_INFINITY and sizes and max(sizes) + (1 << 20) >= soft:
        return errno.EFBIG
    folder = next((p for p in (path.parent, *path.parents) if p.exists()), None)
    if folder is not None and shutil.disk_usage(folder).free < (1 << 20):
        return errno.ENOSPC
    return None


@contextmanager
def disk_errors(path: str | Path | None = None) -> Iterator[None]:
    """Turn a disk failure inside the block into one `StorageError` naming the file (`path` when the
    exception names none); every other exception passes unchanged."""
    try:
        yield
    except FewforgeError:
        raise
    except (OSError, sqlite3.Error) as exc:
        error = storage_error(exc, path)
        if error is None:
            raise
        raise error from exc


def quietly(action: Callable[[], object], what: str) -> None:
    """Run a cleanup step while an error is already on its way up: a second failure (often the same full
    disk) is logged, never raised over the first."""
    try:
        action()
    except Exception as exc:  # the first error is the one the user must see
        log.warning("%s also failed: %s: %s", what, type(exc).__name__, exc)


@contextmanager
def closing(close: Callable[[], object], what: str) -> Iterator[None]:
    """`close()` after the block; when the block failed, a failing close is logged, not raised."""
    try:
        yield
    except BaseException:
        quietly(close, what)
        raise
    close()


def move_aside(path: Path, why: str) -> Path:
    """Rename a damaged SQLite file (and its -wal / -shm companions) to `<name>.damaged-<time>` beside it:
    kept for inspection, never read again. Returns the new path of the main file."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}.{n}")
    for suffix in ("-wal", "-shm", ""):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.rename(target.with_name(target.name + suffix))
    log.warning("%s is damaged (%s): moved aside to %s", path, why, target)
    return target
