"""The linear-probe learner on the packaged all-MiniLM-L6-v2 and real SST-2 / RTE slices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fewforge.data.schema import Example
from fewforge.errors import ConfigError, DataError, TaskError
from fewforge.learners import get_learner
from fewforge.learners.linear_probe import LinearProbe, LinearProbeConfig
from fewforge.tasks import load_task


def _rows(path: Path, split: str, limit: int | None = None) -> list[Example]:
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()[:limit]):
        record = json.loads(line)
        label = record.pop("label")
        out.append(Example(inputs=record, label=label, id=f"{split}-{i}"))
    return out


def _per_label(rows, labels, start, k):
    return [e for label in labels for e in [r for r in rows if r.label == label][start : start + k]]


@pytest.fixture(scope="module")
def sst2(data_dir):
    task = load_task("sst2")
    pool = _rows(data_dir / "sst2" / "train.jsonl", "train", 2000)
    return {
        "task": task,
        "train": _per_label(pool, task.label_names, 0, 16),
        "dev": _per_label(pool, task.label_names, 16, 16),
        "extra": _per_label(pool, task.label_names, 32, 150),
        "test": _rows(data_dir / "sst2" / "dev.jsonl", "test")[:300],
    }


def _accuracy(learner, rows):
    return sum(p == e.label for p, e in zip(learner.predict(rows), rows)) / len(rows)


def test_registered_and_learns_sst2(sst2):
    assert get_learner("linear-probe") is LinearProbe
    learner = LinearProbe(sst2["task"], seed=13)
    report = learner.fit(sst2["train"], sst2["dev"])
    # 32 real rows: frozen MiniLM features + logistic regression reach ~0.68 on these 300 rows; an
    # untrained or broken head stays near 0.5. 0.6 is > 3 binomial std above chance.
    assert _accuracy(learner, sst2["test"]) >= 0.6
    assert report.extra["C"] in LinearProbeConfig().c_grid and report.extra["strategy"] == "paired"
    assert [h["C"] for h in report.history] == sorted(LinearProbeConfig().c_grid)
    best = max(report.history, key=lambda h: (h["dev_accuracy"], -h["dev_loss"]))
    assert report.best_dev_accuracy == best["dev_accuracy"] and report.best_step == best["step"]
    proba = learner.predict_proba(sst2["test"][:7])
    assert proba.shape == (7, 2) and abs(proba.sum(axis=1) - 1).max() < 1e-6


def test_paired_weights_keep_real_rows_from_being_outvoted(sst2):
    """150 synthetic rows per class whose labels are coin flips (half flipped): weighted as much as the
    32 real rows together (paired), they add noise the real rows outweigh; counted one by one (real+syn),
    they drown the real signal. Measured: 0.71 vs 0.55 on these 300 test rows."""
    task = sst2["task"]
    flip = {"negative": "positive", "positive": "negative"}
    noisy = [
        Example(e.inputs, flip[e.label] if i % 2 else e.label, id=f"syn-{e.id}") for i, e in enumerate(sst2["extra"])
    ]
    paired = LinearProbe(task, LinearProbeConfig(strategy="paired", C=1.0))
    union = LinearProbe(task, LinearProbeConfig(strategy="real+syn", C=1.0))
    report = paired.fit(sst2["train"], sst2["dev"], synthetic=noisy)
    union.fit(sst2["train"], sst2["dev"], synthetic=noisy)
    assert report.extra["synthetic_weight"] == pytest.approx(32 / 300)
    assert _accuracy(paired, sst2["test"]) > _accuracy(union, sst2["test"]) + 0.08


def test_conditions_use_the_rows_they_should(sst2):
    task, train, dev = sst2["task"], sst2["train"], sst2["dev"]
    synthetic = [Example(e.inputs, e.label, id=f"syn-{e.id}") for e in sst2["extra"][:20] + sst2["extra"][-20:]]
    real = LinearProbe(task, LinearProbeConfig(strategy="real", C=1.0))
    real.fit(train, dev, synthetic=synthetic)  # "real" ignores the synthetic rows
    plain = LinearProbe(task, LinearProbeConfig(C=1.0))
    plain.fit(train, dev)  # no synthetic rows: the real rows alone
    assert (real.head.coef_ == plain.head.coef_).all()
    syn = LinearProbe(task, LinearProbeConfig(strategy="syn", C=1.0))
    report = syn.fit(train, dev, synthetic=synthetic)
    assert report.extra["strategy"] == "syn" and (syn.head.coef_ != plain.head.coef_).any()
    with pytest.raises(DataError, match="strategy 'syn' needs synthetic rows"):
        LinearProbe(task, LinearProbeConfig(strategy="syn")).fit(train, dev)
    bad = [Example({"text": "fine"}, "neutral", id="syn-9")]
    with pytest.raises(DataError, match="synthetic.*syn-9.*neutral"):
        plain.fit(train, dev, synthetic=bad)


def test_save_load_round_trip(sst2, tmp_path):
    learner = LinearProbe(sst2["task"], seed=21)
    learner.fit(sst2["train"], sst2["dev"])
    learner.save(tmp_path / "m")
    loaded = LinearProbe.load(sst2["task"], tmp_path / "m")
    assert loaded.config == learner.config and loaded.seed == 21
    assert (loaded.predict_proba(sst2["test"][:50]) == learner.predict_proba(sst2["test"][:50])).all()
    other = load_task("rte")
    with pytest.raises(TaskError, match="labels"):
        LinearProbe.load(other, tmp_path / "m")
    with pytest.raises(ConfigError, match="head.json"):
        LinearProbe.load(sst2["task"], tmp_path)
    with pytest.raises(ConfigError, match="fit\\(\\) or load\\(\\)"):
        LinearProbe(sst2["task"]).predict(["a movie"])


def test_pair_features(data_dir):
    task = load_task("rte")
    pool = _rows(data_dir / "rte" / "train.jsonl", "train", 400)
    learner = LinearProbe(task, LinearProbeConfig(C=1.0))
    train, dev = _per_label(pool, task.label_names, 0, 8), _per_label(pool, task.label_names, 8, 4)
    learner.fit(train, dev)
    assert learner.features(train[:3]).shape == (3, 4 * 384)  # [u, v, |u-v|, u*v]
    assert set(learner.predict([("A cat sat.", "An animal sat.")])) <= set(task.label_names)
