"""Near-duplicate removal with an index: the same decisions as the exact greedy rule, with partners."""

from __future__ import annotations

import numpy as np
import pytest

from fewforge.synthesis.dedup import BLOCK, near_duplicates


def exact_greedy(vectors, labels, real, threshold, scope):
    """The rule written out pairwise (the first slice's O(n²) loop), as the reference."""
    out, kept = [], []
    for i, label in enumerate(labels):
        if len(real) and (real @ vectors[i]).max() >= threshold:
            out.append("real_duplicate")
            continue
        reason = ""
        for j in kept:
            same = labels[j] == label
            if (same or scope == "all") and vectors[i] @ vectors[j] >= threshold:
                reason = "near_duplicate" if same else "near_duplicate_other_label"
                if same:
                    break
        out.append(reason)
        if not reason:
            kept.append(i)
    return out


def planted(n_base=1500, copies=900, dim=64, seed=0):
    """Random unit vectors plus noisy copies of some of them (cosine ~0.97-0.995 to their source)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_base, dim))
    sources = rng.integers(0, n_base, copies)
    noisy = base[sources] + rng.normal(scale=rng.uniform(0.05, 0.2, (copies, 1)), size=(copies, dim))
    vectors = np.vstack([base, noisy]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    order = rng.permutation(len(vectors))
    labels = [str(x) for x in rng.integers(0, 3, len(vectors))]
    return vectors[order], labels


@pytest.mark.parametrize("scope", ["all", "label"])
def test_index_matches_the_exact_rule(scope):
    vectors, labels = planted()
    real = vectors[:5] + 0.01  # five real inputs that some synthetic rows copy
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    assert len(vectors) > 3 * BLOCK  # several blocks: matches across blocks go through the index
    got = near_duplicates(vectors, labels, real, 0.95, scope)
    expected = exact_greedy(vectors, labels, real, 0.95, scope)
    assert [m.reason if m else "" for m in got] == expected
    assert sum(bool(e) for e in expected) > 300  # many planted copies are above the threshold
    for i, match in enumerate(got):
        if match and match.reason != "real_duplicate":
            j = match.partner
            assert j < i and got[j] is None  # the partner is an earlier kept row ...
            assert match.similarity == pytest.approx(float(vectors[i] @ vectors[j]), abs=1e-5)  # ... this close
            assert (labels[j] == labels[i]) == (match.reason == "near_duplicate")
        elif match:
            assert match.similarity == pytest.approx(float((real @ vectors[i]).max()), abs=1e-5)


def test_empty_and_no_real():
    assert near_duplicates(np.zeros((0, 8), np.float32), [], None, 0.9) == []
    v = np.eye(4, dtype=np.float32)
    assert near_duplicates(v, ["a"] * 4, np.zeros((0, 4), np.float32), 0.9) == [None] * 4
