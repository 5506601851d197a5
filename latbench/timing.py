"""The measurement protocol: one implementation shared by every backend.

For a *group* of prepared specs (callables that run one inference):

1. **Warm-up** each until it has run ``warmup_min_iters`` times *and* for
   ``warmup_min_s`` seconds (first-run allocations, lazy initialisation, frequency ramp).
   Build/compile time is never part of this: backends record it when they prepare.
2. **Calibrate** the block size: the number of inferences per sample is doubled (or
   scaled from the last estimate) until one sample lasts ``min_sample_s``, so the
   timer's own overhead and resolution are negligible.
3. **Rounds**: the samples of each spec are spread over ``rounds`` rounds, and every
   round visits every spec of the group (in a rotated order), so a noisy neighbour that
   strikes for a few seconds hits every spec a little rather than one spec a lot.
4. **Stability** is judged by IQR / median (robust to the outliers that a shared machine
   produces), not by std / mean. Specs above ``max_iqr_ratio`` get more rounds, up to
   ``max_extensions`` times, and are then flagged unstable rather than silently kept.

The clock is injected (``clock=time.perf_counter`` by default), so the whole protocol
is tested deterministically with a fake clock. Backends whose devices run
asynchronously supply their own ``timer`` (CUDA events, ``block_until_ready``).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from latbench.errors import ConfigError
from latbench.measurement import Stats

Clock = Callable[[], float]
#: ``timer(fn, iterations) -> seconds`` for ``iterations`` back-to-back calls of ``fn``.
Timer = Callable[[Callable[[], object], int], float]


@dataclass(frozen=True)
class ProtocolSettings:
    """Knobs of the protocol. Defaults suit CPU blocks from ~10 µs to ~1 s."""

    warmup_min_s: float = 0.05
    warmup_min_iters: int = 3
    min_sample_s: float = 0.002
    max_iterations_per_sample: int = 10_000
    samples: int = 64
    min_samples: int = 16
    rounds: int = 4
    max_spec_s: float = 6.0
    max_iqr_ratio: float = 0.10
    max_extensions: int = 2

    def __post_init__(self) -> None:
        for name in ("samples", "min_samples", "rounds", "warmup_min_iters", "max_iterations_per_sample"):
            if getattr(self, name) < 1:
                raise ConfigError(f"protocol setting {name} must be >= 1")
        if self.min_samples > self.samples:
            raise ConfigError("protocol setting min_samples must not exceed samples")
        if self.max_extensions < 0 or self.max_iqr_ratio <= 0 or self.min_sample_s < 0:
            raise ConfigError("protocol settings max_extensions, max_iqr_ratio, min_sample_s must be >= 0")

    @classmethod
    def with_samples(cls, samples: int) -> ProtocolSettings:
        """The defaults with ``samples`` per spec (and a minimum of no more than that)."""
        return cls(samples=samples, min_samples=min(cls().min_samples, samples))


@dataclass(frozen=True)
class Sampled:
    """What the protocol observed for one spec (times are per inference)."""

    times_s: tuple[float, ...]
    iterations_per_sample: int
    rounds: int
    stable: bool

    @property
    def stats(self) -> Stats:
        return Stats.of(self.times_s)


def clock_timer(clock: Clock) -> Timer:
    def timer(fn: Callable[[], object], iterations: int) -> float:
        start = clock()
        for _ in range(iterations):
            fn()
        return clock() - start

    return timer


class _Item:
    def __init__(self, fn: Callable[[], object], timer: Timer) -> None:
        self.fn = fn
        self.timer = timer
        self.iterations = 1
        self.samples_per_round = 1
        self.times_s: list[float] = []
        self.rounds = 0


def measure_group(
    fns: Sequence[Callable[[], object]],
    settings: ProtocolSettings | None = None,
    *,
    clock: Clock = time.perf_counter,
    timers: Sequence[Timer | None] | None = None,
) -> list[Sampled]:
    """Run the protocol over ``fns`` (one callable = one inference of one spec).

    ``timers`` gives each callable its own timer (``None``: the clock around the calls).
    """
    settings = settings or ProtocolSettings()
    default = clock_timer(clock)
    timers = list(timers) if timers is not None else [None] * len(fns)
    if len(timers) != len(fns):
        raise ValueError("give one timer (or None) per callable")
    items = [_Item(fn, timer or default) for fn, timer in zip(fns, timers, strict=True)]
    if not items:
        return []

    for item in items:
        _warm_up(item, settings)
        per_iteration_s = _calibrate(item, settings)
        # Budget: a spec whose samples are slow gets fewer (never under min_samples).
        sample_s = per_iteration_s * item.iterations
        affordable = int(settings.max_spec_s / sample_s) if sample_s > 0 else settings.samples
        total = max(settings.min_samples, min(settings.samples, affordable))
        item.samples_per_round = math.ceil(total / settings.rounds)

    gc_was_enabled = gc.isenabled()
    # The young generations hold what preparing these specs left behind; a full
    # collection would walk every object of the process (torch, sklearn: ~0.2 s a
    # group) and buys nothing, since no collection can run in the timed blocks anyway.
    gc.collect(1)
    gc.disable()  # a collection inside a timed block is noise, not the model's latency
    try:
        _run_rounds(items, settings.rounds)
        for _ in range(settings.max_extensions):
            unstable = [it for it in items if Stats.of(it.times_s).iqr_ratio > settings.max_iqr_ratio]
            if not unstable:
                break
            _run_rounds(unstable, settings.rounds)
    finally:
        if gc_was_enabled:
            gc.enable()

    return [
        Sampled(
            times_s=tuple(it.times_s),
            iterations_per_sample=it.iterations,
            rounds=it.rounds,
            stable=Stats.of(it.times_s).iqr_ratio <= settings.max_iqr_ratio,
        )
        for it in items
    ]


def _warm_up(item: _Item, settings: ProtocolSettings) -> None:
    # Elapsed time is what the timer reports, so device timers (whose work the host
    # clock does not see) warm up for as long as a host-timed backend does. Runs go in
    # doubling batches (at most twice the minimum time): a 10 µs operator warms up in a
    # dozen timer calls, not thousands, and a slow model still runs one at a time.
    runs, elapsed, batch = 0, 0.0, 1
    while runs < settings.warmup_min_iters or elapsed < settings.warmup_min_s:
        elapsed += item.timer(item.fn, batch)
        runs += batch
        batch = min(2 * batch, settings.max_iterations_per_sample)


def _calibrate(item: _Item, settings: ProtocolSettings) -> float:
    """Choose iterations per sample so that one sample lasts at least ``min_sample_s``."""
    n = 1
    elapsed = item.timer(item.fn, n)
    while elapsed < settings.min_sample_s and n < settings.max_iterations_per_sample:
        if elapsed > 0:
            # aim 20% over the threshold, but at least double, so this converges fast
            n = max(2 * n, math.ceil(n * settings.min_sample_s * 1.2 / elapsed))
        else:
            n *= 10  # below the clock's resolution
        n = min(n, settings.max_iterations_per_sample)
        elapsed = item.timer(item.fn, n)
    item.iterations = n
    return elapsed / n


def _run_rounds(items: list[_Item], rounds: int) -> None:
    for r in range(rounds):
        shift = r % len(items)
        for item in items[shift:] + items[:shift]:  # rotate: nobody always goes first
            for _ in range(item.samples_per_round):
                item.times_s.append(item.timer(item.fn, item.iterations) / item.iterations)
            item.rounds += 1
