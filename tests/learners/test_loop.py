"""The shared loop's model selection: the start can be a candidate, so best-on-dev never returns a model
worse on dev than the one it started from (LP-FT's head is a fitted probe)."""

from __future__ import annotations

from fewforge.learners.loop import run_loop


def _loop(dev_after_each_step: list[float], start: float, start_is_candidate: bool):
    state = {"weights": "start", "dev": start}
    scores = iter(dev_after_each_step)

    def step(batch) -> float:
        state["weights"], state["dev"] = f"after {batch}", next(scores)
        return 0.1

    report = run_loop(
        list(range(1, len(dev_after_each_step) + 1)),
        step=step,
        evaluate=lambda: (state["dev"], 1.0 - state["dev"]),
        snapshot=lambda: dict(state),
        restore=state.update,
        eval_every=1,
        start_is_candidate=start_is_candidate,
    )
    return report, state


def test_a_start_no_step_beats_on_dev_is_kept():
    report, state = _loop([0.6, 0.7, 0.5], start=0.8, start_is_candidate=True)
    assert report.best_step == 0 and report.best_dev_accuracy == 0.8 and state["weights"] == "start"
    assert [h["step"] for h in report.history] == [0, 1, 2, 3]


def test_a_step_that_beats_the_start_wins():
    report, state = _loop([0.6, 0.9, 0.5], start=0.8, start_is_candidate=True)
    assert report.best_step == 2 and state["weights"] == "after 2"


def test_without_the_flag_the_start_is_not_a_candidate():
    report, state = _loop([0.6, 0.7, 0.5], start=0.8, start_is_candidate=False)
    assert report.best_step == 2 and state["weights"] == "after 2" and report.history[0]["step"] == 1


def test_lp_ft_with_normalized_features_starts_as_the_linear_probe(data_dir):
    """normalize + the embedder's 256 tokens: the encoder's probe-initialised head predicts what the linear
    probe predicts (its features are the probe's), so keeping the start keeps LP-FT level with LP on dev."""
    import numpy as np

    from fewforge.data.fewshot import sample_fewshot
    from fewforge.data.sources import load_task_data
    from fewforge.learners import get_learner
    from fewforge.tasks import load_task

    task = load_task("sst2")
    pool, test = load_task_data(task, data_dir)
    split = sample_fewshot(pool, test, task, 4, seed=13)
    probe = get_learner("linear-probe")(task, get_learner("linear-probe").Config(strategy="real"), seed=13)
    probe.fit(split.train, split.dev)
    cls = get_learner("encoder")
    # a learning rate too small to move anything: the one step leaves the start
    start = cls(task, cls.Config(strategy="real", max_length=256, normalize=True, learning_rate=1e-12,
                                 min_steps=1, max_steps=1), seed=13)
    report = start.fit(split.train, split.dev)
    rows = test[:40]
    assert start.predict(rows) == probe.predict(rows)
    assert np.allclose(start.predict_proba(rows), probe.predict_proba(rows), atol=2e-3)
    assert report.history[0]["step"] == 0
