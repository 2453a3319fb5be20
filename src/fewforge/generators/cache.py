"""The one response cache: a SQLite file under any backend, one row per candidate.

Key = sha256(backend, model_id, the backend's output options (e.g. chat template on/off), prompt,
sampling params without seed and n, the candidate's request seed). The request seed already encodes
(params.seed, prompt position, candidate index), so n samples of a prompt and repeats of a prompt at
other positions stay distinct (dspy's identical-samples bug), while n=4 after n=2 reuses the first two.
"backend" is the backend's `cache_namespace`: the Batch API and the online API of one model share keys.

Only misses reach the engine. Each answer is committed the moment it arrives (one short transaction,
WAL mode), for every backend that reports candidates as they finish (all built-in ones), so a killed
run loses only the requests in flight and a rerun resumes. A request that failed for good is never
stored: it is counted in the `ledger` (failures.py) and asked again by the next run.

A file that is not a readable SQLite database (a crash of the disk, not of fewforge: SQLite itself
survives a killed process) is moved aside as `<name>.damaged-<time>` and an empty cache takes its
place, with a warning: its completions are generated again, never read wrong.

Scores (`Generator.score`) are deterministic, so they are cached too, in their own table under their
own key (`score_key`: backend, model_id, output options, prompt, continuation, adapter hash).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from fewforge.errors import BackendError
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
from fewforge.generators.failures import FailureLedger
from fewforge.generators.keys import cache_key, request_keys, score_key
from fewforge.storage import disk_errors, is_damaged, move_aside

__all__ = ["CachedGenerator", "cache_info", "cache_key", "cached_keys", "mean_completion_tokens", "request_keys",
           "score_key"]

log = logging.getLogger("fewforge")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    n_tokens INTEGER NOT NULL,
    backend TEXT NOT NULL,
    model_id TEXT NOT NULL,
    created REAL NOT NULL,
    prompt_tokens INTEGER
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


def _with(adapter: AdapterRequest | None) -> dict[str, Any]:
    """`adapter=` only when there is one: backends written before adapters keep working without it."""
    return {"adapter": adapter} if adapter is not None else {}


def _open(path: Path, *, check: bool) -> sqlite3.Connection:
    """The cache's connection, its tables made (and migrated). `check`: every page read first
    (`PRAGMA quick_check`, ~0.2 s per 77 MB), since a truncated file can open and fail only on a later
    lookup."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=60, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a killed process
        if check:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError(f"database disk image is malformed: {'; '.join(problems[:3])}")
        conn.execute(_SCHEMA)
        conn.execute(_SCORE_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(generations)")}
        if "prompt_tokens" not in columns:  # a cache written before usage was recorded
            conn.execute("ALTER TABLE generations ADD COLUMN prompt_tokens INTEGER")
        conn.commit()
    except BaseException:
        conn.close()
        raise
    return conn


def _files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


@contextmanager
def _read_only(path: Path, check: bool = False) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection (works beside a running grid), or None when there is no readable cache
    (`check`: every page read first, as `_open` does)."""
    if not path.exists():
        yield None
        return
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
    try:
        ok = [row[0] for row in conn.execute("PRAGMA quick_check")] == ["ok"] if check else True
        conn.execute("SELECT 1 FROM sqlite_master").fetchone()
        readable = ok
    except sqlite3.DatabaseError:
        readable = False
    try:
        yield conn if readable else None
    finally:
        conn.close()


def _query(path: Path, sql: str, args: Sequence[Any] = ()) -> list[tuple] | None:
    """Rows of a read-only query, or None when the file is missing, damaged or has no such table."""
    with _read_only(Path(path)) as conn:
        if conn is None:
            return None
        try:
            return conn.execute(sql, tuple(args)).fetchall()
        except sqlite3.DatabaseError:  # no such table yet, or a damaged page
            return None


def cache_info(path: str | Path) -> dict[str, Any]:
    """Location, row count and size on disk (database plus WAL files) of a cache file (read-only: it
    works beside a running grid; a damaged file is reported as such, not repaired here)."""
    path = Path(path)
    with _read_only(path, check=True) as conn:
        damaged = path.exists() and conn is None
    rows = None if damaged else _query(path, "SELECT COUNT(*) FROM generations")
    info: dict[str, Any] = {
        "path": str(path.resolve()),
        "rows": rows[0][0] if rows else (None if damaged else 0),
        "size_bytes": sum(f.stat().st_size for f in _files(path) if f.exists()),
    }
    if damaged:
        info["damaged"] = "not a readable SQLite database; the next run moves it aside and starts an empty cache"
    return info


def mean_completion_tokens(path: str | Path, model_id: str) -> float | None:
    """The mean length of the cached completions of `model_id` (for cost estimates), or None."""
    rows = _query(Path(path), "SELECT AVG(n_tokens) FROM generations WHERE model_id = ?", (model_id,))
    return float(rows[0][0]) if rows and rows[0][0] is not None else None


def cached_keys(path: str | Path, keys: Sequence[str]) -> set[str]:
    """Which of `keys` the cache at `path` holds (read-only)."""
    found: set[str] = set()
    with _read_only(Path(path)) as conn:
        for b in range(0, len(keys) if conn is not None else 0, _LOOKUP_BATCH):
            part = list(keys[b : b + _LOOKUP_BATCH])
            try:
                rows = conn.execute(f"SELECT key FROM generations WHERE key IN ({','.join('?' * len(part))})", part)
                found.update(k for (k,) in rows)
            except sqlite3.DatabaseError:  # no table yet: nothing cached
                break
    return found


class CachedGenerator(Generator):
    """Wraps `inner` with a persistent cache at `path`.

    `hits` / `misses` count candidates (not prompts); `score_hits` / `score_misses` count scored
    continuations; `usage` sums what the engine was asked for and answered (requests, failures, prompt and
    completion tokens), the spend of this generator's life. `ledger` counts failed requests per synthetic
    set (the pipeline gives each set a fresh one). `cache_only=True` raises on a miss instead of generating
    or scoring; `enabled=False` passes every call straight to the inner backend.
    """

    def __init__(
        self,
        inner: Generator,
        path: str | Path,
        *,
        chunk_size: int = 1024,
        cache_only: bool = False,
        enabled: bool = True,
    ) -> None:
        self.inner = inner
        self.path = Path(path)
        # Answers are committed one by one: a chunk only bounds how many requests one call holds.
        self.chunk_size = chunk_size
        self.cache_only = cache_only
        self.enabled = enabled
        self.hits = 0
        self.misses = 0
        self.score_hits = 0
        self.score_misses = 0
        self.usage = {"requests": 0, "failed": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self.ledger = FailureLedger()
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one generate / score call at a time
        self._db_lock = threading.Lock()  # the connection, also from the backend's threads
        self.damaged_copy: Path | None = None  # where a damaged cache file was moved aside, if it was
        bind = getattr(inner, "bind_state_dir", None)
        if enabled and callable(bind):  # the Batch API keeps its submitted batches beside the cache
            bind(self.path.parent / "batches")

    @property
    def backend(self) -> str:  # type: ignore[override]  # delegated, not a class constant here
        return self.inner.backend

    @property
    def cache_namespace(self) -> str:
        return self.inner.cache_namespace

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
        """Hit/miss counts and the engine's usage over this generator's life, or since an earlier
        `stats()` snapshot."""
        since = since or {}
        hits = self.hits - since.get("hits", 0)
        misses = self.misses - since.get("misses", 0)
        total = hits + misses
        before = since.get("usage", {})
        usage = {k: v - before.get(k, 0) for k, v in self.usage.items()}
        return {
            "hits": hits,
            "misses": misses,
            "hit_rate": hits / total if total else 0.0,
            "usage": usage,
            "path": str(self.path),
        }

    def info(self) -> dict[str, Any]:
        return cache_info(self.path)

    # -- storage ---------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            with disk_errors(self.path):
                try:
                    self._conn = _open(self.path, check=True)
                except sqlite3.DatabaseError as exc:
                    if not is_damaged(exc):
                        raise
                    # A damaged cache cannot be read right: set it aside and regenerate what is missing.
                    self.damaged_copy = move_aside(self.path, str(exc))
                    self._conn = _open(self.path, check=False)
        return self._conn

    def _lookup(self, keys: list[str]) -> dict[str, Candidate]:
        found: dict[str, Candidate] = {}
        with self._db_lock:
            db = self._db()
            for b in range(0, len(keys), _LOOKUP_BATCH):
                part = keys[b : b + _LOOKUP_BATCH]
                rows = db.execute(
                    "SELECT key, text, finish_reason, n_tokens, prompt_tokens FROM generations "
                    f"WHERE key IN ({','.join('?' * len(part))})",
                    part,
                )
                for key, text, finish, n_tokens, prompt_tokens in rows:
                    found[key] = Candidate(text=text, finish_reason=finish, n_tokens=n_tokens, prompt_tokens=prompt_tokens)
        return found

    def _store(self, rows: list[tuple[str, Candidate]], model_id: str) -> None:
        """Commit answered candidates (failed ones are never stored: a rerun asks for them again)."""
        now, namespace = time.time(), self.inner.cache_namespace
        values = [
            (k, c.text, c.finish_reason, c.n_tokens, namespace, model_id, now, c.prompt_tokens)
            for k, c in rows
            if c.ok
        ]
        if not values:
            return
        with self._db_lock:
            db = self._db()
            # OR IGNORE: an existing row wins, so a cached candidate never changes under a reader.
            db.executemany(
                "INSERT OR IGNORE INTO generations "
                "(key, text, finish_reason, n_tokens, backend, model_id, created, prompt_tokens) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            db.commit()

    def _answered(self, key: str, position: int, j: int, candidate: Candidate, model_id: str) -> None:
        """One fresh answer: stored at once, then tallied."""
        self._store([(key, candidate)], model_id)
        self._tally(key, position, j, candidate)

    def _tally(self, key: str, position: int, j: int, candidate: Candidate) -> None:
        """Count an answer in the usage and the failure ledger (which stops the call by raising when
        too many requests failed)."""
        with self._db_lock:
            self.usage["requests"] += 1
            self.usage["failed"] += 0 if candidate.ok else 1
            self.usage["prompt_tokens"] += candidate.prompt_tokens or 0
            self.usage["completion_tokens"] += candidate.n_tokens
        self.ledger.answered(key, position, j, candidate.failure)

    def close(self) -> None:
        with self._lock, self._db_lock:
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
            out = self.inner.generate(prompts, params, start_index=start_index, progress=progress, **_with(adapter))
            where = positions(start_index, len(prompts))
            for i, completion in enumerate(out):
                for j, cand in enumerate(completion.candidates):
                    self._tally("", where[i], j, cand)
            return out
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
        model_id = self.inner.model_id
        where = positions(start_index, len(prompts))
        keys = request_keys(self.inner, prompts, params, where, adapter)
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
        streams = self.inner.reports_candidates
        # A backend that does not report candidates is stored per call: smaller calls lose less when killed.
        size = self.chunk_size if streams else min(self.chunk_size, 64)
        if self.inner.whole_calls:
            size = max(len(missing), 1)
        for c in range(0, len(missing), size):
            # Explicit positions keep every seed tied to its place in the caller's list.
            chunk = missing[c : c + size]
            seen: set[tuple[int, int]] = set()

            def on_candidate(n: int, j: int, candidate: Candidate, chunk: list[int] = chunk) -> None:
                i = chunk[n]
                seen.add((i, j))
                if keys[i][j] not in found:  # n=4 after n=2: the first two are hits, kept as they were
                    self._answered(keys[i][j], where[i], j, candidate, model_id)

            out = self.inner.generate(
                [prompts[i] for i in chunk],
                params,
                start_index=[where[i] for i in chunk],
                progress=progress,
                **_with(adapter),
                **({"on_candidate": on_candidate} if streams else {}),
            )
            for n, (i, completion) in enumerate(zip(chunk, out)):
                fresh[i] = completion.candidates
                for j, candidate in enumerate(completion.candidates):
                    if (i, j) not in seen:  # a backend that does not report candidates: stored per call
                        on_candidate(n, j, candidate)

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
        backend, model_id, options = self.inner.cache_namespace, self.inner.model_id, self.inner.output_options()
        keys = [score_key(backend, model_id, p, c, options, adapter) for p, c in zip(prompts, continuations)]
        found: dict[str, Score] = {}
        with self._db_lock:
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
            with self._db_lock:
                db.executemany(
                    "INSERT OR IGNORE INTO scores VALUES (?, ?, ?, ?, ?, ?)",
                    [(keys[i], s.logprob, s.n_tokens, backend, model_id, now) for i, s in zip(chunk, out)],
                )
                db.commit()
            for i, s in zip(chunk, out):
                found[keys[i]] = s
        return [found[k] for k in keys]
