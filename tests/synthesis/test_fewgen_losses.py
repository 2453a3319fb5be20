"""FewGen/DawGen objectives on hand-made micro-batches, each against a reference computed here by hand."""

from __future__ import annotations

import math

import pytest
import torch

from fewforge.synthesis.fewgen import losses

# 2 labels, 2 rows, 3 positions; row 0 has 2 valid tokens, row 1 has 3.
PROBS = torch.tensor(
    [  # Pr(x_t | Q_l): [label, row, position]
        [[0.5, 0.2, 0.9], [0.1, 0.4, 0.3]],
        [[0.25, 0.2, 0.9], [0.3, 0.1, 0.6]],
    ]
)
LABELP = PROBS.log()
LABELS = torch.tensor([0, 1])
MASK = torch.tensor([[1, 1, 0], [1, 1, 1]])


def test_target_log_probs_reads_the_aligned_token():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    got = losses.target_log_probs(logits, torch.tensor([[0, 2]]))
    z0, z1 = math.log(math.exp(2) + 2), math.log(math.e + 2)
    assert got.shape == (1, 2) and got.flatten().tolist() == pytest.approx([2 - z0, 1 - z1])


def test_lm_loss_is_the_mean_nll_of_each_rows_tokens_under_its_own_label():
    own = losses.own_label(LABELP, LABELS)
    assert own.exp().flatten().tolist() == pytest.approx([0.5, 0.2, 0.9, 0.3, 0.1, 0.6])
    hidden = torch.arange(2 * 2 * 3 * 4, dtype=torch.float).view(2, 2, 3, 4)  # [L, B, T, d] takes the same pick
    assert torch.equal(losses.own_label(hidden, LABELS), torch.stack([hidden[0, 0], hidden[1, 1]]))
    expected = -(math.log(0.5) + math.log(0.2) + math.log(0.3) + math.log(0.1) + math.log(0.6)) / 5
    assert losses.lm_loss(own, MASK).item() == pytest.approx(expected)


def test_discriminative_token_loss_divides_the_probabilities_over_labels():
    got = losses.discriminative_token_loss(LABELP, LABELS)
    # row 0 (label 0), token 0: 0.5 / (0.5 + 0.25); token 1: 0.2 / 0.4 — equal scores carry no label
    assert got[0, 0].item() == pytest.approx(-math.log(0.5 / 0.75))
    assert got[0, 1].item() == pytest.approx(math.log(2))
    # row 1 (label 1), token 2: 0.6 / (0.3 + 0.6)
    assert got[1, 2].item() == pytest.approx(-math.log(0.6 / 0.9))
    valid = [got[0, 0], got[0, 1], got[1, 0], got[1, 1], got[1, 2]]
    assert losses.disc_loss(LABELP, LABELS, MASK).item() == pytest.approx(sum(v.item() for v in valid) / 5)


def test_token_weights_are_a_softmax_over_the_valid_tokens():
    scores = torch.tensor([[0.0, math.log(2), 5.0], [0.0, 0.0, math.log(3)]])
    batch = losses.token_weights(scores, MASK)
    total = 1 + 2 + 1 + 1 + 3
    assert batch.flatten().tolist() == pytest.approx([1 / total, 2 / total, 0.0, 1 / total, 1 / total, 3 / total])
    rows = losses.token_weights(scores, MASK, per_row=True)
    assert rows.flatten().tolist() == pytest.approx([1 / 3, 2 / 3, 0.0, 0.2, 0.2, 0.6])
    assert losses.token_weights(scores, torch.zeros_like(MASK)).sum().item() == 0.0  # no valid token: no NaN


def test_weighted_lm_loss_with_uniform_weights_is_the_lm_loss():
    own = losses.own_label(LABELP, LABELS)
    uniform = losses.token_weights(torch.zeros(2, 3), MASK)
    assert losses.weighted_lm_loss(own, uniform).item() == pytest.approx(losses.lm_loss(own, MASK).item())
    # all weight on one token: the loss is that token's nll
    one = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert losses.weighted_lm_loss(own, one).item() == pytest.approx(-math.log(0.1))


def test_weight_net_maps_a_scalar_per_token():
    net = losses.weight_net()
    assert net(torch.zeros(7, 1)).shape == (7, 1)
    assert net[0].in_features == 1 and net[0].out_features == losses.WEIGHT_NET_HIDDEN


def test_sentence_vectors_weight_each_rows_hidden_states():
    hidden = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]], [[2.0, 2.0], [0.0, 4.0], [4.0, 0.0]]])
    weights = torch.tensor([[0.25, 0.75, 0.0], [0.5, 0.25, 0.25]])
    assert losses.sentence_vectors(hidden, weights).flatten().tolist() == pytest.approx([0.25, 0.75, 2.0, 2.0])


def _cos(a, b):
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def test_triplet_hinge_matches_the_reference():
    anchors = torch.tensor([[1.0, 0.2, 0.0], [0.1, 1.0, 0.3]])
    positives = torch.tensor([[0.8, 0.5, 0.1], [0.4, 0.9, -0.2]])
    negatives = torch.tensor([[0.1, 1.0, 0.3], [1.0, 0.2, 0.0]])
    for margin in (1.0, 0.3):
        expected = [max(0.0, margin - _cos(a, p) + _cos(a, n)) for a, p, n in zip(anchors, positives, negatives)]
        got = losses.triplet_hinge(anchors, positives, negatives, margin)
        assert got.item() == pytest.approx(sum(expected) / 2, rel=1e-5)


def test_triplet_hinge_is_zero_once_classes_are_separated_by_the_margin():
    # positive: the same direction (cos 1); negative: orthogonal (cos 0) -> 1 - 1 + 0 = 0, no gradient
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    loss = losses.triplet_hinge(anchors, torch.tensor([[2.0, 0.0], [0.0, 3.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    assert loss.item() == 0.0
    loss.backward()
    assert anchors.grad.abs().sum().item() == 0.0
    # and positive, with a gradient, when they are not
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    loss = losses.triplet_hinge(mixed, torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([[1.0, 0.1], [0.1, 1.0]]))
    assert loss.item() > 1.0
    loss.backward()
    assert mixed.grad.abs().sum().item() > 0
