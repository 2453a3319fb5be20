"""`paired+reweight` (learners/reweight.py): the weight rule on hand-made tensors, the look-ahead's
alignments against explicit per-row gradients, planted wrong labels on a toy problem through the real
loop, the fair step budget, the static prior, the report's summary, and the encoder (real MiniLM, real
SST-2 rows) and prompt tuning (packaged SmolLM2) through the shared loop."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from fewforge.data.schema import Example
from fewforge.learners.loop import TorchConfig, TorchModel, train_torch, weighted_cross_entropy
from fewforge.learners.reweight import describe, histogram, lookahead_weights, reweighted_backward
from fewforge.learners.runtime import seeded
from fewforge.learners.strategies import plan

# -- the weight rule ----------------------------------------------------------------------------------


def test_l2rw_weights_clamp_and_normalise_over_the_batch():
    w = lookahead_weights(torch.tensor([2.0, -1.0, 1.0, 0.0]), mode="l2rw")
    assert w.tolist() == pytest.approx([8 / 3, 0.0, 4 / 3, 0.0])  # mean 1, a disagreeing row weighs 0
    assert lookahead_weights(torch.tensor([-2.0, -1.0]), mode="l2rw").tolist() == [0.0, 0.0]  # nothing agrees
    prior = torch.tensor([0.0, 1.0, 1.0, 1.0])  # a static weight multiplies before the normalisation
    assert lookahead_weights(torch.tensor([2.0, -1.0, 1.0, 1.0]), mode="l2rw", prior=prior).tolist() == pytest.approx(
        [0.0, 0.0, 2.0, 2.0]
    )


def test_centred_weights_remove_what_a_label_shares_and_keep_each_labels_mass():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    losses = torch.full((6,), -torch.log(torch.tensor(0.5)).item())  # p = 0.5 everywhere: a / 0.5
    # label 0 all agree (a shared class-prior shift), one of them less; label 1 all disagree, one less so
    alignment = torch.tensor([3.0, 3.0, 1.0, -4.0, -2.0, 5.0])
    w = lookahead_weights(alignment, labels=labels, losses=losses)
    assert w[:3].tolist() == pytest.approx([1.5, 1.5, 0.0])  # centred: the weakest of label 0 drops
    assert w[3:5].tolist() == pytest.approx([0.0, 2.0])  # label 1 keeps its mass despite the shared shift
    assert w[5].item() == pytest.approx(1.0)  # a label with one row in the batch is not centred
    # the row's own 1 - p(label) is divided out: a badly fit row is not weighed up for its loss alone
    losses = torch.tensor([-torch.log(torch.tensor(p)).item() for p in (0.9, 0.1, 0.9)])
    alignment = torch.tensor([0.1, 0.9, 0.05])  # rows 0 and 1 move their margin alike; row 1 is badly fit
    w = lookahead_weights(alignment, labels=torch.tensor([0, 0, 0]), losses=losses)
    assert w.tolist() == pytest.approx([1.5, 1.5, 0.0], abs=1e-4)
    assert lookahead_weights(alignment, mode="l2rw").tolist() == pytest.approx([0.3 / 1.05, 2.7 / 1.05, 0.15 / 1.05])
    with pytest.raises(ValueError, match="labels and losses"):
        lookahead_weights(alignment)


# -- a toy problem through the real loop --------------------------------------------------------------


def _toy(n_real=16, n_syn=64, flip_every=4, seed=0, dim=8):
    """Two Gaussian classes; a linear model; every `flip_every`-th synthetic row (from row 1) has the
    wrong label. Returns the model, the planted rows, the synthetic labels and the dev accuracy."""
    g = torch.Generator().manual_seed(seed)

    def draw(n):
        y = torch.arange(n) % 2
        return torch.randn(n, dim, generator=g) + (2 * y - 1).unsqueeze(1).float(), y

    (xr, yr), (xs, ys), (xd, yd) = draw(n_real), draw(n_syn), draw(32)
    planted = {i for i in range(n_syn) if flip_every and i % flip_every == 1}
    ys = torch.tensor([1 - int(v) if i in planted else int(v) for i, v in enumerate(ys)])
    linear = torch.nn.Linear(dim, 2)
    data = {"real": (xr, yr), "syn": (xs, ys)}

    def loss(source, idx, smoothing, weights=None):
        x, y = data[source]
        return weighted_cross_entropy(linear(x[idx]), y[idx], smoothing, weights)

    def evaluate():
        with torch.no_grad():
            logits = linear(xd)
        return (logits.argmax(-1) == yd).float().mean().item(), torch.nn.functional.cross_entropy(logits, yd).item()

    return TorchModel.trainable(linear, loss, evaluate), planted, ys.tolist()


def _fit(strategy, seed=0, flip_every=4, syn_weights=None):
    with seeded(seed):
        model, planted, labels = _toy(seed=seed, flip_every=flip_every)
        cfg = TorchConfig(strategy=strategy, batch_size=8, min_steps=40, max_steps=40, learning_rate=0.05)
        report = train_torch(cfg, model, 16, 64, seed, syn_labels=labels, syn_weights=syn_weights)
    return report, planted


@pytest.mark.parametrize("strategy, mode", [("paired+reweight", "centred"), ("paired+l2rw", "l2rw")])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_wrong_labels_get_lower_learned_weights(seed, strategy, mode):
    report, planted = _fit(strategy, seed)
    weights = report.row_weights
    assert len(weights) == 64 and all(w is not None for w in weights)  # 40 steps x 8 rows: every row drawn
    noisy = statistics.fmean(weights[i] for i in planted)
    clean = statistics.fmean(w for i, w in enumerate(weights) if i not in planted)
    assert noisy < 0.5 and clean > 1.1  # the 16 planted rows lose their weight to the 48 clean ones
    assert report.extra["reweight"]["mode"] == mode and report.extra["reweight"]["batches"] == 40
    assert report.best_dev_accuracy >= 0.9


def test_all_clean_data_trains_normally_within_the_fair_budget():
    reweighted, _ = _fit("paired+reweight", flip_every=0)
    paired, _ = _fit("paired", flip_every=0)
    assert reweighted.steps == paired.steps == 40  # the same batches and step budget as `paired`
    assert plan("paired+reweight", 16, 64, 40, 8, seed=0) == plan("paired", 16, 64, 40, 8, seed=0)
    assert plan("paired+l2rw", 16, 64, 40, 8, seed=0) == plan("paired", 16, 64, 40, 8, seed=0)
    assert reweighted.best_dev_accuracy >= paired.best_dev_accuracy - 0.05 and reweighted.best_dev_accuracy >= 0.9
    assert statistics.fmean(reweighted.row_weights) == pytest.approx(1.0, abs=0.15)  # weights average 1
    assert reweighted.extra["reweight"]["skipped_batches"] == 0
    assert not paired.row_weights and "reweight" not in paired.extra


def test_a_static_weight_is_a_prior():
    prior = [0.0 if i % 8 == 0 else 1.0 for i in range(64)]  # curation gave every 8th row weight 0
    report, _ = _fit("paired+reweight", flip_every=0, syn_weights=prior)
    assert all(report.row_weights[i] == 0.0 for i in range(0, 64, 8))
    assert statistics.fmean(w for i, w in enumerate(report.row_weights) if i % 8) > 1.0


def test_the_lookahead_alignment_is_the_per_row_gradient_dot_product():
    """The backward-on-backward gives ∇ℓ_i · ∇L_real for every row, as explicit per-row gradients do, and
    leaves ∇ Σ w_i ℓ_i / n (added to the real gradient) in .grad."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(3, 2)
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 1, 0])

    def loss(source, idx, smoothing=0.0, weights=None):
        return weighted_cross_entropy(linear(x[idx]), y[idx], smoothing, weights)

    params = list(linear.parameters())
    real = torch.autograd.grad(loss("real", [0, 1]), params)
    per_row = [torch.autograd.grad(loss("syn", [i]), params) for i in range(2, 6)]
    dots = torch.tensor([sum((g * r).sum() for g, r in zip(grads, real)).item() for grads in per_row])
    expected = lookahead_weights(dots, mode="l2rw")
    value, weights = reweighted_backward(loss, [2, 3, 4, 5], 0.0, params, [r.clone() for r in real], mode="l2rw")
    assert weights.tolist() == pytest.approx(expected.tolist(), rel=1e-4)
    target = torch.autograd.grad(loss("syn", [2, 3, 4, 5], 0.0, expected.tolist()), params)
    assert all(torch.allclose(p.grad, t, atol=1e-6) for p, t in zip(params, target))
    assert value == pytest.approx(loss("syn", [2, 3, 4, 5], 0.0, expected.tolist()).item(), rel=1e-5)


def test_learners_whose_loss_takes_no_weights_refuse_the_strategy():
    from fewforge.grid import _strategy_choices
    from fewforge.learners.extractive_qa import QAEncoder, QAEncoderConfig
    from fewforge.learners.text_to_text import CausalLMConfig

    for config in (QAEncoderConfig, CausalLMConfig):
        for strategy in ("paired+reweight", "paired+l2rw"):
            with pytest.raises(ValidationError, match="needs per-row loss weights"):
                config(strategy=strategy)
    assert "paired+gs" in _strategy_choices(QAEncoder) and "paired+reweight" not in _strategy_choices(QAEncoder)
    # a new strategy adds no config field: finished torch cells keep their fingerprints
    assert "reweight" not in TorchConfig().model_dump()


# -- what the record and the report show -------------------------------------------------------------


def test_describe_summarises_the_weights_with_the_audit_and_examples():
    rows = [
        Example({"text": f"row {i}"}, "positive" if i < 3 else "negative", id=f"r{i}",
                lineage={"audit": {"score": 0.9 if i % 2 else 0.2, "predicted": "positive"}})
        for i in range(5)
    ]
    out = describe(rows, [1.5, 0.0, 1.2, None, 0.3])
    assert out["mean"] == pytest.approx(0.75) and out["per_label"] == {"positive": 0.9, "negative": 0.3}
    # the auditor's likeliest label is "positive": rows r0-r2 agree, r4 does not (r3 was never drawn)
    assert out["by_audit"] == {"agree": 0.9, "disagree": 0.3, "n_agree": 3, "n_disagree": 1}
    assert [r["id"] for r in out["lowest"]][:2] == ["r1", "r4"] and out["highest"][0]["id"] == "r0"
    assert out["lowest"][0]["audit_score"] == 0.9 and out["histogram"]["counts"] == histogram([1.5, 0.0, 1.2, 0.3])
    assert histogram([0.0, 0.3, 1.0, 2.5, 7.0]) == [1, 1, 0, 0, 1, 0, 0, 1, 1]  # the last bin is open (>= 3)
    assert describe(rows, [None] * 5) == {}


# -- the real learners through the shared loop --------------------------------------------------------

POSITIVE = re.compile(r"\b(wonderful|masterpiece|delightful|brilliant|beautifully|terrific|superb|gorgeous)\b")
NEGATIVE = re.compile(r"\b(worst|boring|tedious|dull|mess|pointless|awful|unfunny)\b")
FLIP = {"negative": "positive", "positive": "negative"}


def _planted_sst2(data_dir: Path):
    """16 real SST-2 rows per class (train), 16 per class (dev), and a synthetic set of 32 clearly
    positive or negative pool reviews, every 4th (from row 1) with the opposite label."""
    from fewforge.tasks import load_task

    task = load_task("sst2")
    pool = []
    for i, line in enumerate((data_dir / "sst2" / "train.jsonl").read_text(encoding="utf-8").splitlines()):
        record = json.loads(line)
        label = record.pop("label")
        pool.append(Example(inputs=record, label=label, id=f"train-{i}"))
    short = [e for e in pool if len(e.text.split()) <= 25]
    train = [e for label in task.label_names for e in [r for r in short if r.label == label][:16]]
    dev = [e for label in task.label_names for e in [r for r in short if r.label == label][100:116]]
    taken = {e.text for e in (*train, *dev)}
    pos = [e for e in pool if e.label == "positive" and POSITIVE.search(e.text) and not NEGATIVE.search(e.text)]
    neg = [e for e in pool if e.label == "negative" and NEGATIVE.search(e.text) and not POSITIVE.search(e.text)]
    pairs = zip([e for e in pos if e.text not in taken][:16], [e for e in neg if e.text not in taken][:16])
    planted = {i for i in range(32) if i % 4 == 1}
    synthetic = [
        Example(dict(e.inputs), FLIP[e.label] if i in planted else e.label, id=f"s{i}")
        for i, e in enumerate(x for pair in pairs for x in pair)
    ]
    return task, train, dev, synthetic, planted


def _encoder(task, steps, seed, strategy="paired+reweight"):
    from fewforge.learners.encoder import EncoderClassifier, EncoderConfig

    cfg = EncoderConfig(strategy=strategy, max_length=48, batch_size=8, min_steps=steps, max_steps=steps,
                        eval_every=steps, threads=1)
    return EncoderClassifier(task, cfg, seed=seed)


def test_encoder_learns_weights_through_the_loop(data_dir):
    task, train, dev, synthetic, _ = _planted_sst2(data_dir)
    learner = _encoder(task, 6, seed=13)
    report = learner.fit(train[::4], dev, synthetic=synthetic)
    assert report.steps == 6 and len(report.row_weights) == 32  # `paired`'s budget: 8 real rows, min_steps 6
    drawn = [w for w in report.row_weights if w is not None]
    assert len(drawn) == report.extra["reweight"]["rows_drawn"] and all(w >= 0 for w in drawn)
    assert report.extra["reweight"]["batches"] == 6 and "lowest" in report.extra["reweight"]
    assert learner.model.encoder.config._attn_implementation == "sdpa"  # eager only while the look-ahead runs


@pytest.mark.slow
def test_encoder_weighs_planted_wrong_labels_down(data_dir):
    """MiniLM fine-tuned with 16 real SST-2 rows per class for 32 steps. Measured, mean learned weight of
    planted / clean rows: seeds 13, 21, 42: 0.79 / 1.07, 0.93 / 1.03, 0.74 / 1.09; the paper's rule
    (`paired+l2rw`) gives 0.77 / 0.58, 0.96 / 0.60, 0.72 / 0.51 on this set (docs/fidelity.md: over four
    sets the centred rule is lower on the planted rows in 8 of 12 runs, L2RW's in 6)."""
    task, train, dev, synthetic, planted = _planted_sst2(data_dir)
    noisy, clean = [], []
    for seed in (13, 21, 42):
        weights = _encoder(task, 32, seed).fit(train, dev, synthetic=synthetic).row_weights
        noisy.append(statistics.fmean(weights[i] for i in planted if weights[i] is not None))
        clean.append(statistics.fmean(w for i, w in enumerate(weights) if i not in planted and w is not None))
    assert statistics.fmean(noisy) < 0.9 < 1.0 < statistics.fmean(clean)


def test_prompt_tuning_learns_weights_through_the_loop(data_dir):
    from fewforge.data.fewshot import sample_fewshot
    from fewforge.data.sources import load_task_data
    from fewforge.learners.prompt_tuning import PromptTuning, PromptTuningConfig
    from fewforge.tasks import load_task

    task = load_task("sst2")
    pool, test = load_task_data(task, data_dir)
    split = sample_fewshot(pool, test, task, 4, seed=13)
    synthetic = [Example({"text": t}, label, id=f"s{i}") for i, (t, label) in enumerate(
        [("A delight.", "positive"), ("Dull.", "negative"), ("A tedious mess.", "positive"), ("Witty.", "negative")]
    )]
    cfg = PromptTuningConfig(strategy="paired+reweight", prompt_tokens=4, min_steps=4, max_steps=4, eval_every=2,
                             batch_size=2, threads=1)
    learner = PromptTuning(task, cfg, seed=13)
    report = learner.fit(split.train, split.dev, synthetic=synthetic)
    assert report.steps == 4 and len(report.row_weights) == 4
    drawn = [w for w in report.row_weights if w is not None]
    assert drawn and all(w >= 0 for w in drawn) and report.extra["reweight"]["batches"] == 4
    assert learner.lm.config._attn_implementation == "sdpa"  # restored after the look-ahead
