"""A deterministic fake clock, and callables that advance it as if they ran.

``FakeClock`` is injected into ``latbench.timing.measure_group`` in place of
``time.perf_counter``; a ``FakeRun`` advances it by scripted durations, so every step of
the protocol (warm-up, calibration, rounds, extension) can be checked exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import cycle


class FakeClock:
    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not run backwards")
        self.now_s += seconds


class FakeRun:
    """A callable 'inference' that takes ``durations_s`` (cycled) of fake time per call."""

    def __init__(
        self,
        clock: FakeClock,
        durations_s: float | Iterable[float],
        name: str = "",
        log: list[str] | None = None,
    ) -> None:
        self.clock = clock
        values = [durations_s] if isinstance(durations_s, (int, float)) else list(durations_s)
        self._durations: Callable[[], float] = cycle(values).__next__
        self.name = name
        self.calls = 0
        self.log = log

    def __call__(self) -> None:
        self.calls += 1
        if self.log is not None:
            self.log.append(self.name)
        self.clock.advance(self._durations())
