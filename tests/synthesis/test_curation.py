"""Curation (synthesis/curation): the `fewshot` auditor on real SST-2 rows with planted wrong labels, the
actions on scripted scores, the grid wiring (set keys, fingerprints, generation shared through the
cache, plan-time errors), and sample weights in the learners (weights of 1 train bit for bit as no
weights; a weight-0 row is ignored)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
import torch

from fewforge.config import RunConfig
from fewforge.data.fewshot import sample_fewshot
from fewforge.data.schema import Example
from fewforge.data.sources import load_task_data
from fewforge.errors import BackendError, ConfigError, DataError
from fewforge.generators.base import Generator, Positions, ProgressCallback, SamplingParams, Score
from fewforge.learners.base import sample_weights
from fewforge.learners.loop import TorchConfig, TorchModel, train_torch, weighted_cross_entropy
from fewforge.learners.runtime import seeded
from fewforge.synthesis import curation
from fewforge.synthesis.base import SyntheticDataset
from fewforge.synthesis.curation import Audit, AuditContext, Auditor, AuditorOptions, CurateConfig, curate
from fewforge.tasks import load_task

POSITIVE = re.compile(r"\b(wonderful|masterpiece|delightful|brilliant|beautifully|terrific|superb|gorgeous)\b")
NEGATIVE = re.compile(r"\b(worst|boring|tedious|dull|mess|pointless|awful|unfunny)\b")
FLIP = {"negative": "positive", "positive": "negative"}


@pytest.fixture(scope="module")
def sst2(data_dir: Path):
    task = load_task("sst2")
    pool, test = load_task_data(task, data_dir)
    return task, pool, test


def _auc(scores: Sequence[float], planted: set[int]) -> float:
    """The chance that a planted (wrong-label) row scores below a clean one (ties count half)."""
    bad = [scores[i] for i in planted]
    good = [s for i, s in enumerate(scores) if i not in planted]
    pairs = [(b < g) + 0.5 * (b == g) for b in bad for g in good]
    return sum(pairs) / len(pairs)


# -- the fewshot auditor on real rows ---------------------------------------------------------------


@pytest.mark.parametrize("seed", [13, 42])
def test_fewshot_auditor_ranks_planted_wrong_labels_last(sst2, seed):
    """A hand-made SST-2 set: 20 clearly positive and 20 clearly negative pool reviews (outside the
    split), 6 of them with the opposite label. The linear probe trained on the 16-shot train split gives
    the planted rows the lowest scores of their set (a weak auditor: MiniLM features reach ~65-70 % on
    SST-2 at 16 shots, so "last" is a ranking measure, not a perfect split)."""
    task, pool, test = sst2
    split = sample_fewshot(pool, test, task, 16, seed)
    taken = {e.text for e in (*split.train, *split.dev)}
    pos = [e for e in pool if e.label == "positive" and POSITIVE.search(e.text) and not NEGATIVE.search(e.text)]
    neg = [e for e in pool if e.label == "negative" and NEGATIVE.search(e.text) and not POSITIVE.search(e.text)]
    rows = [e for e in pos if e.text not in taken][:20] + [e for e in neg if e.text not in taken][:20]
    planted = {2, 9, 15, 22, 29, 35}
    examples = [
        Example(dict(e.inputs), FLIP[e.label] if i in planted else e.label, id=f"hand-{i}", lineage={"method": "hand"})
        for i, e in enumerate(rows)
    ]
    out = curate(SyntheticDataset(examples), {"auditor": "fewshot"}, AuditContext(task, seed, split.train))
    assert [e.id for e in out.examples] == [e.id for e in examples] and [e.label for e in out.examples] == [
        e.label for e in examples
    ]  # keep: scores only
    audits = [e.lineage["audit"] for e in out.examples]
    assert all(a["auditor"] == "fewshot" and set(a["probs"]) == set(task.label_names) for a in audits)
    assert all(a["score"] == a["probs"][e.label] for a, e in zip(audits, examples))
    assert all(e.lineage["method"] == "hand" for e in out.examples)  # the old lineage stays
    scores = [a["score"] for a in audits]
    assert _auc(scores, planted) >= 0.8
    assert sum(scores[i] for i in planted) / 6 < sum(s for i, s in enumerate(scores) if i not in planted) / 34
    card = out.card["curation"]
    info = card["auditor"]
    assert info["train_rows"] == 32 and info["cross_validation"]["folds"] == 4  # C chosen on train folds
    assert card["per_label"]["positive"]["scored"] == 20 - 3 + 3 and card["before"] == card["after"] == 40


def test_the_fewshot_auditor_needs_train_rows(sst2):
    task, _, _ = sst2
    rows = [Example({"text": "a fine film"}, "positive", id="s0")]
    with pytest.raises(DataError, match="few-shot train split"):
        curate(SyntheticDataset(rows), {"auditor": "fewshot"}, AuditContext(task, 13, ()))


# -- actions on scripted scores ---------------------------------------------------------------------


class Scripted(Auditor):
    """Probabilities of 'positive' set by the test, one per row."""

    name = "scripted"
    Options = AuditorOptions

    def __init__(self, p_positive: Sequence[float]) -> None:
        super().__init__()
        self.p = list(p_positive)

    def audit(self, ctx, rows):
        return Audit([[1 - p, p] for p in self.p[: len(rows)]], {"scripted": True})


P_POSITIVE = [0.95, 0.2, 0.6, 0.45, 0.05, 0.7, 0.99, 0.3]  # rows 0-3 labelled positive, 4-7 negative


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setattr(curation.stage, "get_auditor", lambda name, options=None: Scripted(P_POSITIVE))
    task = load_task("sst2")
    rows = [
        Example({"text": f"review {i}"}, "positive" if i < 4 else "negative", id=f"r{i}", lineage={"method": "x"})
        for i in range(8)
    ]
    earlier = [{"id": "old", "reason": "duplicate"}]  # a postprocess drop that must survive
    return task, SyntheticDataset(rows, card={"method": "x"}, dropped=earlier)


def _run(scripted, **config):
    task, dataset = scripted
    return curate(dataset, {"auditor": "scripted", **config}, AuditContext(task, 13))


def test_scores_are_the_probability_of_the_intended_label(scripted):
    out = _run(scripted, action="keep")
    scores = [e.lineage["audit"]["score"] for e in out.examples]
    assert scores == pytest.approx([0.95, 0.2, 0.6, 0.45, 0.95, 0.3, 0.01, 0.7])
    assert [e.lineage["audit"]["predicted"] for e in out.examples] == [
        "positive", "negative", "positive", "negative", "negative", "positive", "positive", "negative"
    ]
    assert all("weight" not in e.lineage for e in out.examples) and out.dropped == scripted[1].dropped
    card = out.card["curation"]
    assert card["agreement"] == 0.5 and card["auditor"] == {"name": "scripted", "reads_fewshot": False, "scripted": True}
    assert card["per_label"]["negative"]["histogram"] == [1, 0, 0, 1, 0, 0, 0, 1, 0, 1]
    assert out.card["method"] == "x"  # the method's card stays


def test_filter_drops_exactly_the_rows_below_the_threshold_with_a_reason(scripted):
    out = _run(scripted, action="filter", threshold=0.5)
    assert [e.id for e in out.examples] == ["r0", "r2", "r4", "r7"]
    drops = out.dropped[1:]
    assert out.dropped[0] == {"id": "old", "reason": "duplicate"}
    assert [(d["id"], d["reason"]) for d in drops] == [(f"r{i}", "audit_threshold") for i in (1, 3, 5, 6)]
    assert drops[0]["score"] == pytest.approx(0.2) and drops[0]["predicted"] == "negative"
    per_label = out.card["curation"]["per_label"]
    assert per_label["positive"]["dropped"] == 2 and per_label["negative"]["dropped"] == 2
    assert out.card["curation"]["dropped"] == {"audit_threshold": 4} and out.card["curation"]["after"] == 4


def test_filter_bottom_drops_the_lowest_share_of_each_label(scripted):
    out = _run(scripted, action="filter", bottom=0.5)  # 2 of each label's 4 rows
    assert [e.id for e in out.examples] == ["r0", "r2", "r4", "r7"]
    assert {d["id"]: d["reason"] for d in out.dropped[1:]} == {f"r{i}": "audit_bottom" for i in (1, 3, 5, 6)}
    out = _run(scripted, action="filter", bottom=0.25)  # 1 of 4: each label's lowest
    assert {d["id"] for d in out.dropped[1:]} == {"r1", "r6"}


def test_relabel_replaces_only_confident_disagreements_and_keeps_the_old_label(scripted):
    out = _run(scripted, action="relabel", confidence=0.75)
    labels = {e.id: e.label for e in out.examples}
    # r1 (p_neg 0.8) and r6 (p_pos 0.99) flip; r3 (p_neg 0.55) and r5 (p_pos 0.7) are unsure and stay
    assert labels == {"r0": "positive", "r1": "negative", "r2": "positive", "r3": "positive",
                      "r4": "negative", "r5": "negative", "r6": "positive", "r7": "negative"}
    audits = {e.id: e.lineage["audit"] for e in out.examples}
    assert audits["r1"]["relabelled_from"] == "positive" and audits["r6"]["relabelled_from"] == "negative"
    assert sum("relabelled_from" in a for a in audits.values()) == 2
    assert audits["r1"]["score"] == pytest.approx(0.2)  # the score of the label it was generated for
    per_label = out.card["curation"]["per_label"]
    assert per_label["positive"]["relabelled_out"] == 1 and per_label["positive"]["relabelled_in"] == 1
    assert out.card["curation"]["relabelled"] == 2 and len(out.examples) == 8


def test_weight_turns_scores_into_sample_weights(scripted):
    out = _run(scripted, action="weight")
    scores = np.array([0.95, 0.2, 0.6, 0.45, 0.95, 0.3, 0.01, 0.7])
    weights = [e.lineage["weight"] for e in out.examples]
    assert weights == pytest.approx(list(scores / scores.mean())) and np.mean(weights) == pytest.approx(1.0)
    assert sample_weights(out.examples) == weights
    raw = _run(scripted, action="weight", normalize=False)
    assert [e.lineage["weight"] for e in raw.examples] == pytest.approx(list(scores))
    assert [e.label for e in out.examples] == [e.label for e in scripted[1].examples]


def test_overgenerated_sets_keep_each_labels_best_rows(scripted):
    task, dataset = scripted
    ctx = AuditContext(task, 13)
    out = curate(dataset, {"auditor": "scripted", "action": "keep", "overgenerate": 2}, ctx, per_label=2)
    assert [e.id for e in out.examples] == ["r0", "r2", "r4", "r7"]  # each label's two best, in set order
    assert [(d["id"], d["reason"]) for d in out.dropped[1:]] == [(f"r{i}", "audit_surplus") for i in (1, 3, 5, 6)]
    assert out.card["curation"]["dropped"] == {"audit_surplus": 4} and out.card["curation"]["per_label_kept"] == 2
    # filter first, then the surplus: r0 and r4 are each label's best of the rows above 0.5
    out = curate(dataset, {"auditor": "scripted", "action": "filter", "threshold": 0.5}, ctx, per_label=1)
    assert [e.id for e in out.examples] == ["r0", "r4"]
    assert out.card["curation"]["dropped"] == {"audit_threshold": 4, "audit_surplus": 2}
    assert out.card["curation"]["shortfall"] == {}
    out = curate(dataset, {"auditor": "scripted", "action": "filter", "threshold": 0.9}, ctx, per_label=2)
    assert [e.id for e in out.examples] == ["r0", "r4"] and out.card["curation"]["shortfall"] == {"negative": 1, "positive": 1}
    # relabelled rows compete under their new label, by its probability: r6 (0.99) beats r0 (0.95)
    out = curate(dataset, {"auditor": "scripted", "action": "relabel", "confidence": 0.75}, ctx, per_label=1)
    assert {e.id: e.label for e in out.examples} == {"r4": "negative", "r6": "positive"}
    # with weights, the kept rows' weights average 1
    out = curate(dataset, {"auditor": "scripted", "action": "weight"}, ctx, per_label=2)
    assert np.mean([e.lineage["weight"] for e in out.examples]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"action": "filter"}, "needs one of threshold"),
        ({"action": "filter", "threshold": 0.5, "bottom": 0.2}, "needs one of threshold"),
        ({"action": "keep", "threshold": 0.5}, "belong to action filter"),
        ({"action": "sort"}, "action"),
        ({"auditor": "fewshot", "treshold": 0.5}, "treshold"),
    ],
)
def test_bad_curate_options_are_errors(config, message):
    with pytest.raises(ValueError, match=message):
        CurateConfig.model_validate(config)


def test_curation_is_for_classification_and_auditor_options_are_checked():
    squad = load_task("squad")
    row = Example({"context": "Paris is in France.", "question": "Where is Paris?"}, "France", id="q")
    with pytest.raises(ConfigError, match="audits class labels"):
        curate(SyntheticDataset([row]), {"auditor": "fewshot"}, AuditContext(squad, 13))
    with pytest.raises(ConfigError, match="unknown auditor 'oracle'"):
        curation.get_auditor("oracle")
    with pytest.raises(ConfigError, match="embeder"):
        curation.get_auditor("fewshot", {"embeder": "x"})
    with pytest.raises(ConfigError, match="few-shot train rows only"):
        curation.get_auditor("teacher", {"teacher_data": "share"})


# -- the generator auditor, through a scripted scorer --------------------------------------------------


class Scorer(Generator):
    """Scores ' great' by the review's number (log p(' terrible') is -1), and records the requests."""

    backend = "scorer"
    supports_scoring = True

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    @property
    def model_id(self) -> str:
        return "scripted"

    def generate(self, prompts, params: SamplingParams, *, start_index: Positions = 0,
                 progress: ProgressCallback | None = None):
        raise AssertionError("an auditor only scores")

    def score(self, prompts, continuations, *, adapter=None, progress=None) -> list[Score]:
        self.requests += list(zip(prompts, continuations))
        return [Score(-0.2 * int(p.split()[1]) if c == " great" else -1.0, 1) for p, c in zip(prompts, continuations)]


def test_generator_auditor_scores_the_verbalizers_after_the_cloze_prefix():
    task = load_task("sst2")
    rows = [Example({"text": f"review {i} ."}, "positive", id=f"r{i}") for i in range(6)]
    scorer = Scorer()
    ctx = AuditContext(task, 13, generator=scorer)
    raw = curate(SyntheticDataset(rows), {"auditor": "generator", "options": {"calibrate": False}}, ctx)
    assert scorer.requests[:2] == [("review 0 . It was", " terrible"), ("review 0 . It was", " great")]
    great = [-0.2 * i for i in range(6)]
    expected = [math.exp(g) / (math.exp(g) + math.exp(-1.0)) for g in great]
    assert [e.lineage["audit"]["score"] for e in raw.examples] == pytest.approx(expected)
    # calibrated: each label's mean log-prob over the set is taken out before the softmax
    calibrated = curate(SyntheticDataset(rows), {"auditor": "generator"}, ctx)
    shifted = [g - sum(great) / 6 for g in great]
    assert [e.lineage["audit"]["score"] for e in calibrated.examples] == pytest.approx(
        [math.exp(g) / (math.exp(g) + 1.0) for g in shifted]
    )
    assert calibrated.card["curation"]["auditor"]["calibration"] == {"negative": -1.0, "positive": -0.5}
    with pytest.raises(BackendError, match="cannot score"):
        curate(SyntheticDataset(rows), {"auditor": "generator"}, AuditContext(task, 13))


# -- sample weights in training -----------------------------------------------------------------------


def _toy_fit(syn_y: list[int], weights: list[float] | None, smoothing: float = 0.0) -> torch.Tensor:
    """A linear classifier on fixed random features through the shared loop (paired batches)."""
    g = torch.Generator().manual_seed(0)
    x = {"real": torch.randn(8, 5, generator=g), "syn": torch.randn(8, 5, generator=g)}
    y = {"real": torch.tensor([0, 1] * 4), "syn": torch.tensor(syn_y)}
    cfg = TorchConfig(batch_size=4, min_steps=6, max_steps=6, eval_every=3, learning_rate=0.1, label_smoothing=smoothing)
    with seeded(0):
        model = torch.nn.Linear(5, 2)

        def loss(source, idx, smooth, w=None):
            return weighted_cross_entropy(model(x[source][idx]), y[source][idx], smooth, w)

        def evaluate():
            with torch.no_grad():
                logits = model(x["real"])
                return (logits.argmax(-1) == y["real"]).float().mean().item(), loss("real", list(range(8)), 0.0).item()

        train_torch(cfg, TorchModel.trainable(model, loss, evaluate), 8, 8, 0, syn_weights=weights)
    return torch.cat([model.weight.detach().flatten(), model.bias.detach()])


def test_the_loop_trains_bit_for_bit_alike_with_weights_of_one_and_ignores_weight_zero_rows():
    labels = [0, 1, 1, 0, 1, 0, 0, 1]
    flipped = [*labels[:3], 1 - labels[3], *labels[4:]]
    for smoothing in (0.0, 0.1):
        assert torch.equal(_toy_fit(labels, None, smoothing), _toy_fit(labels, [1.0] * 8, smoothing))
    zero = [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    assert torch.equal(_toy_fit(labels, zero), _toy_fit(flipped, zero))  # row 3's label cannot matter
    assert not torch.equal(_toy_fit(labels, None), _toy_fit(flipped, None))  # ... unless it is trained on
    assert not torch.equal(_toy_fit(labels, None), _toy_fit(labels, [0.5, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]))


def test_weighted_cross_entropy_is_the_weighted_sum_over_the_rows():
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.tensor([0, 0, 1])
    per_row = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    got = weighted_cross_entropy(logits, labels, 0.0, [1.0, 0.0, 2.0])
    assert got.item() == pytest.approx(((per_row[0] + 2 * per_row[2]) / 3).item())


def test_bad_weights_are_one_line_errors():
    rows = [Example({"text": "x"}, "positive", id="a", lineage={"weight": -1})]
    with pytest.raises(DataError, match=r"\(id 'a'\) has weight -1"):
        sample_weights(rows)
    assert sample_weights([Example({"text": "x"}, "positive")]) is None
    assert sample_weights([Example({"text": "x"}, "positive"), Example({"text": "y"}, "positive", lineage={"weight": 0.5})]) == [1.0, 0.5]


def _weighted(rows: list[Example], weights: Sequence[float] | None, flip: int | None = None) -> list[Example]:
    out = []
    for i, e in enumerate(rows):
        lineage = {"weight": weights[i]} if weights is not None else {}
        out.append(Example(dict(e.inputs), FLIP[e.label] if i == flip else e.label, id=e.id, lineage=lineage))
    return out


@pytest.fixture(scope="module")
def small_sst2(sst2):
    task, pool, test = sst2
    split = sample_fewshot(pool, test, task, 4, 13)
    taken = {e.text for e in (*split.train, *split.dev)}
    syn = [e for e in pool if e.text not in taken and len(e.text.split()) <= 12][:8]
    return task, split, syn, test[:16]


def test_linear_probe_honours_sample_weights(small_sst2):
    from fewforge.learners.linear_probe import LinearProbe, LinearProbeConfig

    task, split, syn, test = small_sst2

    def fit(rows):
        learner = LinearProbe(task, LinearProbeConfig(C=1.0), seed=13)
        learner.fit(split.train, split.dev, synthetic=rows)
        return learner.predict_proba(test)

    base = fit(_weighted(syn, None))
    assert np.array_equal(base, fit(_weighted(syn, [1.0] * 8)))
    zero = [1.0] * 3 + [0.0] + [1.0] * 4
    assert np.array_equal(fit(_weighted(syn, zero)), fit(_weighted(syn, zero, flip=3)))
    assert not np.array_equal(base, fit(_weighted(syn, None, flip=3)))


def test_encoder_honours_sample_weights(small_sst2, minilm_path):
    from fewforge.learners.encoder import EncoderClassifier, EncoderConfig

    task, split, syn, test = small_sst2

    def fit(rows):
        # one evaluation, at the end: the last state is kept, and its 2 steps (one epoch, not length-grouped)
        # saw every synthetic row
        config = EncoderConfig(model=str(minilm_path), max_length=32, batch_size=4, min_steps=2, max_steps=2,
                               eval_every=2, group_by_length=False, threads=1)
        learner = EncoderClassifier(task, config, seed=13)
        learner.fit(split.train, split.dev, synthetic=rows)
        return learner._logits(learner._encode(test))

    base = fit(_weighted(syn, None))
    assert torch.equal(base, fit(_weighted(syn, [1.0] * 8)))  # the LP-FT head init and every step
    zero = [1.0] * 3 + [0.0] + [1.0] * 4
    assert torch.equal(fit(_weighted(syn, zero)), fit(_weighted(syn, zero, flip=3)))
    assert not torch.equal(base, fit(_weighted(syn, None, flip=3)))


def test_prompt_tuning_honours_sample_weights(tiny_t5, tmp_path):
    from fewforge.learners.prompt_tuning import PromptTuning, PromptTuningConfig

    task = load_task("sst2")
    model = tiny_t5(tmp_path / "t5")
    texts = ["a fun film", "a dull movie", "it was fun", "it was dull", "a fun movie", "a dull film"]
    real = [Example({"text": t}, "positive" if "fun" in t else "negative", id=f"r{i}") for i, t in enumerate(texts)]
    syn = [Example({"text": t}, "positive" if "fun" in t else "negative", id=f"s{i}") for i, t in enumerate(texts * 2)]

    def fit(rows):
        config = PromptTuningConfig(model=str(model), prompt_tokens=2, min_steps=3, max_steps=3, eval_every=3,
                                    batch_size=4, threads=1, learning_rate=0.3)
        learner = PromptTuning(task, config, seed=3)
        learner.fit(real[:4], real[4:], synthetic=rows)
        return learner._logits(learner._encode(real))

    base = fit(_weighted(syn, None))
    assert torch.equal(base, fit(_weighted(syn, [1.0] * 12)))
    zero = [0.0 if i in (1, 5) else 1.0 for i in range(12)]
    assert torch.equal(fit(_weighted(syn, zero)), fit(_weighted(_weighted(syn, None, flip=1), zero, flip=5)))
    assert not torch.equal(base, fit(_weighted(syn, None, flip=1)))


# -- the grid: curate on any method's set ---------------------------------------------------------------


def _script(by_label: dict[str, list[str]]):
    """ZeroGen's requests ('Write a positive movie review ...') answered with real reviews of that label,
    except every 4th request, answered with a review of the other label: planted wrong labels."""

    def script(prompt: str, i: int) -> str:
        asked = "positive" if "positive" in prompt else "negative"
        label = FLIP[asked] if i % 4 == 3 else asked
        return by_label[label][(i * 7) % len(by_label[label])]

    return script


def test_a_grid_curates_any_methods_set_and_shares_its_generation(sst2, data_dir, fake_generator, tmp_path, monkeypatch):
    from fewforge import grid
    from fewforge.fingerprint import fingerprint
    from fewforge.grid import plan_grid
    from fewforge.pipeline import run_experiment
    from fewforge.synthesis.curation.fewshot import FewShotAuditor

    task, pool, _ = sst2
    by_label = {label: [e.text for e in pool if e.label == label and 8 <= len(e.text.split()) <= 30][:60]
                for label in task.label_names}
    fake = fake_generator(_script(by_label))
    monkeypatch.setattr(grid, "_generator", lambda cfg: fake)
    seen: list[list[str]] = []
    audit = FewShotAuditor.audit
    monkeypatch.setattr(FewShotAuditor, "audit", lambda self, ctx, rows: (seen.append([e.id for e in ctx.train]), audit(self, ctx, rows))[1])
    cfg = RunConfig(
        tasks=["sst2"], data=str(data_dir), shots=[4, 8], seeds=[13], per_label=[6], learners=["linear-probe"],
        methods=["zerogen", {"name": "zerogen", "id": "zerogen-filter",
                             "curate": {"auditor": "fewshot", "action": "filter", "bottom": 0.34}},
                 {"name": "zerogen", "id": "zerogen-topup",
                  "curate": {"auditor": "fewshot", "action": "filter", "bottom": 0.34, "overgenerate": 1.5}}],
    )
    plan = plan_grid(cfg)
    keys = {(k.method, k.shots) for k in plan.synthetic_sets}
    assert keys == {("zerogen", None), ("zerogen-filter", 4), ("zerogen-filter", 8),
                    ("zerogen-topup", 4), ("zerogen-topup", 8)}  # the auditor reads the split
    run_experiment(cfg, tmp_path / "run", until="synthesis", report=False)
    root = tmp_path / "run" / "synthetic" / "sst2"
    plain = sorted(root.rglob("zerogen/done.json"))
    curated = sorted(root.rglob("zerogen-filter/done.json"))
    assert len(plain) == 1 and len(curated) == 2
    # a set without curate keeps the fingerprint it had before curation existed
    method = plan.method(next(k for k in plan.synthetic_sets if k.method == "zerogen"))
    old = fingerprint({"source": plan.data["sst2"].pool_fingerprint, "seed": 13, "method": "zerogen",
                       "config": method.config.model_dump(mode="json"), "backend": "fake", "model": "scripted",
                       "options": {}})
    assert json.loads(plain[0].read_text())["fingerprint"] == old
    # generation is shared: the curated sets' requests all came from the cache
    for done in curated:
        card = json.loads((done.parent / "card.json").read_text())
        assert card["cache"]["misses"] == 0 and card["cache"]["hits"] > 0
        assert card["curation"]["before"] == 12 and card["curation"]["after"] == 8
        assert card["per_label"] == {"negative": 4, "positive": 4}
        rows = [json.loads(line) for line in (done.parent / "data.jsonl").read_text().splitlines()]
        assert all(r["lineage"]["audit"]["auditor"] == "fewshot" for r in rows)
        dropped = [json.loads(line) for line in (done.parent / "dropped.jsonl").read_text().splitlines()]
        assert sum(d["reason"] == "audit_bottom" for d in dropped) == 4
        assert "## Curation" in (done.parent / "README.md").read_text()  # the dataset card says so too
    unfiltered = [json.loads(line)["id"] for line in (plain[0].parent / "data.jsonl").read_text().splitlines()]
    kept = [json.loads(line)["id"] for line in (curated[0].parent / "data.jsonl").read_text().splitlines()]
    assert set(kept) < set(unfiltered)  # the same generated rows, fewer of them
    # overgenerate 1.5: 9 rows per label generated (the first 6 from the cache), 3 of each label's 9 filtered,
    # and the set is back at 6 per label
    for done in sorted(root.rglob("zerogen-topup/done.json")):
        card = json.loads((done.parent / "card.json").read_text())
        assert card["curation"]["before"] == 18 and card["curation"]["after"] == 12
        assert card["per_label"] == {"negative": 6, "positive": 6}
        assert card["curation"]["dropped"] == {"audit_bottom": 6}
        assert card["cache"]["hits"] > 0  # the plain set's rows were asked for again
    # the auditor saw each split's train rows, never its dev rows
    assert len(seen) == 4  # per split: zerogen-filter's audit, then zerogen-topup's
    for shots, ids in zip((4, 4, 8, 8), seen):
        train = [line for line in (tmp_path / "run" / "fewshot" / "sst2" / f"k{shots}" / "seed13" / "train.jsonl").read_text().splitlines()]
        dev = (tmp_path / "run" / "fewshot" / "sst2" / f"k{shots}" / "seed13" / "dev.jsonl").read_text()
        assert len(ids) == len(train) == 2 * shots and not any(f'"{i}"' in dev for i in ids)


def test_curate_errors_come_at_plan_time(data_dir, fake_generator, monkeypatch):
    from fewforge import grid
    from fewforge.grid import plan_grid

    monkeypatch.setattr(grid, "_generator", lambda cfg: fake_generator(lambda p, i: "x"))
    base = {"data": str(data_dir), "shots": [4], "seeds": [13], "per_label": [4]}

    def plan(curate, tasks=("sst2",), learners=("linear-probe",)):
        return plan_grid(RunConfig(**base, tasks=list(tasks), learners=list(learners),
                                   methods=[{"name": "zerogen", "curate": curate}]))

    with pytest.raises(ConfigError, match=r"methods\[0\]\.curate: curation audits class labels, and squad is a "
                                          r"extractive-qa task"):
        plan({"auditor": "fewshot"}, tasks=("squad",), learners=("qa-encoder",))
    with pytest.raises(ConfigError, match=r"methods\[0\]\.curate\.auditor: unknown auditor 'oracle'"):
        plan({"auditor": "oracle"})
    with pytest.raises(ConfigError, match=r"unknown key 'methods\[0\]\.curate\.options\.fold'"):
        plan({"options": {"fold": 3}})
    with pytest.raises(ConfigError, match=r"invalid methods\[0\]\.curate: action filter needs"):
        plan({"action": "filter"})
    with pytest.raises(ConfigError, match=r"the generator auditor scores the verbalizers, and the fake backend"):
        plan({"auditor": "generator"})
    with pytest.raises(ConfigError, match="cannot load adapters"):
        plan({"auditor": "teacher"})
    assert plan({"auditor": "fewshot"}).curation["zerogen"].auditor == "fewshot"


# -- real generators (slow: the packaged SmolLM2 on llama.cpp and through transformers) ---------------


@pytest.mark.slow
def test_generator_auditor_on_the_packaged_smollm2(sst2, smollm2, tmp_path):
    from fewforge.generators import CachedGenerator

    task, pool, _ = sst2
    rows = [Example(dict(e.inputs), e.label, id=f"p{i}") for i, e in enumerate(pool[:12])]
    cached = CachedGenerator(smollm2, tmp_path / "cache.sqlite")
    out = curate(SyntheticDataset(rows), {"auditor": "generator"}, AuditContext(task, 13, generator=cached))
    assert (cached.score_misses, cached.score_hits) == (24, 0)  # two verbalizers per row, cached for a rerun
    again = curate(SyntheticDataset(rows), {"auditor": "generator"}, AuditContext(task, 13, generator=cached))
    assert (cached.score_misses, cached.score_hits) == (24, 24)
    assert [e.lineage["audit"] for e in again.examples] == [e.lineage["audit"] for e in out.examples]
    for e in out.examples:
        assert sum(e.lineage["audit"]["probs"].values()) == pytest.approx(1.0)
    info = out.card["curation"]["auditor"]
    assert info["prompt"] == "{text} It was" and info["words"] == {"negative": " terrible", "positive": " great"}


@pytest.mark.slow
def test_teacher_auditor_learns_from_the_train_rows_and_scores_under_its_lora(sst2, tmp_path):
    from fewforge.generators import get_generator

    task, pool, test = sst2
    split = sample_fewshot(pool, test, task, 2, 13)
    rows = [Example(dict(e.inputs), e.label, id=f"p{i}") for i, e in enumerate(pool[100:106])]
    generator = get_generator("hf:smollm2", batch_size=8)
    adapters = []
    score = generator.score

    def recording(prompts, continuations, *, adapter=None, progress=None):
        adapters.append(adapter)
        return score(prompts, continuations, adapter=adapter, progress=progress)

    generator.score = recording
    try:
        options = {"epochs": 1, "max_steps": 2, "batch_size": 2}
        ctx = AuditContext(task, 13, split.train, generator, tmp_path / "curate")
        out = curate(SyntheticDataset(rows), {"auditor": "teacher", "action": "keep", "options": options}, ctx)
    finally:
        generator.close()
    info = out.card["curation"]["auditor"]
    assert info["train_rows"] == len(split.train) == 4 and info["teacher"]["rows"] == 4  # train only, no dev
    assert info["teacher"]["tuned"] and info["teacher"]["adapter"]["kind"] == "lora"
    assert adapters and all(a is not None and a.kind == "lora" for a in adapters)
    for e in out.examples:
        assert sum(e.lineage["audit"]["probs"].values()) == pytest.approx(1.0)


def test_the_command_line_curates_every_method():
    from fewforge.cli.options import build_config

    cfg = build_config(None, task="sst2", method="zerogen,s3", curate="auditor=fewshot,action=filter,bottom=0.2,options.folds=3")
    assert [m.curate for m in cfg.methods] == [{"auditor": "fewshot", "action": "filter", "bottom": 0.2,
                                                "options": {"folds": 3}}] * 2
    assert build_config(None, task="sst2", curate="action=weight").methods[0].model_dump(exclude_none=True) == {
        "name": "zerogen", "options": {}, "curate": {"action": "weight"}}
    with pytest.raises(ConfigError, match="--curate 'weight' is not KEY=VALUE"):
        build_config(None, curate="weight")
