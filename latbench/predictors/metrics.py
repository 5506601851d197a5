"""How good is a latency prediction? Accuracy of predicted against measured latencies, and
the noise floor that bounds it.

A latency predictor is only useful to the search (``search/``) if its errors are small
*relative to the latency itself* and if it ranks candidates the way the hardware does, so
every figure here is relative (a 1 ms error on a 2 ms block is a disaster, on a 200 ms model
it is noise) and Kendall τ is reported next to the error figures.

No accuracy figure means anything without the noise floor beside it: if two independent
measurements of the same specs disagree by 3%, no predictor can honestly be credited with
better than that, and a predictor that "beats" it is fitting noise. ``noise_floor`` computes
that bound from two measurement runs of the same specs (see DESIGN.md, Measurement protocol).

All inputs are latencies in seconds; only the ratio matters, so any consistent unit works.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

__all__ = [
    "BOUNDARY_TOLERANCE",
    "Accuracy",
    "NoiseFloor",
    "accuracy",
    "kendall_tau",
    "noise_floor",
]

# A prediction exactly on a ±5% / ±10% boundary counts as within it. Floating point would
# otherwise decide that by accident: 1.1 * 3 / 3 - 1 == 0.10000000000000009, so a prediction
# that is exactly 10% high would be counted as outside ±10%. The relative error is compared
# with ``limit + BOUNDARY_TOLERANCE``. 1e-9 is far below anything a latency measurement can
# resolve (run-to-run noise is 1e-3 at best), so it only absorbs rounding, never a real error.
BOUNDARY_TOLERANCE = 1e-9


def _within(relative_error: np.ndarray, limit: float) -> float:
    """Share of ``|relative_error| <= limit`` (boundary included, up to BOUNDARY_TOLERANCE)."""
    return float(np.mean(np.abs(relative_error) <= limit + BOUNDARY_TOLERANCE))


def _as_latencies(values: ArrayLike, name: str) -> np.ndarray:
    """``values`` as a 1-D float array of finite numbers, or a ValueError naming ``name``."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of latencies in seconds: {exc}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of latencies in seconds, got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(
            f"{name} must be finite, but index {bad[0]} is {float(array[bad[0]])} "
            f"({bad.size} non-finite value(s)); drop or re-measure those specs"
        )
    return array


def _paired(
    first: ArrayLike, second: ArrayLike, first_name: str, second_name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Two validated, equally long, non-empty latency arrays."""
    a = _as_latencies(first, first_name)
    b = _as_latencies(second, second_name)
    if a.size != b.size:
        raise ValueError(
            f"{first_name} and {second_name} must pair up one to one, but have {a.size} and {b.size} elements"
        )
    if a.size == 0:
        raise ValueError(f"{first_name} and {second_name} are empty: need at least one latency pair")
    return a, b


def _require_positive(values: np.ndarray, name: str) -> None:
    """Relative errors divide by these values, so each must be > 0."""
    bad = np.flatnonzero(values <= 0)
    if bad.size:
        raise ValueError(
            f"{name} must be > 0 seconds (relative errors divide by it), but index {bad[0]} is "
            f"{float(values[bad[0]])} ({bad.size} such value(s))"
        )


def _signed_pct(value: float) -> str:
    """``+1.0%`` / ``-0.3%``; a value that rounds to zero prints as ``+0.0%``, never ``-0.0%``."""
    return f"{round(value, 1) + 0.0:+.1f}%"


def kendall_tau(a: ArrayLike, b: ArrayLike) -> float:
    """Kendall's τ-b between ``a`` and ``b``: does the predictor rank candidates like the hardware?

    A search only compares candidates, so a predictor with a constant 20% bias but perfect
    ranking still steers it correctly; τ measures exactly that. τ-b handles ties.

    Returns ``nan`` -- without a warning -- when τ is undefined: fewer than two pairs, or either
    side constant (no ranking to agree with). scipy would warn in those cases, and a warning
    here would be noise in every report of a tiny or degenerate evaluation set.
    """
    x, y = _as_latencies(a, "a"), _as_latencies(b, "b")
    if x.size != y.size:
        raise ValueError(f"a and b must pair up one to one, but have {x.size} and {y.size} elements")
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    return float(stats.kendalltau(x, y).statistic)


@dataclass(frozen=True)
class Accuracy:
    """Accuracy of predicted against measured latencies (both in seconds).

    Relative errors are ``pred / meas - 1``: positive when the predictor is too slow
    (pessimistic), negative when it is too fast (optimistic).
    """

    n: int
    #: Share (0..1) with ``|pred/meas - 1| <= 0.05``: nn-Meter's definition of ±5% accuracy.
    within_5pct: float
    #: Share (0..1) with ``|pred/meas - 1| <= 0.10``: nn-Meter's headline metric, so our numbers
    #: compare directly with the published ones.
    within_10pct: float
    #: Mean ``|pred - meas| / meas * 100``: the typical error, in percent.
    mape_pct: float
    #: ``sqrt(mean(((pred - meas) / meas)^2)) * 100``: like MAPE but punishes the large misses
    #: that make a search pick a wrong candidate.
    rmspe_pct: float
    #: Kendall τ-b between predicted and measured (``nan`` when n < 2 or either side constant).
    kendall_tau: float
    #: 95th percentile of ``|pred/meas - 1| * 100``: the error the worst candidates see; a mean
    #: hides a predictor that is good on average and badly off on one region of the space.
    p95_error_pct: float
    #: Share (0..1) with ``pred < meas``. A search that trusts an under-predicting model picks
    #: students that miss their latency budget once deployed, so this is worse than over-predicting.
    under_prediction_rate: float
    #: Median signed ``(pred/meas - 1) * 100``: the bias, robust to a few outliers.
    median_error_pct: float

    def to_dict(self) -> dict[str, float]:
        """Field name -> value, in declaration order (for JSON reports and result tables)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def format(self) -> str:
        """One human line, e.g. ``n=40 ±5%: 82.5% ±10%: 97.5% MAPE 3.1% RMSPE 4.0% τ 0.981
        p95 8.2% under 45.0% bias -0.3%``."""
        return (
            f"n={self.n} ±5%: {self.within_5pct * 100:.1f}% ±10%: {self.within_10pct * 100:.1f}% "
            f"MAPE {self.mape_pct:.1f}% RMSPE {self.rmspe_pct:.1f}% τ {self.kendall_tau:.3f} "
            f"p95 {self.p95_error_pct:.1f}% under {self.under_prediction_rate * 100:.1f}% "
            f"bias {_signed_pct(self.median_error_pct)}"
        )


def accuracy(predicted_s: ArrayLike, measured_s: ArrayLike) -> Accuracy:
    """Every DESIGN.md evaluation figure for ``predicted_s`` against ``measured_s``, paired by index.

    Raises ValueError, saying which input and index is wrong, unless both are 1-D, equally long,
    non-empty and finite, ``measured_s > 0`` (errors are relative to it) and ``predicted_s >= 0``.
    """
    pred, meas = _paired(predicted_s, measured_s, "predicted_s", "measured_s")
    _require_positive(meas, "measured_s")
    negative = np.flatnonzero(pred < 0)
    if negative.size:
        raise ValueError(
            f"predicted_s must be >= 0 seconds, but index {negative[0]} is {float(pred[negative[0]])} "
            f"({negative.size} negative value(s)); is the predictor extrapolating?"
        )

    relative = (pred - meas) / meas
    abs_relative = np.abs(relative)
    return Accuracy(
        n=int(pred.size),
        within_5pct=_within(relative, 0.05),
        within_10pct=_within(relative, 0.10),
        mape_pct=float(np.mean(abs_relative) * 100),
        rmspe_pct=float(np.sqrt(np.mean(relative**2)) * 100),
        kendall_tau=kendall_tau(pred, meas),
        p95_error_pct=float(np.percentile(abs_relative, 95) * 100),
        under_prediction_rate=float(np.mean(pred < meas)),
        median_error_pct=float(np.median(relative) * 100),
    )


@dataclass(frozen=True)
class NoiseFloor:
    """How far two independent measurements of the same specs disagree: the best accuracy any
    predictor can be credited with.

    Reported next to every ``Accuracy``: a predictor whose MAPE is close to ``mape_pct`` here
    is as good as the measurements allow; one below it is fitting noise.
    """

    n: int
    #: Median of ``|a - b| / ((a + b) / 2) * 100``: symmetric, so neither run is "the truth".
    median_pct: float
    #: 90th percentile of the same symmetric difference: how bad the noisy specs are.
    p90_pct: float
    #: Mean of ``|a/b - 1|`` and ``|b/a - 1|`` over both directions, * 100: the MAPE a perfect
    #: predictor trained on one run would get against the other.
    mape_pct: float
    #: Share (0..1) with ``|a/b - 1| <= 0.10``, averaged over both directions: the ±10% score
    #: of that perfect predictor, to set beside ``Accuracy.within_10pct``.
    within_10pct: float

    def to_dict(self) -> dict[str, float]:
        """Field name -> value, in declaration order (for JSON reports and result tables)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def format(self) -> str:
        """One human line, e.g. ``noise floor n=40 median 0.8% p90 2.1% MAPE 1.0% ±10%: 100.0%``."""
        return (
            f"noise floor n={self.n} median {self.median_pct:.1f}% p90 {self.p90_pct:.1f}% "
            f"MAPE {self.mape_pct:.1f}% ±10%: {self.within_10pct * 100:.1f}%"
        )


def noise_floor(first_s: ArrayLike, second_s: ArrayLike) -> NoiseFloor:
    """The noise floor from two independent measurement runs of the same specs, paired by index.

    Raises ValueError unless both are 1-D, equally long, non-empty, finite and > 0 (each side
    is divided by the other).
    """
    a, b = _paired(first_s, second_s, "first_s", "second_s")
    _require_positive(a, "first_s")
    _require_positive(b, "second_s")

    symmetric_pct = np.abs(a - b) / ((a + b) / 2) * 100
    # Both directions: a predictor equal to run a scored against run b, and vice versa.
    both_directions = np.concatenate([a / b - 1, b / a - 1])
    return NoiseFloor(
        n=int(a.size),
        median_pct=float(np.median(symmetric_pct)),
        p90_pct=float(np.percentile(symmetric_pct, 90)),
        mape_pct=float(np.mean(np.abs(both_directions)) * 100),
        within_10pct=_within(both_directions, 0.10),
    )
