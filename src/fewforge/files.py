"""Atomic writes: the one way fewforge writes a JSON, YAML, JSONL or text artifact.

Every file goes through a temporary file in the same folder, is flushed to disk, then renamed over
the target, so a process killed at any moment leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()  # what a plain open() would have given the file (mkstemp makes it 0600)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary path beside `path`, fsync it, then rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        if tmp.is_file():
            os.chmod(tmp, _MODE)
            with tmp.open("rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # the first error is the one to report; a leftover is swept at the next start
            pass
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, value: Any) -> Path:
    """Pretty UTF-8 JSON; NaN is refused (it is not JSON), numpy scalars and paths become plain values."""
    text = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False, default=_plain) + "\n"
    return write_text(path, text)


def write_yaml(path: str | Path, value: Any) -> Path:
    import yaml

    return write_text(path, yaml.safe_dump(value, sort_keys=False, allow_unicode=True))


def write_lines(path: str | Path, records: Iterable[Any]) -> Path:
    """JSON Lines: one record per line."""

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False, default=_plain) + "\n")

    return atomic_write(path, write)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _plain(value: Any) -> Any:
    """JSON fallback for numpy scalars/arrays, paths and sets."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)
