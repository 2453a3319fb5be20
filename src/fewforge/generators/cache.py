"""The one response cache: a SQLite file under any backend, one row per candidate.

Key = sha256(backend, model_id, the backend's output options (e.g. chat template on/off), prompt,
sampling params without seed and n, the candidate's request seed). The request seed already encodes
(params.seed, prompt position, candidate index), so n samples of a prompt and repeats of a prompt at
other positions stay distinct (dspy's identical-samples bug), while n=4 after n=2 reuses the first two.
Misses are generated in chunks and committed after each chunk (WAL mode), so a killed run keeps
everything but the chunk in flight and a rerun resumes.

Scores (`Generator.score`) are deterministic, so they are cached too, in their own table under their
own key (`score_key`: backend, model_id, output options, prompt, continuation, adapter hash).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from fewforge.errors import BackendError
from fewforge.storage import disk_errors, is_damaged, move_aside
from fewforge.generators.base import (
    AdapterRequest,
    Candidate,
    Completion,
    Generator,
    Positions,
    ProgressCallback,
    SamplingParams,
    Score,
    TrainableLM,
    positions,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    n_tokens INTEGER NOT NULL,
    backend TEXT NOT NULL,
    model_id TEXT NOT NULL,
    created REAL NOT NULL
)
"""
_SCORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    key TEXT PRIMARY KEY,
    logprob REAL NOT NULL,
    n_tokens INTEGER NOT NULL,
    backend TEXT NOT NULL,
    model_id TEXT NOT NULL,
    created REAL NOT NULL
)
"""
_LOOKUP_BATCH = 500  # keys per SELECT ... IN (...), well under SQLite's variable limit


def cache_key(
    backend: str,
    model_id: str,
    prompt: str,
    params: SamplingParams,
    seed: int,
    options: dict[str, Any] | None = None,
    adapter: AdapterRequest | None = None,
) -> str:
    sampling = {k: v for k, v in params.to_dict().items() if k not in ("seed", "n")}
    identity: list[Any] = [backend, model_id, prompt, sampling, seed]
    if options:  # only when a backend reports some, so keys of backends without any stay as they were
        identity.append(options)
    if adapter is not None:  # likewise: keys without an adapter are unchanged
        identity.append({"adapter": adapter.content_hash})
    payload = json.dumps(identity, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def score_key(
    backend: str,
    model_id: str,
    prompt: str,
    continuation: str,
    options: dict[str, Any] | None = None,
    adapter: AdapterRequest | None = None,
) -> str:
    """The key of one cached score: its own namespace, never equal to a generation's key."""
    identity = ["score", backend, model_id, options or {}, prompt, continuation]
    identity.append(adapter.content_hash if adapter is not None else None)
    payload = json.dumps(identity, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def _with(adapter: AdapterRequest | None) -> dict[str, Any]:
    """`adapter=` only when there is one: backends written before adapters keep working without it."""
    return {"adapter": adapter} if adapter is not None else {}


def cache_info(path: str | Path) -> dict[str, Any]:
    """Location, row count and size on disk (database plus WAL files) of a cache file."""
    path = Path(path)
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    rows: int | None = 0
    damaged = None
    if path.exists():
        conn = sqlite3.connect(path)
        try:  # read-only: a damaged file is reported, never moved (the next run moves it aside)
            exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='generations'").fetchone()
            rows = conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0] if exists else 0
        except sqlite3.DatabaseError as exc:
            if not is_damaged(exc):
                raise
            rows, damaged = None, f"{exc}: the next run moves it aside and starts an empty cache"
        finally:
            conn.close()
    return {
        "path": str(path.resolve()),
        "rows": rows,
        "size_bytes": sum(f.stat().st_size for f in files if f.exists()),
        **({"damaged": damaged} if damaged else {}),
    }


class CachedGenerator(Generator):
    """Wraps `inner` with a persistent cache at `path`.

    `hits` / `misses` count candidates (not prompts); `score_hits` / `score_misses` count scored
    continuations. `cache_only=True` raises on a miss instead of generating or scoring; `enabled=False`
    passes every call straight to the inner backend.
    """

    def __init__(
        self,
        inner: Generator,
        path: str | Path,
        *,
        chunk_size: int = 64,
        cache_only: bool = False,
        enabled: bool = True,
    ) -> None:
        self.inner = inner
        self.path = Path(path)
        self.chunk_size = chunk_size
        self.cache_only = cache_only
        self.enabled = enabled
        self.hits = 0
        self.misses = 0
        self.score_hits = 0
        self.score_misses = 0
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.damaged_copy: Path | None = None  # where a damaged cache file was moved aside, if it was

    @property
    def backend(self) -> str:  # type: ignore[override]  # delegated, not a class constant here
        return self.inner.backend

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def output_options(self) -> dict[str, Any]:
        return self.inner.output_options()

    @property
    def supports_adapters(self) -> bool:  # type: ignore[override]  # delegated, not a class constant here
        return self.inner.supports_adapters

    @property
    def supports_scoring(self) -> bool:  # type: ignore[override]  # delegated, not a class constant here
        return self.inner.supports_scoring

    def trainable(self) -> TrainableLM:
        return self.inner.trainable()

    def stats(self, since: dict[str, Any] | None = None) -> dict[str, Any]:
        """Hit/miss counts of this generator's life, or since an earlier `stats()` snapshot."""
        hits = self.hits - (since or {}).get("hits", 0)
        misses = self.misses - (since or {}).get("misses", 0)
        total = hits + misses
        return {"hits": hits, "misses": misses, "hit_rate": hits / total if total else 0.0, "path": str(self.path)}

    def info(self) -> dict[str, Any]:
        return cache_info(self.path)

    # -- storage ---------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            with disk_errors(self.path):
                try:
                    self._conn = self._connect(check=True)
                except sqlite3.DatabaseError as exc:
                    if not is_damaged(exc):
                        raise
                    # A damaged cache cannot be read right: set it aside and regenerate what is missing.
                    self.damaged_copy = move_aside(self.path, str(exc))
                    self._conn = self._connect(check=False)
        return self._conn

    def _connect(self, *, check: bool) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a killed process
            if check:  # every page readable: a truncated file can open and fail only on a later lookup
                problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
                if problems != ["ok"]:
                    raise sqlite3.DatabaseError(f"database disk image is malformed: {'; '.join(problems[:3])}")
            conn.execute(_SCHEMA)
            conn.execute(_SCORE_SCHEMA)
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn

    def _lookup(self, keys: list[str]) -> dict[str, Candidate]:
        found: dict[str, Candidate] = {}
        db = self._db()
        for b in range(0, len(keys), _LOOKUP_BATCH):
            part = keys[b : b + _LOOKUP_BATCH]
            rows = db.execute(
                "SELECT key, text, finish_reason, n_tokens FROM generations "
                f"WHERE key IN ({','.join('?' * len(part))})",
                part,
            )
            for key, text, finish, n_tokens in rows:
                found[key] = Candidate(text=text, finish_reason=finish, n_tokens=n_tokens)
        return found

    def _store(self, rows: list[tuple[str, Candidate]], model_id: str) -> None:
        db, now, backend = self._db(), time.time(), self.inner.backend
        # OR IGNORE: an existing row wins, so a cached candidate never changes under a reader.
        db.executemany(
            "INSERT OR IGNORE INTO generations VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(k, c.text, c.finish_reason, c.n_tokens, backend, model_id, now) for k, c in rows],
        )
        db.commit()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        self.inner.close()

    def load(self) -> None:
        self.inner.load()

    # -- generation ------------------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        start_index: Positions = 0,
        progress: ProgressCallback | None = None,
        adapter: AdapterRequest | None = None,
    ) -> list[Completion]:
        self.inner.check_adapter(adapter)  # before any lookup: a cache hit must not hide the error
        if not self.enabled:
            return self.inner.generate(prompts, params, start_index=start_index, progress=progress, **_with(adapter))
        with self._lock:
            return self._generate(list(prompts), params, start_index, progress, adapter)

    def _generate(
        self,
        prompts: list[str],
        params: SamplingParams,
        start_index: Positions,
        progress: ProgressCallback | None,
        adapter: AdapterRequest | None = None,
    ) -> list[Completion]:
        backend, model_id, options = self.inner.backend, self.inner.model_id, self.inner.output_options()
        where = positions(start_index, len(prompts))
        keys = [
            [
                cache_key(backend, model_id, p, params, params.request_seed(where[i], j), options, adapter)
                for j in range(params.n)
            ]
            for i, p in enumerate(prompts)
        ]
        found = self._lookup([k for row in keys for k in row])
        missing = [i for i, row in enumerate(keys) if any(k not in found for k in row)]
        n_missing = sum(k not in found for row in keys for k in row)
        self.hits += len(prompts) * params.n - n_missing
        if missing and self.cache_only:
            raise BackendError(
                f"{len(missing)} of {len(prompts)} prompts are not in the cache {self.path}",
                hint="run without cache_only (--cache-only) to generate them",
            )
        self.misses += n_missing
        if progress is not None and len(prompts) > len(missing):
            progress(len(prompts) - len(missing))

        fresh: dict[int, tuple[Candidate, ...]] = {}
        for c in range(0, len(missing), self.chunk_size):
            # Explicit positions keep every seed tied to its place in the caller's list.
            chunk = missing[c : c + self.chunk_size]
            out = self.inner.generate(
                [prompts[i] for i in chunk],
                params,
                start_index=[where[i] for i in chunk],
                progress=progress,
                **_with(adapter),
            )
            rows = []
            for i, completion in zip(chunk, out):
                fresh[i] = completion.candidates
                rows += list(zip(keys[i], completion.candidates))
            self._store(rows, model_id)

        completions = []
        for i, prompt in enumerate(prompts):
            if i not in fresh:
                cands = tuple(found[k] for k in keys[i])
                completions.append(Completion(prompt=prompt, candidates=cands, cached=True))
            else:  # rows already cached win over regenerated ones (they were stored first)
                cands = tuple(found.get(k, c) for k, c in zip(keys[i], fresh[i]))
                completions.append(Completion(prompt=prompt, candidates=cands))
        return completions

    # -- scoring ---------------------------------------------------------------------------------
    def score(
        self,
        prompts: Sequence[str],
        continuations: Sequence[str],
        *,
        adapter: AdapterRequest | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[Score]:
        """The inner backend's scores, cached: only the pairs not in the cache reach it."""
        if not self.inner.supports_scoring:  # its own error, before any lookup
            return self.inner.score(prompts, continuations, progress=progress, **_with(adapter))
        self.inner.check_adapter(adapter)
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts for {len(continuations)} continuations")  # a caller bug
        if not self.enabled:
            return self.inner.score(prompts, continuations, progress=progress, **_with(adapter))
        with self._lock:
            return self._score(list(prompts), list(continuations), adapter, progress)

    def _score(
        self,
        prompts: list[str],
        continuations: list[str],
        adapter: AdapterRequest | None,
        progress: ProgressCallback | None,
    ) -> list[Score]:
        backend, model_id, options = self.inner.backend, self.inner.model_id, self.inner.output_options()
        keys = [score_key(backend, model_id, p, c, options, adapter) for p, c in zip(prompts, continuations)]
        found: dict[str, Score] = {}
        db = self._db()
        for b in range(0, len(keys), _LOOKUP_BATCH):
            part = keys[b : b + _LOOKUP_BATCH]
            rows = db.execute(
                f"SELECT key, logprob, n_tokens FROM scores WHERE key IN ({','.join('?' * len(part))})", part
            )
            found.update({key: Score(logprob=lp, n_tokens=n) for key, lp, n in rows})
        first: dict[str, int] = {}  # each missing key once, at its first position
        for i, k in enumerate(keys):
            if k not in found:
                first.setdefault(k, i)
        missing = list(first.values())
        n_missing = sum(k not in found for k in keys)
        self.score_hits += len(keys) - n_missing
        if missing and self.cache_only:
            raise BackendError(
                f"{n_missing} of {len(keys)} scores are not in the cache {self.path}",
                hint="run without cache_only (--cache-only) to score them",
            )
        self.score_misses += n_missing
        if progress is not None and len(keys) > len(missing):
            progress(len(keys) - len(missing))
        for c in range(0, len(missing), self.chunk_size):
            chunk = missing[c : c + self.chunk_size]
            out = self.inner.score(
                [prompts[i] for i in chunk], [continuations[i] for i in chunk], progress=progress, **_with(adapter)
            )
            now = time.time()
            db.executemany(
                "INSERT OR IGNORE INTO scores VALUES (?, ?, ?, ?, ?, ?)",
                [(keys[i], s.logprob, s.n_tokens, backend, model_id, now) for i, s in zip(chunk, out)],
            )
            db.commit()
            for i, s in zip(chunk, out):
                found[keys[i]] = s
        return [found[k] for k in keys]
