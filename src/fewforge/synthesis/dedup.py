"""Near-duplicate removal that scales to ZeroGen's own size (200k rows) without an n × n matrix.

The rule (unchanged from the first slice): rows are visited in order; a row is dropped when it is within
`threshold` cosine of a real input ("real_duplicate") or of an earlier *kept* row — of the same label
("near_duplicate") or, with scope "all", of another label ("near_duplicate_other_label": an ambiguous
text). Every drop names its partner and the similarity.

How it scales: kept rows go into one faiss HNSW index per label (approximate nearest neighbours,
O(log n) per query), real inputs into an exact flat index. Rows are processed in blocks: a block is
searched against the indexes in one call, rows inside the block are compared exactly with each other
(a block × block product), and the block's kept rows are then added. Memory is O(n · dim), time
O(n log n); `bench/postprocess.py` measures it. HNSW may miss a neighbour that exact search would find
(recall < 1, negligible at the 0.95 threshold used here); it never reports a false one, because every
similarity it returns is an exact inner product. Indexes are built one vector at a time on one thread,
so the result does not depend on thread scheduling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

BLOCK = 256  # rows searched per call
NEIGHBOURS = 8  # nearest kept rows looked at per row and label index
HNSW_M = 32  # graph degree: faiss' recommended default for ~100k-1M vectors
HNSW_EF_SEARCH = 64


@dataclass(frozen=True)
class Match:
    """Why a row was dropped, and what it duplicates."""

    reason: str  # real_duplicate | near_duplicate | near_duplicate_other_label
    partner: int  # index of the kept row (or, for real_duplicate, of the real input)
    similarity: float


def _import_faiss() -> Any:
    try:
        import faiss
    except ImportError:  # a declared dependency; only a broken install gets here
        from fewforge.errors import ConfigError

        raise ConfigError("near-duplicate removal needs faiss", hint="pip install faiss-cpu") from None
    return faiss


class _LabelIndex:
    """HNSW index over one label's kept rows; remembers which row each vector is."""

    def __init__(self, faiss: Any, dim: int) -> None:
        self.faiss = faiss
        self.index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efSearch = HNSW_EF_SEARCH
        self.rows: list[int] = []

    def search(self, queries: Any) -> tuple[Any, Any]:
        """(similarities, row ids) of the NEIGHBOURS nearest kept rows; row id -1 = none."""
        import numpy as np

        k = min(NEIGHBOURS, len(self.rows))
        sims, ids = self.index.search(queries, k)
        rows = np.asarray(self.rows)[np.maximum(ids, 0)]
        return sims, np.where(ids >= 0, rows, -1)

    def add(self, vectors: Any, rows: list[int]) -> None:
        threads = self.faiss.omp_get_max_threads()
        self.faiss.omp_set_num_threads(1)  # a parallel insert builds a schedule-dependent graph
        try:
            self.index.add(vectors)
        finally:
            self.faiss.omp_set_num_threads(threads)
        self.rows += rows


def nearest(vectors: Any, reference: Any) -> tuple[Any, Any]:
    """(similarity, index) of each row's nearest reference vector, by exact search (references are few:
    a few-shot split, a test set); -inf and -1 when there are no references. Unit-norm float32 inputs."""
    import numpy as np

    n = len(vectors)
    if reference is None or not len(reference) or not n:
        return np.full(n, -np.inf, dtype=np.float32), np.full(n, -1)
    faiss = _import_faiss()
    reference = np.ascontiguousarray(reference, dtype=np.float32)
    flat = faiss.IndexFlatIP(reference.shape[1])
    flat.add(reference)
    sims, ids = flat.search(np.ascontiguousarray(vectors, dtype=np.float32), 1)
    return sims[:, 0], ids[:, 0]


def near_duplicates(
    vectors: Any,
    labels: Sequence[str],
    real_vectors: Any,
    threshold: float,
    scope: Literal["all", "label"] = "all",
) -> list[Match | None]:
    """One entry per row (None = keep); `vectors` and `real_vectors` are unit-norm float32 arrays."""
    import numpy as np

    n = len(labels)
    out: list[Match | None] = [None] * n
    if n == 0:
        return out
    faiss = _import_faiss()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]

    real_sim, real_row = nearest(vectors, real_vectors)

    indexes: dict[str, _LabelIndex] = {}
    for start in range(0, n, BLOCK):
        stop = min(n, start + BLOCK)
        block = vectors[start:stop]
        # Only pairs above the threshold matter: collect them per row, as (similarity, row) lists.
        close: dict[int, list[tuple[float, int]]] = {}
        for label, index in indexes.items():
            if not index.rows or (scope == "label" and label not in labels[start:stop]):
                continue
            sims, rows = index.search(block)
            for r, c in zip(*np.nonzero((sims >= threshold) & (rows >= 0))):
                close.setdefault(int(r), []).append((float(sims[r, c]), int(rows[r, c])))
        within = block @ block.T
        earlier: dict[int, list[tuple[float, int]]] = {}
        for r, c in zip(*np.nonzero(np.tril(within >= threshold, -1))):
            earlier.setdefault(int(r), []).append((float(within[r, c]), start + int(c)))
        kept: set[int] = set()
        for r, i in enumerate(range(start, stop)):
            if real_sim[i] >= threshold:
                out[i] = Match("real_duplicate", int(real_row[i]), float(real_sim[i]))
                continue
            label = labels[i]
            candidates = close.get(r, []) + [(s, j) for s, j in earlier.get(r, []) if j in kept]
            if scope == "label":
                candidates = [(s, j) for s, j in candidates if labels[j] == label]
            same = max(((s, j) for s, j in candidates if labels[j] == label), default=None)
            other = max(((s, j) for s, j in candidates if labels[j] != label), default=None)
            if same is not None:
                out[i] = Match("near_duplicate", same[1], same[0])
            elif other is not None:
                out[i] = Match("near_duplicate_other_label", other[1], other[0])
            else:
                kept.add(i)
        for label in dict.fromkeys(labels[i] for i in sorted(kept)):
            rows = [i for i in sorted(kept) if labels[i] == label]
            if label not in indexes:
                indexes[label] = _LabelIndex(faiss, dim)
            indexes[label].add(vectors[rows], rows)
    return out


def near_duplicates_ngram(
    texts: Sequence[str], labels: Sequence[str], real: Sequence[str], threshold: float, scope: str, similarity: Any
) -> list[Match | None]:
    """The same rule with a pairwise text similarity (word-bigram Jaccard): exact, O(n²), for small sets
    or when no embedding model is wanted."""
    out: list[Match | None] = []
    kept: list[int] = []
    for i, (text, label) in enumerate(zip(texts, labels)):
        real_best = max(((similarity(text, r), j) for j, r in enumerate(real)), default=(0.0, -1))
        if real_best[0] >= threshold:
            out.append(Match("real_duplicate", real_best[1], real_best[0]))
            continue
        close = [(similarity(text, texts[j]), j) for j in kept if scope == "all" or labels[j] == label]
        close = [(s, j) for s, j in close if s >= threshold]
        same = max(((s, j) for s, j in close if labels[j] == label), default=None)
        other = max(((s, j) for s, j in close if labels[j] != label), default=None)
        if same is not None:
            out.append(Match("near_duplicate", same[1], same[0]))
        elif other is not None:
            out.append(Match("near_duplicate_other_label", other[1], other[0]))
        else:
            out.append(None)
            kept.append(i)
    return out
