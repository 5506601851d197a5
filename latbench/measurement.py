"""``Measurement``: one spec timed on one target, with its raw samples and provenance.

Statistics are derived from the raw samples (``times_s``), never stored apart from them
in this type, so they cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from latbench.fingerprint import Fingerprint
from latbench.specs import Spec
from latbench.target import Target


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default) of already sorted values."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    pos = (len(sorted_values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def interquartile_mean(times_s: Sequence[float]) -> float:
    """The mean of the samples between the 25th and 75th percentiles (a 25% trimmed mean)."""
    values = sorted(times_s)
    lo, hi = quantile(values, 0.25), quantile(values, 0.75)
    middle = [v for v in values if lo <= v <= hi]
    return sum(middle) / len(middle)


#: Ways to summarise a spec's samples in one figure, computed from the stored raw samples.
#: ``latbench stability`` compares how well each reproduces between passes.
ESTIMATORS: dict[str, Callable[[Sequence[float]], float]] = {
    "median": lambda t: quantile(sorted(t), 0.5),
    "min": min,
    "p10": lambda t: quantile(sorted(t), 0.10),
    "interquartile mean": interquartile_mean,
}


#: The figure of a spec's samples that is its latency: what predictors fit, evaluation
#: scores, the search's measurements report, and the noise floor compares. Computed from the
#: raw samples, so databases written before it was chosen give it too; the median and the
#: tails stay stored and shown beside it. Chosen by data (benchmarks/estimator_bench.py, 11
#: passes of the quick plan over 60 min on a 2-core VM): for pairs of passes 30+ min apart
#: the minimum agreed within ±10% for 86% of specs, the median for 65%.
LATENCY_FIGURE = "min"


@dataclass(frozen=True)
class Stats:
    """Robust summary of per-inference latency samples, in seconds.

    A sample is the mean of ``iterations_per_sample`` back-to-back inferences (calibrated
    so a sample lasts >= 2 ms). For specs slower than that, one inference per sample, and
    p90/p99 are true per-inference tails; for faster ones they are tails of short-window
    means, which hide single-inference spikes shorter than the window.
    """

    n: int
    median_s: float
    p10_s: float
    p90_s: float
    p99_s: float
    iqr_s: float
    min_s: float
    mean_s: float

    @classmethod
    def of(cls, times_s: Sequence[float]) -> Stats:
        values = sorted(times_s)
        return cls(
            n=len(values),
            median_s=quantile(values, 0.5),
            p10_s=quantile(values, 0.10),
            p90_s=quantile(values, 0.90),
            p99_s=quantile(values, 0.99),
            iqr_s=quantile(values, 0.75) - quantile(values, 0.25),
            min_s=values[0],
            mean_s=sum(values) / len(values),
        )

    def summary_ms(self) -> dict[str, float | int]:
        """The figures a command prints as JSON: minimum (the latency figure), median and
        tails in milliseconds, and the sample count."""
        return {
            "min_ms": self.min_s * 1e3,
            "median_ms": self.median_s * 1e3,
            "p90_ms": self.p90_s * 1e3,
            "p99_ms": self.p99_s * 1e3,
            "iqr_ms": self.iqr_s * 1e3,
            "samples": self.n,
        }

    @property
    def iqr_ratio(self) -> float:
        """IQR / median: the protocol's (outlier-robust) stability measure."""
        return self.iqr_s / self.median_s if self.median_s > 0 else math.inf


@dataclass(frozen=True)
class KernelTime:
    """Time one kind of kernel takes per inference of a block, from a backend profiler.

    ``op_type`` is the backend's kernel name (ONNX Runtime: ``SkipLayerNormalization``,
    ``FusedMatMul``, ``MatMul``...), ``count`` how many such kernels one inference runs.
    """

    op_type: str
    count: int
    time_s: float


@dataclass(frozen=True)
class Measurement:
    """One spec timed on one target.

    ``extras`` holds figures a backend reports about the program it ran, as sorted
    ``(name, value)`` pairs whose names carry their unit (XLA's compiled cost analysis:
    ``xla_flops``, ``xla_bytes_accessed``, ``xla_compile_s``...); a mapping is accepted
    and sorted. Empty for backends that report none, and for rows stored before it existed.
    """

    spec: Spec
    target: Target
    fingerprint: Fingerprint
    times_s: tuple[float, ...]
    iterations_per_sample: int
    rounds: int
    stable: bool
    build_time_s: float
    measured_at: str
    kernels: tuple[KernelTime, ...] = ()
    worker: str = ""
    extras: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if not self.times_s:
            raise ValueError("a measurement needs at least one sample")
        extras = self.extras
        pairs = extras.items() if isinstance(extras, Mapping) else extras
        object.__setattr__(self, "extras", tuple(sorted((str(k), float(v)) for k, v in pairs)))

    def extra(self, name: str) -> float | None:
        """The backend figure ``name`` (see ``extras``), or None when it was not reported."""
        return dict(self.extras).get(name)

    @cached_property
    def stats(self) -> Stats:
        """Summary of ``times_s``, computed once (the samples are immutable)."""
        return Stats.of(self.times_s)

    @property
    def median_s(self) -> float:
        return self.stats.median_s

    def figure_s(self, name: str) -> float:
        """The figure ``name`` of ``ESTIMATORS`` of this measurement's samples."""
        try:
            estimate = ESTIMATORS[name]
        except KeyError:
            raise ValueError(f"unknown latency figure {name!r}; known: {', '.join(ESTIMATORS)}") from None
        return estimate(self.times_s)

    @cached_property
    def latency_s(self) -> float:
        """The spec's latency: ``LATENCY_FIGURE`` of its samples."""
        return self.figure_s(LATENCY_FIGURE)

    @property
    def latency_ms(self) -> float:
        return self.latency_s * 1e3
