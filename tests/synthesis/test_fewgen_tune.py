"""Generator tuning steps on a tiny random causal LM: each loss trains only what it should."""

from __future__ import annotations

import pytest
import torch

from fewforge.errors import ConfigError, DataError
from fewforge.generators.soft_prompts import LabelPrompts
from fewforge.synthesis.fewgen.tune import Tuner, TuningConfig, TuningRow, collate


@pytest.fixture(scope="module")
def lm(tiny_causal_lm):
    return tiny_causal_lm(vocab=40, hidden=16, heads=2, kv_heads=1)


# label 0 rows write tokens 20-24, label 1 rows tokens 30-34; token 3 is the context (prompt's last token)
ROWS = [
    TuningRow((3, 20, 21, 22), 1, 0),
    TuningRow((3, 21, 22, 23, 24), 1, 0),
    TuningRow((3, 30, 31), 1, 1),
    TuningRow((3, 31, 32, 33), 1, 1),
]
PROMPTS = [[5, 6], [7, 8]]


def _lm_loss(prompts, rows, label_of=lambda r: r.label):
    from fewforge.synthesis.fewgen import losses

    batch = collate(rows)
    with torch.no_grad():
        out = prompts(batch.ids, batch.attention, torch.tensor([label_of(r) for r in rows]))
        logp = losses.target_log_probs(out.logits[:, :-1], batch.ids[:, 1:])
    return losses.lm_loss(logp, batch.targets).item()


def test_collate_marks_the_positions_that_predict_target_tokens():
    batch = collate([TuningRow((3, 4, 5, 6), 2, 0), TuningRow((3, 9), 1, 1)])
    assert batch.ids.tolist() == [[3, 4, 5, 6], [3, 9, 0, 0]]
    assert batch.attention.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch.targets.tolist() == [[0, 1, 1], [1, 0, 0]]  # row 0 learns tokens 5, 6; row 1 token 9
    assert batch.labels.tolist() == [0, 1]


@pytest.mark.parametrize("loss", ["lm", "weighted", "dawgen"])
def test_each_loss_trains_the_prompts_and_leaves_the_generator_frozen(lm, loss):
    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix")
    frozen = {n: p.detach().clone() for n, p in lm.named_parameters()}
    start = prompts.values.detach().clone()
    tuner = Tuner(prompts, TuningConfig(loss=loss, epochs=6, learning_rate=0.05), seed=1)
    net_before = [p.detach().clone() for p in tuner.weight_net.parameters()]
    before = _lm_loss(prompts, ROWS)
    calls = []
    history = tuner.fit(ROWS, progress=lambda done, total: calls.append((done, total)))
    assert len(history) == 12 and calls[-1] == (12, 12)
    assert _lm_loss(prompts, ROWS) < before  # the rows grow likelier under their own label's prompt
    assert not torch.equal(prompts.values, start)
    assert all(torch.equal(p, frozen[n]) for n, p in lm.named_parameters())
    net_moved = any(not torch.equal(a, b) for a, b in zip(net_before, tuner.weight_net.parameters()))
    assert net_moved == (loss != "lm")  # only the bi-level losses train the weight net
    assert ("hinge" in history[0]) == (loss == "dawgen") and ("disc_loss" in history[0]) == (loss != "lm")


@pytest.mark.parametrize("loss", ["lm", "weighted", "dawgen"])
def test_tuning_widens_the_margin_of_each_rows_own_label_over_the_other(lm, loss):
    def margin(prompts):  # LM loss under the other label's prompt minus under the row's own
        return _lm_loss(prompts, ROWS, label_of=lambda r: 1 - r.label) - _lm_loss(prompts, ROWS)

    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, "prompt")
    before = margin(prompts)
    Tuner(prompts, TuningConfig(loss=loss, epochs=15, learning_rate=0.05), seed=0).fit(ROWS)
    assert margin(prompts) > before


def test_tuning_is_reproducible_for_a_seed_and_held_out_meta_batches_run(lm):
    runs = []
    for _ in range(2):
        prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix")
        Tuner(prompts, TuningConfig(loss="dawgen", epochs=2, meta_batch="held-out"), seed=7).fit(ROWS)
        runs.append(prompts.values.detach().clone())
    torch.testing.assert_close(runs[0], runs[1])


def test_meta_every_spaces_the_weight_nets_steps_and_the_hinge_reads_the_memory_bank(lm):
    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix")
    tuner = Tuner(prompts, TuningConfig(loss="dawgen", epochs=3, meta_every=3), seed=0)
    history = tuner.fit(ROWS)
    assert [("disc_loss" in h) for h in history] == [True, False, False, True, False, False]
    assert all("hinge" in h for h in history)
    # after tuning, the bank holds each row's vector from its last step as an anchor: close to a fresh
    # score under the final prompts (one step stale at most)
    fresh = tuner._sentence_vectors(collate(ROWS))
    assert tuner.bank.shape == fresh.shape
    assert torch.nn.functional.cosine_similarity(tuner.bank, fresh).min() > 0.9


def test_bad_rows_are_clear_errors(lm):
    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix")
    with pytest.raises(DataError, match="no real rows"):
        Tuner(prompts, TuningConfig(), seed=0).fit([])
    with pytest.raises(DataError, match="compares labels"):
        Tuner(prompts, TuningConfig(loss="weighted"), seed=0).fit(ROWS[:2])
    Tuner(prompts, TuningConfig(loss="lm", epochs=1), seed=0).fit(ROWS[:2])  # one label is fine for lm
    with pytest.raises(DataError, match="has no prompt"):
        Tuner(prompts, TuningConfig(loss="lm"), seed=0).fit([TuningRow((3, 4), 1, 2)])


@pytest.mark.slow  # over a minute on 2 cores each: CI's -m slow runs them
@pytest.mark.parametrize("loss", ["lm", "dawgen"])
def test_on_the_packaged_generator_tuning_makes_dev_rows_likelier_under_their_true_label(loss, data_dir):
    """SST-2, 8 real rows per label, 2 epochs, prefixes started from the natural prompts: on 32 dev rows
    the true label's prompt gains on the other's (untuned, the two are a coin flip)."""
    import json

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fewforge.packaged import lm_source

    source = lm_source(None)
    tok = AutoTokenizer.from_pretrained(source)
    lm = AutoModelForCausalLM.from_pretrained(source, attn_implementation="eager").eval()
    natural = [tok(t)["input_ids"] for t in ("Write a positive movie review:", "Write a negative movie review:")]
    lines = [json.loads(line) for line in (data_dir / "sst2" / "train.jsonl").read_text().splitlines()]
    by_label = [[r["text"] for r in lines if r["label"] == name][:24] for name in ("positive", "negative")]

    def row(text: str, label: int) -> TuningRow:  # the prompt's last token is each row's context
        return TuningRow((natural[label][-1], *tok(" " + text)["input_ids"][:40]), 1, label)

    train = [row(t, k) for k in (0, 1) for t in by_label[k][:8]]
    dev = [row(t, k) for k in (0, 1) for t in by_label[k][8:24]]

    def true_label_wins() -> tuple[float, float]:  # (mean NLL gap other - true, share of rows the true wins)
        batch = collate(dev)
        with torch.no_grad():
            logp, _ = prompts.score_all_labels(batch.ids, batch.attention)
        nll = -(logp * batch.targets).sum(-1) / batch.targets.sum(-1)  # [L, B]
        true, other = nll.gather(0, batch.labels.view(1, -1)), nll.gather(0, (1 - batch.labels).view(1, -1))
        return (other - true).mean().item(), (true < other).float().mean().item()

    prompts = LabelPrompts.from_natural_prompts(lm, [ids[:-1] for ids in natural], "prefix")
    gap_before, wins_before = true_label_wins()
    # the loss's direction under a constant rate, no clipping, no dropout (fewforge's settings before issue
    # 29): FewGen's linear decay and clipping move the prefixes too little in 2 epochs to show it
    steady = dict(schedule="constant", max_grad_norm=0, dropout=0, weight_net_optimizer="adamw")
    Tuner(prompts, TuningConfig(loss=loss, epochs=2, **steady), seed=0).fit(train)
    gap_after, wins_after = true_label_wins()
    assert gap_after > gap_before + 0.02 and wins_after > max(wins_before, 0.6)


# dev rows written like ROWS: label 0 uses tokens 20-24, label 1 tokens 30-34
DEV = [TuningRow((3, 20, 22, 24), 1, 0), TuningRow((3, 23, 21), 1, 0), TuningRow((3, 32, 30, 31), 1, 1), TuningRow((3, 33, 34), 1, 1)]


@pytest.mark.parametrize("loss", ["lm", "weighted"])
def test_the_guard_keeps_the_untuned_prompts_when_tuning_makes_dev_worse(lm, loss):
    """Training rows with their labels swapped teach each prompt the other label's words: dev accuracy
    falls below the untuned prompts', so the guard hands back the untuned prompts, untouched."""
    from fewforge.synthesis.fewgen.guard import dev_measures

    swapped = [TuningRow(r.ids, r.target_start, 1 - r.label) for r in ROWS]
    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix")
    start = prompts.values.detach().clone()
    tuner = Tuner(prompts, TuningConfig(loss=loss, epochs=4, learning_rate=0.05), seed=0)
    tuner.fit(swapped, dev=DEV)
    epochs = tuner.guard.epochs
    assert [e["epoch"] for e in epochs] == [0, 1, 2, 3, 4]
    assert epochs[-1]["dev_accuracy"] < epochs[0]["dev_accuracy"]  # tuning really made dev worse
    summary = tuner.guard.summary()
    assert summary["kept_epoch"] == 0 and "untuned" in summary["why"]
    assert torch.equal(prompts.values, start)
    assert dev_measures(prompts, DEV).accuracy == epochs[0]["dev_accuracy"]
    assert epochs[-1]["drift"][0] > 0 and epochs[0]["drift"] == [0.0, 0.0]


def test_the_guard_keeps_the_best_dev_epoch_and_none_keeps_the_last(lm):
    from fewforge.synthesis.fewgen.guard import dev_measures

    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix")
    tuner = Tuner(prompts, TuningConfig(loss="lm", epochs=4, learning_rate=0.05, guard="loss"), seed=0)
    tuner.fit(ROWS, dev=DEV)
    losses_by_epoch = [e["dev_loss"] for e in tuner.guard.epochs]
    kept = tuner.guard.kept_epoch
    assert kept > 0 and losses_by_epoch[kept] == min(losses_by_epoch)
    assert losses_by_epoch.index(min(losses_by_epoch)) == kept  # ties go to the earliest
    assert dev_measures(prompts, DEV).loss == pytest.approx(losses_by_epoch[kept], abs=1e-4)

    last = LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix")
    unguarded = Tuner(last, TuningConfig(loss="lm", epochs=4, learning_rate=0.05, guard="none"), seed=0)
    unguarded.fit(ROWS, dev=DEV)
    assert unguarded.guard.summary()["kept_epoch"] == 4 and "guard: none" in unguarded.guard.summary()["why"]
    assert dev_measures(last, DEV).loss == pytest.approx(unguarded.guard.epochs[-1]["dev_loss"], abs=1e-4)
    no_dev = Tuner(LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix"), TuningConfig(loss="lm", epochs=1), seed=0)
    no_dev.fit(ROWS)
    assert "no dev rows" in no_dev.guard.summary()["why"]


def test_uniform_weights_are_the_control_and_steps_report_weight_concentration(lm):
    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix")
    tuner = Tuner(prompts, TuningConfig(loss="dawgen", epochs=2, weights="uniform"), seed=0)
    net_before = [p.detach().clone() for p in tuner.weight_net.parameters()]
    history = tuner.fit(ROWS)
    assert all(h["effective_tokens"] == pytest.approx(h["valid_tokens"], abs=0.01) for h in history)
    assert all(h["max_over_mean_weight"] == pytest.approx(1.0, abs=1e-3) for h in history)
    assert all("disc_loss" not in h for h in history)  # no meta step: the weight net is not used
    assert all(torch.equal(a, b) for a, b in zip(net_before, tuner.weight_net.parameters()))
    assert all(0 < h["hinge_share"] <= 1 for h in history)

    learned = Tuner(LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix"), TuningConfig(loss="weighted", epochs=6), seed=0)
    steps = learned.fit(ROWS)
    assert any(h["max_over_mean_weight"] > 1.0 + 1e-3 for h in steps)  # the weight net's weights are uneven
    assert all(h["effective_tokens"] <= h["valid_tokens"] + 1e-6 for h in steps)


def test_the_label_anchor_freezes_the_positions_up_to_the_label_word(lm):
    from fewforge.synthesis.fewgen.tune import anchor_positions

    heads = [[5, 9, 6, 11, 12], [5, 10, 6, 11, 12]]  # the labels differ at position 1 (their label word)
    assert anchor_positions(heads) == 2 and anchor_positions([[5, 6], [5, 6]]) == 0
    assert anchor_positions([[9, 5, 6], [5, 6]]) == 1  # left-padded with the shorter one's first token
    for placement in ("prefix", "prompt"):
        prompts = LabelPrompts.from_natural_prompts(lm, heads, placement)
        start = prompts.values.detach().clone()
        axis = 1 if placement == "prompt" else start.dim() - 2
        Tuner(prompts, TuningConfig(loss="weighted", epochs=3, learning_rate=0.05), seed=0, frozen_positions=2).fit(ROWS)
        frozen, tuned = start.narrow(axis, 0, 2), start.narrow(axis, 2, 3)
        assert torch.equal(prompts.values.detach().narrow(axis, 0, 2), frozen)
        assert not torch.equal(prompts.values.detach().narrow(axis, 2, 3), tuned)


def test_held_out_meta_batches_come_from_outside_the_batch_and_fewgens_eq5_form_runs(lm):
    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix")
    tuner = Tuner(prompts, TuningConfig(loss="weighted", meta_batch="held-out", eq5="logit"), seed=0)
    for _ in range(20):
        drawn = tuner._draw(ROWS, 2, exclude=[0, 1])
        assert all(row in ROWS[2:] for row in drawn)
    history = tuner.fit(ROWS)
    assert all(h["disc_loss"] == h["disc_loss"] for h in history)  # finite (not NaN) under raw logits


def test_linear_decay_reaches_zero_and_dropout_runs_are_reproducible(lm):
    runs = []
    for _ in range(2):
        prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix")
        tuner = Tuner(prompts, TuningConfig(loss="weighted", epochs=2, dropout=0.5), seed=3)
        tuner.fit(ROWS)
        assert [s.get_last_lr()[0] for s in tuner.schedulers] == [0.0, 0.0]
        assert not lm.training  # back in eval mode after each step
        runs.append(prompts.values.detach().clone())
    torch.testing.assert_close(runs[0], runs[1])


def test_a_fresh_hinge_scores_its_partners_under_the_current_prompts(lm):
    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix")
    config = TuningConfig(loss="dawgen", epochs=2, hinge_partners="fresh", hinge_states="tokens", learning_rate=0.05)
    tuner = Tuner(prompts, config, seed=0)
    history = tuner.fit(ROWS)
    assert not hasattr(tuner, "bank")  # no memory bank: every step scores its partners
    assert all(0 <= h["hinge"] <= 2 + 1e-6 and "hinge_share" in h for h in history)
    # the hinge follows the prompts: recomputed for the same triplets it differs from the bank's stale value
    bank = Tuner(LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix"), config.model_copy(update={"hinge_partners": "bank"}), seed=0)
    assert [h["hinge"] for h in bank.fit(ROWS)] != [h["hinge"] for h in history]


def _greedy_rows(prompts, length: int = 4) -> list[tuple[int, list[int]]]:
    """(label, tokens) of one row per label, decoded greedily from token 3 under that label's prompt."""
    rows = []
    for label in range(prompts.n_labels):
        ids = torch.tensor([[3]])
        for _ in range(length):
            with torch.no_grad():
                out = prompts(ids, torch.ones_like(ids), torch.tensor([label]))
            ids = torch.cat([ids, out.logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        rows.append((label, ids[0, 1:].tolist()))
    return rows


def _token_audit(prompts) -> dict:
    """The guard's audit on the tiny vocabulary: rows sampled from the prompts, each labelled by the
    label whose tokens (20-24 or 30-34, as ROWS write them) it holds more of; a tie labels it neither."""
    rows = _greedy_rows(prompts)

    def said(tokens: list[int]) -> int | None:
        first, second = sum(20 <= t <= 24 for t in tokens), sum(30 <= t <= 34 for t in tokens)
        return 0 if first > second else 1 if second > first else None

    hits = [said(tokens) == label for label, tokens in rows]
    return {"fidelity": sum(hits) / len(hits), "rows": len(rows), "worst_label": float(min(hits))}


def test_the_audit_guard_keeps_the_starting_prompts_when_the_tuned_ones_write_the_other_labels_rows(lm):
    """Prompts that already write their label's tokens (tuned on ROWS first) are tuned on swapped labels:
    every tuned epoch's sampled rows carry their label less often than the starting prompts' rows, so
    the audit guard keeps epoch 0 and hands the starting prompts back, untouched."""
    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix")
    Tuner(prompts, TuningConfig(loss="lm", epochs=6, learning_rate=0.05, guard="none"), seed=0).fit(ROWS)
    start = prompts.values.detach().clone()
    swapped = [TuningRow(r.ids, r.target_start, 1 - r.label) for r in ROWS]
    tuner = Tuner(prompts, TuningConfig(loss="lm", epochs=3, learning_rate=0.2, guard="audit"), seed=0)
    tuner.fit(swapped, dev=DEV, audit=_token_audit)
    fidelity = [e["audit_fidelity"] for e in tuner.guard.epochs]
    assert fidelity[0] == 1.0 and max(fidelity[1:]) < fidelity[0]  # the tuned epochs really write worse rows
    summary = tuner.guard.summary()
    assert summary["kept_epoch"] == 0 and "untuned" in summary["why"] and "audited label fidelity" in summary["why"]
    assert summary["untuned_audit_fidelity"] == summary["kept_audit_fidelity"] == 1.0
    assert all(e["audit_rows"] == 2 and "dev_accuracy" in e for e in tuner.guard.epochs)  # dev measures beside it
    assert torch.equal(prompts.values, start) and _token_audit(prompts)["fidelity"] == 1.0


def test_the_audit_guard_keeps_a_tuned_epoch_whose_rows_carry_the_label_and_needs_a_sampler(lm):
    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix")
    tuner = Tuner(prompts, TuningConfig(loss="lm", epochs=3, learning_rate=0.1, guard="audit"), seed=0)
    tuner.fit(ROWS, audit=_token_audit)  # no dev rows: the audit needs none
    fidelity = [e["audit_fidelity"] for e in tuner.guard.epochs]
    kept = tuner.guard.kept_epoch
    assert fidelity[0] < 1.0 and kept > 0 and fidelity[kept] == max(fidelity) == 1.0
    assert fidelity.index(max(fidelity)) == kept  # ties go to the earliest
    assert _token_audit(prompts)["fidelity"] == fidelity[kept]
    with pytest.raises(ConfigError, match="guard: audit") as err:
        Tuner(prompts, TuningConfig(loss="lm", epochs=1, guard="audit"), seed=0).fit(ROWS)
    assert "guard: accuracy" in err.value.hint


@pytest.mark.parametrize(("score", "kept"), [("overall", 1), ("worst_label", 0)])
def test_the_worst_label_score_does_not_reward_rows_that_lean_to_the_auditors_favourite_label(lm, score, kept):
    """DawGen's SST-2 epochs as the guard's auditor saw them (docs/results/generator-tuning-guard-audit.md):
    the tuned epoch's positive rows all read positive, its negative rows less often than the untuned
    prompt's. The overall share keeps the tuned epoch; the worst label's share keeps the untuned one."""
    seen = iter([  # (negative, positive) shares of 16 rows each: the untuned epoch, then one tuned epoch
        {"fidelity": (7 + 12) / 31, "rows": 31, "per_label": {"negative": 7 / 15, "positive": 0.75}, "worst_label": 7 / 15},
        {"fidelity": (6 + 16) / 32, "rows": 32, "per_label": {"negative": 0.375, "positive": 1.0}, "worst_label": 0.375},
    ])
    prompts = LabelPrompts.from_natural_prompts(lm, PROMPTS, "prefix")
    start = prompts.values.detach().clone()
    config = TuningConfig(loss="lm", epochs=1, learning_rate=0.1, guard="audit", guard_audit=score)
    tuner = Tuner(prompts, config, seed=0)
    tuner.fit(ROWS, audit=lambda _: next(seen))
    assert tuner.guard.kept_epoch == kept and torch.equal(prompts.values, start) == (kept == 0)
    assert [e["audit_worst_label"] for e in tuner.guard.epochs] == [round(7 / 15, 4), 0.375]
    assert ("worst label" in tuner.guard.summary()["why"]) == (score == "worst_label")
