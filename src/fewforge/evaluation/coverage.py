"""Embedding coverage of the gold data by a synthetic set (S3, Appendix C.1).

Equal-size seeded samples of the gold rows (the task's real train split) and of the synthetic rows are
embedded with MiniLM (their generated field), put into one joint 2-D map (t-SNE with a fixed
random_state; PCA as a faster option), and the coverage is the share of gold points that have a synthetic
point within radius γ in that map (S3's A = ∪ B_γ(p_synthetic), a closed disc).

The paper gives no γ. Map units are arbitrary (t-SNE), so γ is scale-free here: γ = `gamma` × the median
distance from a gold point to its nearest other gold point in the same map (default gamma 2). Under a
locally uniform density, a synthetic sample drawn like the gold sample then covers about
1 − 2^(−gamma²) of the gold points (≈ 94 % at gamma 2, 50 % at gamma 1). A t-SNE map clumps, so the
ceiling to read a set's number against is measured instead: `gold_reference` is the coverage of the gold
sample by a second, disjoint gold sample of the same size, made the same way (83-99 % on SST-2, QNLI,
AG News and TREC at 200 + 200 rows and two seeds: samples of 200 move it by several points, so read
differences of a few points between sets as noise). The value of γ used is recorded with each result.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

COVERAGE_ROWS = 200  # per side
COVERAGE_GAMMA = 2.0
PROJECTIONS = ("tsne", "pca")
MIN_ROWS = 5  # per side; fewer and no map is made


def covered(gold_xy: Any, synthetic_xy: Any, radius: float) -> Any:
    """A boolean per gold point: is some synthetic point at distance ≤ radius?"""
    import numpy as np
    from scipy.spatial import cKDTree

    if radius < 0:
        raise ValueError(f"radius must be ≥ 0, got {radius}")
    gold = np.asarray(gold_xy, dtype=float).reshape(-1, 2)
    synthetic = np.asarray(synthetic_xy, dtype=float).reshape(-1, 2)
    if not len(gold) or not len(synthetic):
        return np.zeros(len(gold), dtype=bool)
    distance, _ = cKDTree(synthetic).query(gold, k=1)
    return distance <= radius


def coverage(gold_xy: Any, synthetic_xy: Any, radius: float) -> float:
    """The share of gold points with a synthetic point within `radius` (≤, Euclidean) in a 2-D map."""
    mask = covered(gold_xy, synthetic_xy, radius)
    if not len(mask):
        raise ValueError("coverage of an empty gold set is undefined")
    return float(mask.mean())


def nearest_neighbour_scale(points_xy: Any) -> float:
    """The median distance from each point to its nearest other point (0 for fewer than two points)."""
    import numpy as np
    from scipy.spatial import cKDTree

    points = np.asarray(points_xy, dtype=float).reshape(-1, 2)
    if len(points) < 2:
        return 0.0
    distance, _ = cKDTree(points).query(points, k=2)
    return float(np.median(distance[:, 1]))


def joint_map(vectors: Any, projection: str = "tsne", seed: int = 0) -> tuple[Any, dict[str, Any]]:
    """Project the rows of `vectors` (n, d) to 2-D together; returns (points, what was used)."""
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    if projection == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(vectors), {"projection": "pca"}
    if projection != "tsne":
        raise ValueError(f"unknown projection {projection!r}; use one of {', '.join(PROJECTIONS)}")
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(1.0, (len(vectors) - 1) / 3)))  # sklearn needs perplexity < n
    points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(vectors)
    return points, {"projection": "tsne", "perplexity": perplexity}


def sample(texts: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """A seeded sample of n texts (all of them, in order, when n ≥ len)."""
    if n >= len(texts):
        return list(texts)
    return [texts[i] for i in sorted(random.Random(seed).sample(range(len(texts)), n))]


def embedding_coverage(
    gold_texts: Sequence[str],
    synthetic_texts: Sequence[str],
    *,
    rows: int = COVERAGE_ROWS,
    gamma: float = COVERAGE_GAMMA,
    projection: str = "tsne",
    seed: int = 0,
) -> dict[str, Any] | None:
    """Coverage of a gold sample by an equal-size synthetic sample in one joint 2-D map of their MiniLM
    embeddings; None when either side has fewer than MIN_ROWS texts. Returns the coverage, the radius and
    how it was made, and the map (gold and synthetic points, rounded) for the report's plot."""
    from fewforge.embeddings import embed

    if gamma < 0:
        raise ValueError(f"gamma must be ≥ 0, got {gamma}")
    n = min(rows, len(gold_texts), len(synthetic_texts))
    if n < MIN_ROWS:
        return None
    gold, synthetic = sample(gold_texts, n, seed), sample(synthetic_texts, n, seed)
    points, how = joint_map(embed([*gold, *synthetic]), projection, seed)
    points = points.astype(float).round(4)  # what quality.json keeps, so the plot redraws the same answer
    gold_xy, synthetic_xy = points[:n], points[n:]
    scale = nearest_neighbour_scale(gold_xy)
    radius = gamma * scale
    return {
        "coverage": coverage(gold_xy, synthetic_xy, radius),
        "coverage_rows": n,
        "coverage_radius": radius,
        "coverage_map": {
            **how,
            "seed": seed,
            "gamma": gamma,
            "gold_nn_median": scale,
            "gold": gold_xy.tolist(),
            "synthetic": synthetic_xy.tolist(),
        },
    }


def gold_reference(
    gold_texts: Sequence[str],
    *,
    rows: int = COVERAGE_ROWS,
    gamma: float = COVERAGE_GAMMA,
    projection: str = "tsne",
    seed: int = 0,
) -> dict[str, Any] | None:
    """The coverage of the gold sample `embedding_coverage` draws by a disjoint sample of the other gold
    rows (same size, at most half the rows each): the score of data distributed like the gold data, without
    the map; None when there are too few rows."""
    n = min(rows, len(gold_texts) // 2)
    if n < MIN_ROWS:
        return None
    chosen = set(random.Random(seed).sample(range(len(gold_texts)), n))  # the rows `sample` picks
    first = [t for i, t in enumerate(gold_texts) if i in chosen]
    rest = [t for i, t in enumerate(gold_texts) if i not in chosen]
    result = embedding_coverage(first, sample(rest, n, seed + 1), rows=n, gamma=gamma, projection=projection, seed=seed)
    return {k: v for k, v in result.items() if k != "coverage_map"} if result else None
