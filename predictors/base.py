"""What every latency predictor is: a scikit-learn estimator over encoder specs.

Conventions (scikit-learn's, checked for every predictor in tests/predictors):
``__init__`` only stores its arguments; ``fit(X, y, table=None)`` learns from encoders
``X`` (a sequence of ``latbench.specs.EncoderSpec``) with measured latencies ``y`` in
seconds, plus a ``LatencyTable`` of measured blocks/operators for the table-based ones,
and returns ``self``; everything learned ends in ``_``; ``predict(X)`` returns seconds and
raises ``NotFittedError`` before ``fit``. ``get_state``/``set_state`` carry the learned
state to and from JSON (``predictors.io``): never pickle.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from latbench.specs import EncoderSpec
from predictors.table import ExtrapolationError, LatencyTable

ON_EXTRAPOLATION = ("warn", "raise", "ignore")


class ExtrapolationWarning(UserWarning):
    """A prediction for a shape far outside the measured table."""


@dataclass(frozen=True)
class Prediction:
    """Predicted latencies (seconds) and, per encoder, what lay outside the table."""

    latency_s: np.ndarray
    outside: tuple[tuple[str, ...], ...]

    @property
    def extrapolated(self) -> np.ndarray:
        return np.array([bool(o) for o in self.outside])


def check_specs(X: Sequence[EncoderSpec]) -> list[EncoderSpec]:
    specs = list(X)
    for i, spec in enumerate(specs):
        if not isinstance(spec, EncoderSpec):
            raise TypeError(f"X[{i}] is a {type(spec).__name__}; predictors take latbench EncoderSpecs")
    return specs


def check_targets(y: Any, n: int) -> np.ndarray:
    values = np.asarray(y, dtype=float)
    if values.shape != (n,):
        raise ValueError(f"y must hold one latency per encoder ({n}), got shape {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError("latencies in y must be finite and positive (seconds)")
    return values


class LatencyPredictor(BaseEstimator):
    """Base of every predictor; subclasses implement ``_fit`` and ``_predict``."""

    name: str = ""

    def fit(self, X: Sequence[EncoderSpec], y: Any, table: LatencyTable | None = None) -> LatencyPredictor:
        specs = check_specs(X)
        self._check_params()
        self._fit(specs, check_targets(y, len(specs)), table)
        self.n_train_ = len(specs)
        return self

    def predict(self, X: Sequence[EncoderSpec]) -> np.ndarray:
        return self.predict_detail(X).latency_s

    def predict_detail(self, X: Sequence[EncoderSpec]) -> Prediction:
        check_is_fitted(self, "n_train_")
        specs = check_specs(X)
        prediction = self._predict(specs)
        flagged = [(s, o) for s, o in zip(specs, prediction.outside, strict=True) if o]
        mode = getattr(self, "on_extrapolation", "ignore")
        if flagged and mode != "ignore":
            spec, dims = flagged[0]
            message = (
                f"{len(flagged)} of {len(specs)} encoders lie outside the measured table "
                f"(e.g. {spec.label}: {', '.join(dims)} beyond the measured range); profile those shapes"
            )
            if mode == "raise":
                raise ExtrapolationError(message)
            warnings.warn(message, ExtrapolationWarning, stacklevel=2)
        return prediction

    def _check_params(self) -> None:
        mode = getattr(self, "on_extrapolation", "ignore")
        if mode not in ON_EXTRAPOLATION:
            raise ValueError(f"on_extrapolation must be one of {', '.join(ON_EXTRAPOLATION)}, got {mode!r}")

    # --- subclass hooks --------------------------------------------------------------
    def _fit(self, specs: list[EncoderSpec], y: np.ndarray, table: LatencyTable | None) -> None:
        raise NotImplementedError

    def _predict(self, specs: list[EncoderSpec]) -> Prediction:
        raise NotImplementedError

    def get_state(self) -> dict[str, Any]:
        """Learned state as JSON-able values (see predictors.io)."""
        check_is_fitted(self, "n_train_")
        return {"n_train_": self.n_train_}

    def set_state(self, state: dict[str, Any]) -> LatencyPredictor:
        self.n_train_ = int(state["n_train_"])
        return self


def fit_affine_relative(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``scale, offset`` minimising the squared *relative* error of ``scale * raw + offset``.

    The offset is the fixed per-inference cost a sum of parts misses (session overhead,
    the glue between layers); relative error, because a 1 ms miss matters on a 5 ms
    model and not on a 500 ms one. With fewer than 3 encoders only a scale is fitted;
    with none, the sum is taken as it is.
    """
    if len(y) == 0:
        return 1.0, 0.0
    w = 1.0 / y
    if len(y) < 3:
        scale = float((w * w * raw * y).sum() / (w * w * raw * raw).sum())
        return scale, 0.0
    A = np.stack([raw * w, w], axis=1)
    (scale, offset), *_ = np.linalg.lstsq(A, np.ones_like(y), rcond=None)
    return float(scale), float(offset)
