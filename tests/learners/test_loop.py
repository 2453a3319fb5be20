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
