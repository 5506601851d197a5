"""What every latency predictor is: a scikit-learn estimator over encoders.

Conventions (scikit-learn's, checked by ``latbench.predictors.testing.PredictorContract``,
which tests/predictors runs over every registered predictor):
``__init__`` only stores its arguments; ``fit(X, y, table=None)`` learns from encoders
``X`` (a sequence of ``latbench.specs.EncoderSpec`` or an ``EncoderBatch``) with
measured latencies ``y`` in seconds, plus a ``LatencyTable`` of measured blocks and
operators for the table-based ones, and returns ``self``; everything learned ends in
``_``; ``predict(X)`` returns seconds and raises ``NotFittedError`` before ``fit``.
``get_state``/``set_state`` carry the learned state to and from JSON
(``latbench.predictors.io``): never pickle.

Every predictor fitted on at least ``MIN_INTERVAL_ENCODERS`` encoders also gives a 90%
prediction interval: the fit is repeated on ``k`` folds of the training encoders, the
log-ratios measured/predicted of the left-out encoders are collected, and their
finite-sample conformal quantiles become the interval's bounds (split-conformal
prediction, with cross-fitting so no encoder is wasted). A predictor with its own notion
of uncertainty (the XGBoost quantile model) overrides ``_fit_interval``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from latbench.predictors.batch import EncoderBatch
from latbench.predictors.table import ExtrapolationError, LatencyTable
from latbench.specs import EncoderSpec

ON_EXTRAPOLATION = ("warn", "raise", "ignore")
INTERVAL_COVERAGE = 0.9
MIN_INTERVAL_ENCODERS = 8
INTERVAL_FOLDS = 5


class ExtrapolationWarning(UserWarning):
    """A prediction for a shape far outside the measured table."""


@dataclass(frozen=True, eq=False)
class Prediction:
    """Predicted latencies (seconds), their interval and what lay outside the table.

    ``low_s``/``high_s`` bound a ``INTERVAL_COVERAGE`` prediction interval (None when the
    predictor has none); ``outside_bits[i]`` has bit ``j`` set when encoder ``i`` needed
    dimension ``outside_names[j]`` beyond the measured range.
    """

    latency_s: np.ndarray
    low_s: np.ndarray | None = None
    high_s: np.ndarray | None = None
    outside_bits: np.ndarray | None = None
    outside_names: tuple[str, ...] = ()

    @property
    def extrapolated(self) -> np.ndarray:
        if self.outside_bits is None:
            return np.zeros(len(self.latency_s), dtype=bool)
        return self.outside_bits != 0

    @property
    def outside(self) -> tuple[tuple[str, ...], ...]:
        """Per encoder, the dimensions outside the table (empty when inside)."""
        if self.outside_bits is None:
            return tuple(() for _ in self.latency_s)
        out = []
        for value in self.outside_bits:
            bits, names = int(value), []
            while bits:  # only the set bits: most encoders have none
                j = bits.bit_length() - 1
                names.append(self.outside_names[j])
                bits ^= 1 << j
            out.append(tuple(reversed(names)))
        return tuple(out)


class OutsideFlags:
    """Collects named dimensions into bit masks while a prediction is computed."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def bits(self, names: Sequence[str]) -> int:
        mask = 0
        for name in names:
            if name not in self.names:
                if len(self.names) == 63:
                    raise ValueError("too many distinct out-of-range dimensions to flag")
                self.names.append(name)
            mask |= 1 << self.names.index(name)
        return mask


def as_batch(X: Any) -> EncoderBatch:
    if isinstance(X, EncoderBatch):
        return X
    if isinstance(X, (str, bytes)) or not isinstance(X, Sequence):
        raise TypeError(
            f"X must be a sequence of latbench EncoderSpecs or an EncoderBatch, got {type(X).__name__}"
        )
    for i, spec in enumerate(X):
        if not isinstance(spec, EncoderSpec):
            raise TypeError(f"X[{i}] is a {type(spec).__name__}; predictors take latbench EncoderSpecs")
    return EncoderBatch.from_specs(X)


def check_targets(y: Any, n: int) -> np.ndarray:
    values = np.asarray(y, dtype=float)
    if values.shape != (n,):
        raise ValueError(f"y must hold one latency per encoder ({n}), got shape {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError("latencies in y must be finite and positive (seconds)")
    return values


def take(batch: EncoderBatch, index: np.ndarray) -> EncoderBatch:
    """The encoders of ``batch`` at ``index``."""
    return EncoderBatch(
        batch.hidden[index],
        batch.heads[index],
        batch.ffn[index],
        batch.batch[index],
        batch.seq_len[index],
        batch.vocab_size[index],
        batch.precision,
        batch.head_size[index],
    )


class LatencyPredictor(BaseEstimator):
    """Base of every predictor; subclasses implement ``_fit`` and ``_predict``."""

    name: str = ""

    def fit(self, X: Any, y: Any, table: LatencyTable | None = None) -> LatencyPredictor:
        batch = as_batch(X)
        y = check_targets(y, len(batch))
        self._check_params()
        self._fit(batch, y, table)
        self.n_train_ = len(batch)
        self.interval_log_ = self._fit_interval(batch, y, table)
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_detail(X).latency_s

    def predict_detail(self, X: Any) -> Prediction:
        check_is_fitted(self, "n_train_")
        batch = as_batch(X)
        prediction = self._predict(batch)
        if prediction.low_s is None and self.interval_log_ is not None:
            low, high = self.interval_log_
            prediction = Prediction(
                prediction.latency_s,
                prediction.latency_s * math.exp(low),
                prediction.latency_s * math.exp(high),
                prediction.outside_bits,
                prediction.outside_names,
            )
        mode = getattr(self, "on_extrapolation", "ignore")
        flagged = np.flatnonzero(prediction.extrapolated)
        if flagged.size and mode != "ignore":
            first = int(flagged[0])
            dims = prediction.outside[first] if len(batch) < 10_000 else ()
            where = f" (e.g. encoder {first}: {', '.join(dims)} beyond the measured range)" if dims else ""
            message = (
                f"{flagged.size} of {len(batch)} encoders lie outside the measured table{where}; "
                "profile those shapes"
            )
            if mode == "raise":
                raise ExtrapolationError(message)
            warnings.warn(message, ExtrapolationWarning, stacklevel=2)
        return prediction

    def _check_params(self) -> None:
        mode = getattr(self, "on_extrapolation", "ignore")
        if mode not in ON_EXTRAPOLATION:
            raise ValueError(f"on_extrapolation must be one of {', '.join(ON_EXTRAPOLATION)}, got {mode!r}")

    # --- the interval ----------------------------------------------------------------
    def _fit_interval(
        self, batch: EncoderBatch, y: np.ndarray, table: LatencyTable | None
    ) -> tuple[float, float] | None:
        """Conformal bounds on log(measured / predicted) from cross-fitted residuals."""
        if len(y) < MIN_INTERVAL_ENCODERS:
            return None
        residuals = np.empty(len(y))
        for held, prediction in self._cross_fitted(batch, y, table):
            residuals[held] = np.log(y[held]) - np.log(np.maximum(prediction.latency_s, 1e-12))
        return conformal_bounds(residuals, INTERVAL_COVERAGE)

    def _cross_fitted(
        self, batch: EncoderBatch, y: np.ndarray, table: LatencyTable | None
    ) -> Iterator[tuple[np.ndarray, Prediction]]:
        """For each of ``INTERVAL_FOLDS`` seeded folds: the held-out mask and the
        prediction for those encoders of a clone fitted on the others."""
        folds = np.arange(len(y)) % INTERVAL_FOLDS
        np.random.default_rng(0).shuffle(folds)
        for k in range(INTERVAL_FOLDS):
            held = folds == k
            model = clone(self)
            model._fit(take(batch, ~held), y[~held], table)
            yield held, model._predict(take(batch, held))

    # --- subclass hooks --------------------------------------------------------------
    def _fit(self, batch: EncoderBatch, y: np.ndarray, table: LatencyTable | None) -> None:
        raise NotImplementedError

    def _predict(self, batch: EncoderBatch) -> Prediction:
        raise NotImplementedError

    def get_state(self) -> dict[str, Any]:
        """Learned state as JSON-able values (see latbench.predictors.io)."""
        check_is_fitted(self, "n_train_")
        interval = list(self.interval_log_) if self.interval_log_ is not None else None
        return {"n_train_": self.n_train_, "interval_log_": interval}

    def set_state(self, state: dict[str, Any]) -> LatencyPredictor:
        self.n_train_ = int(state["n_train_"])
        interval = state.get("interval_log_")
        self.interval_log_ = (float(interval[0]), float(interval[1])) if interval else None
        return self


def conformal_bounds(residuals: np.ndarray, coverage: float) -> tuple[float, float]:
    """Two-sided split-conformal bounds: the ``ceil((n+1)(1-a/2))``-th smallest residual
    above and its mirror below, so the interval covers at least ``coverage`` of new
    encoders exchangeable with the training ones."""
    r = np.sort(np.asarray(residuals, dtype=float))
    n = len(r)
    alpha = 1.0 - coverage
    rank = min(n, math.ceil((n + 1) * (1 - alpha / 2)))
    return float(min(0.0, r[n - rank])), float(max(0.0, r[rank - 1]))


def fit_affine_relative(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``scale, offset`` minimising the squared *relative* error of ``scale * raw + offset``.

    The offset is the fixed per-inference cost a sum of parts misses (session overhead,
    the glue between layers); relative error, because a 1 ms miss matters on a 5 ms
    model and not on a 500 ms one. With fewer than 3 encoders only a scale is fitted;
    with none, the sum is taken as it is. The offset is never negative: where the best
    one is (the parts overcount a per-call cost, or noise), only a scale is fitted, since
    subtracting a constant sends the smallest models' predictions to zero and below.
    """
    if len(y) == 0:
        return 1.0, 0.0
    w = 1.0 / y
    if len(y) >= 3:
        A = np.stack([raw * w, w], axis=1)
        (scale, offset), *_ = np.linalg.lstsq(A, np.ones_like(y), rcond=None)
        if offset >= 0:
            return float(scale), float(offset)
    scale = float((w * w * raw * y).sum() / (w * w * raw * raw).sum())
    return scale, 0.0
