"""How real and synthetic rows form the batches of a torch learner: one function + one registration each.

A strategy turns (real rows, synthetic rows, step budget) into `steps` batches, each a `Batch` of real
row indices and synthetic row indices. The learner runs one forward/backward pass per non-empty half
and adds the two mean losses, so a real half always carries the weight it has in real-only training.

The step budget is not the strategy's to choose: it is `step_budget(n_real, ...)`, computed from the
real few-shot rows only, so every condition of a grid cell (real only, real + synthetic, synthetic only)
trains for the same number of optimizer steps.

The fair rule (docs/fidelity.md): `paired` is the default for real + synthetic data. Each step carries a
full real batch (real rows cycled epoch by epoch, exactly as in real-only training) plus a synthetic
batch, so adding synthetic data never means seeing the real rows less — DawGen's (Real, Syn) scheme
(§3.3). `real+syn` (one shuffled union, the first slice's behaviour) is kept for comparison: under the
same step budget it shows each real row n_real / (n_real + n_syn) times as often.

`real->syn` and `syn->real` (per-epoch order, DawGen Table 2) see exactly the batches `paired` sees, one
source per optimizer step: each epoch is one pass over the real rows (R batches) and R synthetic
batches, real first or synthetic first. They therefore take 2 x the step budget in half-size steps —
the same rows and compute as `paired`, only the order differs, so the comparison isolates ordering.
(An epoch over the synthetic set, as in the paper where it is 60x the real set, would leave the real
rows unseen for most of the run.) `paired+gs` is `paired`'s batches with gradient surgery applied by
the learner (gradient_surgery.py; `paired+gs-all` / `paired+gs-ema` project against steadier references);
`paired+reweight` is `paired`'s batches with each synthetic row's
loss weighted by its learned agreement with the step's real batch (reweight.py, after Ren et al. 2018),
and `paired+l2rw` the same with the paper's own weight rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from fewforge.errors import ConfigError, DataError
from fewforge.registry import Registry

GROUP_BATCHES = 16  # batches per length-sorted window when lengths are given


@dataclass(frozen=True)
class Batch:
    real: list[int] = field(default_factory=list)
    syn: list[int] = field(default_factory=list)


# strategy(n_real, n_syn, steps, batch_size, rngs, real_lengths, syn_lengths) -> `steps` batches, where
# rngs = (real stream generator, synthetic stream generator): separate streams, so the real batches of
# `paired` are exactly those of `real` (same seed), whatever the synthetic set holds.
Plan = Callable[..., Iterator[Batch]]
STRATEGIES: Registry[Plan] = Registry("strategy")


def step_budget(n_real: int, batch_size: int, epochs: float, min_steps: int, max_steps: int) -> int:
    """Optimizer steps of a run: `epochs` passes over the real rows, clamped to [min_steps, max_steps].
    Only the real few-shot rows count, so every condition of a cell gets the same budget."""
    wanted = math.ceil(epochs * n_real / batch_size)
    return max(min_steps, min(max_steps, wanted))


def check(strategy: str, n_real: int, n_syn: int) -> None:
    """One-line errors for data a strategy cannot train on. A mixing strategy given no synthetic rows
    trains on the real rows alone (as 'real'); 'syn' without synthetic rows is an error."""
    STRATEGIES.get(strategy)  # unknown name -> one-line ConfigError listing the known ones
    if strategy != "syn" and not n_real:
        raise DataError(f"strategy {strategy!r} needs real training rows, got none", hint="check the few-shot split")
    if strategy == "syn" and not n_syn:
        raise DataError(
            f"strategy {strategy!r} needs synthetic rows, got none",
            hint="generate synthetic data first (fewforge generate) or use strategy 'real'",
        )


def index_stream(
    n: int, batch_size: int, generator: "object", lengths: Sequence[int] | None = None
) -> Iterator[list[int]]:
    """Endless full batches of row indices from back-to-back shuffled epochs (the order depends only on
    the torch generator). With `lengths`, each window of GROUP_BATCHES batches is sorted by length
    before it is cut (transformers' group_by_length on a smaller window) and its batches shuffled: a
    batch pads to its longest row, so long rows stop padding short ones."""
    import torch

    size = min(batch_size, n)
    window = size * GROUP_BATCHES
    buffer: list[int] = []
    while True:
        while len(buffer) < window:
            buffer += torch.randperm(n, generator=generator).tolist()
        chunk, buffer = buffer[:window], buffer[window:]
        if lengths is not None:
            chunk.sort(key=lambda i: lengths[i])
        batches = [chunk[s : s + size] for s in range(0, window, size)]
        if lengths is not None:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        yield from batches


def _take(stream: Iterator[list[int]], steps: int) -> Iterator[list[int]]:
    for _ in range(steps):
        yield next(stream)


def real_only(n_real, n_syn, steps, batch_size, rngs, real_lengths=None, syn_lengths=None) -> Iterator[Batch]:
    """Real rows only (the baseline condition)."""
    for idx in _take(index_stream(n_real, batch_size, rngs[0], real_lengths), steps):
        yield Batch(real=idx)


def syn_only(n_real, n_syn, steps, batch_size, rngs, real_lengths=None, syn_lengths=None) -> Iterator[Batch]:
    """Synthetic rows only (the real rows still choose the checkpoint on dev)."""
    for idx in _take(index_stream(n_syn, batch_size, rngs[1], syn_lengths), steps):
        yield Batch(syn=idx)


def union(n_real, n_syn, steps, batch_size, rngs, real_lengths=None, syn_lengths=None) -> Iterator[Batch]:
    """Real and synthetic rows shuffled together into one pool (Real+Syn)."""
    lengths = None if real_lengths is None or syn_lengths is None else [*real_lengths, *syn_lengths]
    for idx in _take(index_stream(n_real + n_syn, batch_size, rngs[0], lengths), steps):
        yield Batch(real=[i for i in idx if i < n_real], syn=[i - n_real for i in idx if i >= n_real])


def paired(n_real, n_syn, steps, batch_size, rngs, real_lengths=None, syn_lengths=None) -> Iterator[Batch]:
    """Every step: a full real batch plus a synthetic batch ((Real, Syn), the fair default)."""
    real = index_stream(n_real, batch_size, rngs[0], real_lengths)
    syn = index_stream(n_syn, batch_size, rngs[1], syn_lengths)
    for _ in range(steps):
        yield Batch(real=next(real), syn=next(syn))


def _sequential(n_real, n_syn, steps, batch_size, rngs, real_lengths, syn_lengths, real_first) -> Iterator[Batch]:
    real = index_stream(n_real, batch_size, rngs[0], real_lengths)
    syn = index_stream(n_syn, batch_size, rngs[1], syn_lengths)
    per_epoch = math.ceil(n_real / batch_size)  # batches in one pass over the real rows
    done = 0
    while done < steps:
        n = min(per_epoch, steps - done)
        real_part = [Batch(real=next(real)) for _ in range(n)]
        syn_part = [Batch(syn=next(syn)) for _ in range(n)]
        yield from (real_part + syn_part) if real_first else (syn_part + real_part)
        done += n


def real_then_syn(n_real, n_syn, steps, batch_size, rngs, real_lengths=None, syn_lengths=None) -> Iterator[Batch]:
    """Each epoch: a pass over the real rows, then as many synthetic batches (Real→Syn)."""
    return _sequential(n_real, n_syn, steps, batch_size, rngs, real_lengths, syn_lengths, real_first=True)


def syn_then_real(n_real, n_syn, steps, batch_size, rngs, real_lengths=None, syn_lengths=None) -> Iterator[Batch]:
    """Each epoch: synthetic batches, then a pass over the real rows (Syn→Real)."""
    return _sequential(n_real, n_syn, steps, batch_size, rngs, real_lengths, syn_lengths, real_first=False)


STRATEGIES.register("real", f"{__name__}:real_only")
STRATEGIES.register("syn", f"{__name__}:syn_only")
STRATEGIES.register("real+syn", f"{__name__}:union")
STRATEGIES.register("real->syn", f"{__name__}:real_then_syn")
STRATEGIES.register("syn->real", f"{__name__}:syn_then_real")
STRATEGIES.register("paired", f"{__name__}:paired")
STRATEGIES.register("paired+gs", f"{__name__}:paired")  # same batches; the learner does the surgery
STRATEGIES.register("paired+gs-all", f"{__name__}:paired")  # the same against all real rows' gradient
STRATEGIES.register("paired+gs-ema", f"{__name__}:paired")  # the same against a moving average of it
STRATEGIES.register("paired+reweight", f"{__name__}:paired")  # same batches; the loop learns row weights
STRATEGIES.register("paired+l2rw", f"{__name__}:paired")  # the same with Ren et al.'s own weight rule

# strategies whose learner projects δ_syn against the real gradient, and the reference each projects
# against (gradient_surgery.Reference: the batch's, all real rows', a moving average)
SURGERY = {"paired+gs": "batch", "paired+gs-all": "all-real", "paired+gs-ema": "ema"}
# strategies whose synthetic rows get learned weights, and the weight rule of each (reweight.py)
REWEIGHT = {"paired+reweight": "centred", "paired+l2rw": "l2rw"}
STRATEGY_NAMES = (
    "real", "syn", "real+syn", "real->syn", "syn->real", "paired", "paired+gs", "paired+gs-all", "paired+gs-ema",
    "paired+reweight", "paired+l2rw",
)


def uses_surgery(strategy: str) -> bool:
    return strategy in SURGERY


def uses_reweight(strategy: str) -> bool:
    return strategy in REWEIGHT


def plan(
    strategy: str,
    n_real: int,
    n_syn: int,
    steps: int,
    batch_size: int,
    seed: int,
    real_lengths: Sequence[int] | None = None,
    syn_lengths: Sequence[int] | None = None,
) -> list[Batch]:
    """All batches of a run, decided up front from the seed alone: `steps` of them, or 2 x `steps`
    single-source ones for the sequential strategies (real->syn, syn->real)."""
    import torch

    check(strategy, n_real, n_syn)
    if steps < 1 or batch_size < 1:
        raise ConfigError(f"steps ({steps}) and batch_size ({batch_size}) must be at least 1")
    if not n_syn:
        strategy = "real" if strategy != "syn" else strategy
    rngs = (torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1_000_003))
    return list(STRATEGIES.get(strategy)(n_real, n_syn, steps, batch_size, rngs, real_lengths, syn_lengths))
