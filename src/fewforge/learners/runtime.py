"""The process state a torch learner runs under: its own random streams (`seeded`) and its CPU thread
count (`torch_threads`). Kept apart from the loop so the learner base class, the loop and the DAFTT
teacher share them without importing each other."""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Iterator


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
