"""Disk failures as one line naming the file and the fix; cleanup that never hides the first error."""

from __future__ import annotations

import errno
import logging
import sqlite3

import pytest

from fewforge.errors import StorageError
from fewforge.storage import closing, disk_errors, storage_error


@pytest.mark.parametrize(
    "code, reason, hint",
    [
        (errno.ENOSPC, "no space left on the disk", "free space"),
        (errno.EDQUOT, "quota", "quota"),
        (errno.EFBIG, "file size limit", "ulimit -f"),
        (errno.EROFS, "read-only", "writable --output"),
        (errno.EACCES, "permission denied", "chmod"),
    ],
)
def test_os_errors_name_the_file_and_the_fix(code, reason, hint):
    error = storage_error(OSError(code, "os words", "/runs/x/cells/c/record.json"))
    assert isinstance(error, StorageError)
    assert error.message.startswith("cannot write (/runs/x/cells/c/record.json)") and reason in error.message
    assert hint in error.hint and "rerun the same command" in error.hint


def test_sqlite_errors_get_the_path_they_never_name():
    full = storage_error(sqlite3.OperationalError("database or disk is full"), "/runs/x/results.sqlite")
    assert "(/runs/x/results.sqlite): no space left" in full.message
    readonly = storage_error(sqlite3.OperationalError("attempt to write a readonly database"), "/r/results.sqlite")
    assert "permission denied" in readonly.message
    damaged = storage_error(sqlite3.DatabaseError("file is not a database"), "/r/results.sqlite")
    assert "is damaged" in damaged.message and "moved aside and rebuilt" in damaged.hint
    assert storage_error(sqlite3.OperationalError("no such table: cells")) is None  # a bug, not the disk
    assert storage_error(ValueError("x")) is None and storage_error(OSError(errno.ENOENT, "gone")) is None


def test_disk_errors_translate_only_disk_failures():
    with pytest.raises(StorageError, match="no space left"):
        with disk_errors("/runs/x"):
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(KeyError):
        with disk_errors("/runs/x"):
            raise KeyError("a bug keeps its traceback")


def test_a_failing_cleanup_never_hides_the_first_error(caplog):
    def close() -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with caplog.at_level(logging.WARNING, logger="fewforge"), pytest.raises(OSError, match="first"):
        with closing(close, "closing results.sqlite"):
            raise OSError(errno.ENOSPC, "first")
    assert "closing results.sqlite also failed" in caplog.text
    with pytest.raises(sqlite3.OperationalError):  # without an error in flight, a failing close is the error
        with closing(close, "closing results.sqlite"):
            pass
