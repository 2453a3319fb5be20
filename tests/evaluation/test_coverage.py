"""Embedding coverage of the gold data (S3 App. C.1): the radius rule on hand-made point sets, γ's scale,
and the joint map on a few MiniLM-embedded rows."""

from __future__ import annotations

import numpy as np
import pytest

from fewforge.evaluation.coverage import (
    coverage,
    covered,
    embedding_coverage,
    gold_reference,
    nearest_neighbour_scale,
)

GOLD = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0), (10.0, 10.0)]


def test_coverage_all_none_half():
    assert coverage(GOLD, [(0.5, 0.0), (10.0, 0.5), (0.0, 9.5), (9.6, 10.0)], radius=1.0) == 1.0
    assert coverage(GOLD, [(5.0, 5.0), (100.0, 100.0)], radius=1.0) == 0.0
    assert coverage(GOLD, [(0.2, 0.2), (10.0, 10.3), (5.0, 5.0)], radius=1.0) == 0.5
    # one synthetic point covers every gold point within its radius
    assert coverage(GOLD, [(5.0, 5.0)], radius=7.1) == 1.0 and coverage(GOLD, [(5.0, 5.0)], radius=7.0) == 0.0
    assert covered(GOLD, [(0.2, 0.2), (10.0, 10.3)], 1.0).tolist() == [True, False, False, True]


def test_coverage_radius_edges():
    assert coverage([(0.0, 0.0)], [(3.0, 4.0)], radius=5.0) == 1.0  # a closed disc: distance == γ counts
    assert coverage([(0.0, 0.0)], [(3.0, 4.0)], radius=4.999) == 0.0
    assert coverage([(1.0, 2.0)], [(1.0, 2.0)], radius=0.0) == 1.0  # radius 0: only coincident points
    assert coverage([(1.0, 2.0)], [(1.0, 2.001)], radius=0.0) == 0.0
    assert coverage(GOLD, np.zeros((0, 2)), radius=1e9) == 0.0  # nothing synthetic covers nothing
    with pytest.raises(ValueError):
        coverage([], [(0.0, 0.0)], radius=1.0)
    with pytest.raises(ValueError):
        coverage(GOLD, GOLD, radius=-1.0)


def test_gamma_scale_is_the_median_gold_nearest_neighbour_distance_and_its_documented_ceiling():
    grid = [(x, y) for x in range(5) for y in range(5)]
    assert nearest_neighbour_scale(grid) == 1.0 and nearest_neighbour_scale(np.array(grid) * 7) == 7.0
    assert nearest_neighbour_scale([(0.0, 0.0)]) == 0.0
    # Two independent uniform samples: γ = 2 × the median gold NN distance covers ≈ 1 - 2^-4 ≈ 94 %
    # (a little less at the border), γ = 1 × covers ≈ 50 %.
    rng = np.random.default_rng(0)
    gold, synthetic = rng.random((2000, 2)), rng.random((2000, 2))
    scale = nearest_neighbour_scale(gold)
    assert 0.88 < coverage(gold, synthetic, 2 * scale) < 0.96
    assert 0.42 < coverage(gold, synthetic, scale) < 0.55


GOLD_TEXTS = [
    "a gripping, beautifully acted film", "the plot drags and the jokes fall flat", "an instant classic",
    "i walked out after twenty minutes", "the soundtrack is wonderful", "dull characters and a silly ending",
    "a warm and funny story about family", "the director wastes a great cast", "visually stunning",
    "too long by half", "charming from start to finish", "a mess of a movie",
]
UNRELATED = [
    "the invoice is due on march 3", "turn left at the second traffic light", "preheat the oven to 200 degrees",
    "the server returned error 503", "add two cups of flour", "the train leaves from platform 9",
    "please reset your password", "the meeting moved to tuesday", "mix the paint with water",
    "the package was shipped today", "update the firmware first", "the pool closes at six",
]


def test_embedding_coverage_of_a_copy_beats_unrelated_text():
    copy = embedding_coverage(GOLD_TEXTS, GOLD_TEXTS, rows=12, projection="pca")
    other = embedding_coverage(GOLD_TEXTS, UNRELATED, rows=12, projection="pca")
    assert copy["coverage"] == 1.0 and other["coverage"] < 0.5
    assert copy["coverage_rows"] == 12 and len(copy["coverage_map"]["gold"]) == len(copy["coverage_map"]["synthetic"]) == 12
    assert copy["coverage_radius"] == pytest.approx(2.0 * copy["coverage_map"]["gold_nn_median"])
    # the recorded map redraws the recorded answer
    again = coverage(other["coverage_map"]["gold"], other["coverage_map"]["synthetic"], other["coverage_radius"])
    assert again == other["coverage"]
    tsne = embedding_coverage(GOLD_TEXTS, UNRELATED + GOLD_TEXTS, rows=8, gamma=1.5)  # equal-size samples of 8
    assert tsne["coverage_map"]["projection"] == "tsne" and tsne["coverage_rows"] == 8
    assert len(tsne["coverage_map"]["synthetic"]) == 8 and tsne["coverage_map"]["gamma"] == 1.5
    assert embedding_coverage(GOLD_TEXTS, UNRELATED + GOLD_TEXTS, rows=8, gamma=1.5) == tsne  # seeded
    assert embedding_coverage(GOLD_TEXTS, UNRELATED[:3]) is None  # too few rows for a map


def test_the_gold_reference_maps_the_same_gold_sample_against_other_gold_rows():
    gold = GOLD_TEXTS + UNRELATED  # 24 rows: two disjoint samples of at most 12
    reference = gold_reference(gold, rows=8, projection="pca")
    assert reference["coverage_rows"] == 8 and "coverage_map" not in reference and 0 <= reference["coverage"] <= 1
    assert gold_reference(gold, rows=100, projection="pca")["coverage_rows"] == 12
    # its gold side is the sample a set's map draws, so the reference and the sets share their gold points
    one = embedding_coverage(gold, GOLD_TEXTS, rows=8, projection="pca")
    assert one["coverage_rows"] == 8 and gold_reference(GOLD_TEXTS[:9]) is None
