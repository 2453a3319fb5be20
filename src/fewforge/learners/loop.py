"""The training loop every torch learner uses (nanoGPT's train.py shape, read top to bottom):
step through a batch plan decided up front, evaluate on dev every `eval_every` steps and at the last
one, keep the best state (dev accuracy, ties broken by lower dev loss), stop after `patience`
evaluations without improvement, restore the best state.

A learner supplies what differs: `step(batch) -> loss` (forward, backward, optimizer step),
`evaluate() -> (dev accuracy, dev loss)`, and `snapshot()` / `restore(state)` of its trainable weights.
`seeded(seed)` gives a learner its own random streams without touching the caller's global state.
"""

from __future__ import annotations

import logging
import math
import random
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from fewforge.learners.base import FitReport
from fewforge.learners.strategies import Batch

log = logging.getLogger(__name__)

EVALS_PER_RUN = 6  # default dev evaluations per run: on BBC each costs ~2 s, about 2.5 training steps


def eval_interval(eval_every: int | None, total_steps: int) -> int:
    """`eval_every`, or by default every 1/EVALS_PER_RUN of the run."""
    return eval_every or max(1, total_steps // EVALS_PER_RUN)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed python's, numpy's and torch's global generators for the block, then put back the caller's
    states: a learner's weight init, dropout and shuffles depend on `seed` alone, and fitting one
    learner never changes the random draws of the code around it."""
    import numpy as np
    import torch

    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` torch CPU threads (None: leave torch's choice)."""
    import torch

    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_loop(
    batches: Sequence[Batch],
    *,
    step: Callable[[Batch], float],
    evaluate: Callable[[], tuple[float, float]],
    snapshot: Callable[[], Any],
    restore: Callable[[Any], None],
    eval_every: int,
    patience: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> FitReport:
    """Train through `batches`; returns the report of the best dev evaluation (its state restored)."""
    total = len(batches)
    history: list[dict[str, Any]] = []
    best: tuple[float, float] = (-1.0, -math.inf)  # (dev accuracy, -dev loss)
    best_state, best_step, since_best, losses = None, 0, 0, []
    step_no = 0
    for step_no, batch in enumerate(batches, start=1):
        losses.append(step(batch))
        if progress is not None:
            progress(step_no, total)
        if step_no % eval_every and step_no != total:
            continue
        accuracy, dev_loss = evaluate()
        entry = {"step": step_no, "loss": sum(losses) / len(losses), "dev_accuracy": accuracy, "dev_loss": dev_loss}
        losses = []
        history.append(entry)
        if (accuracy, -dev_loss) > best:
            best, best_step, since_best, best_state = (accuracy, -dev_loss), step_no, 0, snapshot()
        else:
            since_best += 1
        log.info("step %d/%d %s", step_no, total, entry)
        if patience and since_best >= patience:
            log.info("early stop at step %d: no dev improvement in %d evaluations", step_no, patience)
            break
    if best_state is not None:
        restore(best_state)
    return FitReport(best_dev_accuracy=best[0], best_step=best_step, steps=step_no, seconds=0.0, history=history)
