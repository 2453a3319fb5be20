"""Gradient surgery (DawGen eq. 8–10) on hand-made gradients, and inside a real training step."""

from __future__ import annotations

import math

import pytest
import torch

from fewforge.learners.gradient_surgery import combine, conflict_rate, project


def test_conflicting_gradients_lose_the_opposing_component():
    real = torch.tensor([1.0, 0.0])
    syn = torch.tensor([-1.0, 1.0])  # 135° from real
    out, record = project(syn, real)
    assert record.conflict
    assert torch.allclose(out, torch.tensor([0.0, 1.0]))  # what remains is orthogonal to real
    assert torch.dot(out, real).item() == pytest.approx(0.0)
    assert record.cosine == pytest.approx(-1 / math.sqrt(2))
    assert record.removed_norm == pytest.approx(1.0)


@pytest.mark.parametrize("syn, cosine", [([0.0, 3.0], 0.0), ([2.0, 2.0], 1 / math.sqrt(2))])
def test_orthogonal_and_aligned_gradients_pass_unchanged(syn, cosine):
    real, syn_t = torch.tensor([1.0, 0.0]), torch.tensor(syn)
    out, record = project(syn_t, real)
    assert not record.conflict and record.removed_norm == 0.0
    assert torch.equal(out, syn_t)
    assert record.cosine == pytest.approx(cosine)


def test_combine_spans_parameters_and_weights_the_synthetic_part():
    # two "parameters"; the conflict is only visible on the concatenated vector
    real = [torch.tensor([1.0, 0.0]), torch.tensor([[0.0]])]
    syn = [torch.tensor([-2.0, 1.0]), torch.tensor([[1.0]])]
    update, record = combine(real, syn, epsilon=0.5)
    assert record.conflict
    # δ'_syn = syn - (syn·real / |real|²) real = [0, 1, 1]; update = real + 0.5 δ'_syn
    assert torch.allclose(update[0], torch.tensor([1.0, 0.5]))
    assert torch.allclose(update[1], torch.tensor([[0.5]]))
    no_conflict, rec2 = combine(real, [torch.tensor([1.0, 1.0]), torch.tensor([[0.0]])], epsilon=1.0)
    assert not rec2.conflict and torch.allclose(no_conflict[0], torch.tensor([2.0, 1.0]))
    assert conflict_rate([record, rec2]) == 0.5 and conflict_rate([]) is None


def test_combine_treats_a_missing_gradient_as_zero():
    update, record = combine([torch.tensor([1.0]), None], [torch.tensor([1.0]), torch.tensor([2.0])])
    assert not record.conflict
    assert torch.allclose(update[0], torch.tensor([2.0])) and torch.allclose(update[1], torch.tensor([2.0]))


def _tiny_problem(flip_synthetic: bool):
    """A real linear classifier on rows that all share one input and label; the synthetic rows carry the
    opposite label (or the same), so δ_syn = -δ_real (or +δ_real) whichever rows a batch draws."""
    from fewforge.learners.loop import TorchModel

    x = torch.ones(16, 4)
    y = torch.ones(16, dtype=torch.long)
    syn_y = 1 - y if flip_synthetic else y
    linear = torch.nn.Linear(4, 2)
    ys = {"real": y, "syn": syn_y}

    def loss(source, idx, smoothing):
        return torch.nn.functional.cross_entropy(linear(x[idx]), ys[source][idx], label_smoothing=smoothing)

    def evaluate():
        with torch.no_grad():
            logits = linear(x)
        return (logits.argmax(-1) == y).float().mean().item(), torch.nn.functional.cross_entropy(logits, y).item()

    model = TorchModel(
        parameters=list(linear.named_parameters()),
        loss=loss,
        evaluate=evaluate,
        snapshot=lambda: {k: v.clone() for k, v in linear.state_dict().items()},
        restore=linear.load_state_dict,
    )
    return model


@pytest.mark.parametrize("flip, expect_conflicts", [(True, True), (False, False)])
def test_training_logs_the_surgery_of_every_step(flip, expect_conflicts):
    from fewforge.learners.loop import TorchConfig, train_torch
    from fewforge.learners.runtime import seeded

    cfg = TorchConfig(strategy="paired+gs", batch_size=4, min_steps=8, max_steps=8, learning_rate=0.1)
    with seeded(0):
        report = train_torch(cfg, _tiny_problem(flip), n_real=16, n_syn=16, seed=0)
    assert [r["step"] for r in report.surgery] == list(range(1, 9))
    conflicts = [r["conflict"] for r in report.surgery]
    # flipped labels on the same inputs point the gradients in opposite directions (cos = -1)
    assert all(conflicts) if expect_conflicts else not any(conflicts)
    assert report.extra["conflict_rate"] == (1.0 if expect_conflicts else 0.0)
    assert report.extra["trainable_parameters"] == 10
    if expect_conflicts:
        assert all(r["cosine"] == pytest.approx(-1.0, abs=1e-4) for r in report.surgery)
        # the opposing synthetic gradient is projected away entirely: the real signal still trains the model
        assert all(r["removed_norm"] > 0 for r in report.surgery)
        assert report.best_dev_accuracy == 1.0
    with seeded(0):
        plain = train_torch(cfg.model_copy(update={"strategy": "paired"}), _tiny_problem(flip), 16, 16, seed=0)
    assert plain.surgery == [] and "conflict_rate" not in plain.extra


def test_negative_epsilon_is_refused():
    from pydantic import ValidationError

    from fewforge.learners.loop import TorchConfig

    with pytest.raises(ValidationError, match="epsilon"):
        TorchConfig(epsilon=-0.5)


def test_combine_projects_against_a_reference_and_still_adds_the_batch_gradient():
    real, syn, reference = [torch.tensor([1.0, 1.0])], [torch.tensor([-1.0, 0.0])], [torch.tensor([1.0, 0.0])]
    update, record = combine(real, syn, reference=reference)
    assert record.conflict and record.removed_norm == pytest.approx(1.0)
    torch.testing.assert_close(update[0], torch.tensor([1.0, 1.0]))  # syn's part along the reference is gone
    # against the batch's own gradient the same pair conflicts less: a part of syn survives
    update, record = combine(real, syn)
    torch.testing.assert_close(update[0], torch.tensor([0.5, 1.5]))


def test_the_moving_average_reference_steadies_and_all_real_is_due_every_k_steps():
    from fewforge.learners.gradient_surgery import Reference

    ema = Reference("ema", decay=0.5)
    assert ema.update([torch.tensor([2.0])])[0].item() == 2.0  # the first real gradient starts it
    assert ema.update([torch.tensor([0.0])])[0].item() == 1.0
    assert Reference("batch").update([torch.tensor([1.0])]) is None  # the paper's rule: the batch itself
    every = Reference("all-real", every=3)
    due = []
    for _ in range(7):
        due.append(every.due())
        every.update([torch.tensor([0.0])])
    assert due == [True, False, False, True, False, False, True]


@pytest.mark.parametrize("strategy, reference", [("paired+gs-all", "all-real"), ("paired+gs-ema", "ema")])
def test_steadier_references_train_and_log_their_conflicts(strategy, reference):
    from fewforge.learners.loop import TorchConfig, train_torch
    from fewforge.learners.runtime import seeded

    cfg = TorchConfig(strategy=strategy, batch_size=4, min_steps=8, max_steps=8, learning_rate=0.1)
    with seeded(0):
        report = train_torch(cfg, _tiny_problem(True), n_real=16, n_syn=16, seed=0)
    assert report.extra["surgery_reference"] == reference and len(report.surgery) == 8
    assert report.extra["conflict_rate"] == 1.0 and report.extra["mean_removed_norm"] > 0
    assert report.best_dev_accuracy == 1.0  # the opposing synthetic gradient is still projected away
