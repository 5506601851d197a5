"""XGBoost on top of the lookup table: learns what the sum of parts misses, with an interval.

The model predicts ``log(latency)`` as ``log(base) + r``, where ``base`` is the
calibrated lookup-table prediction (``lut-block`` when the table has blocks, ``lut-op``
when it has only operators, the FLOPs baseline without a table) and ``r`` is learned by
gradient-boosted trees from:

* per-layer features, one slot per layer position (not averages over layers): each
  layer's log FLOPs, log bytes moved and head count, zero past the encoder's last layer;
* whole-encoder features: layer count, log hidden/batch/sequence, log total FLOPs, log
  bytes moved, arithmetic intensity, the log of the table's raw sum and of the roofline
  time on this machine's spec (``latbench.predictors.roofline``).

Learning the correction rather than the latency keeps what trees cannot do
(extrapolate) with the table, and what tables cannot do (interactions between layers,
cache effects the calibration averages away) with the trees.

The interval comes from the same trees: one booster fits the 5%, 50% and 95% quantiles
of ``r`` (``reg:quantileerror``), and conformalised quantile regression (Romano et al.,
2019) widens them by the quantile of cross-fitted out-of-fold scores, so the 90%
interval holds on new encoders, not only on the training ones. The booster is saved in
XGBoost's own JSON model format inside the predictor file.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from latbench.predictors.base import (
    INTERVAL_COVERAGE,
    MIN_INTERVAL_ENCODERS,
    LatencyPredictor,
    Prediction,
    conformal_bounds,
)
from latbench.predictors.batch import EncoderBatch
from latbench.predictors.lut import FlopsPredictor, LutBlockPredictor, LutOpPredictor, _TablePredictor
from latbench.predictors.table import LatencyTable

QUANTILES = (0.05, 0.5, 0.95)
MIN_SLOTS = 12


class XGBoostPredictor(LatencyPredictor):
    name = "xgboost"

    def __init__(
        self,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        max_depth: int = 3,
        roofline_device: str = "auto",
        on_extrapolation: str = "warn",
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.roofline_device = roofline_device
        self.on_extrapolation = on_extrapolation

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.n_estimators, int) or self.n_estimators < 1:
            raise ValueError(f"n_estimators must be a positive integer, got {self.n_estimators!r}")
        if not 0 < self.learning_rate <= 1:
            raise ValueError(f"learning_rate must be in (0, 1], got {self.learning_rate!r}")
        if not isinstance(self.max_depth, int) or self.max_depth < 1:
            raise ValueError(f"max_depth must be a positive integer, got {self.max_depth!r}")

    # --- fitting ---------------------------------------------------------------------
    def _fit(self, batch: EncoderBatch, y: np.ndarray, table: LatencyTable | None) -> None:
        if len(y) < 2:
            raise ValueError("xgboost needs at least 2 measured encoders")
        self.base_ = _base_for(table).fit(batch, y, table=table)
        self.slots_ = max(MIN_SLOTS, int(batch.num_layers.max()))
        self.device_ = self._device().to_dict()
        base, features, _ = self._features(batch)
        self.booster_ = _train(features, np.log(y) - np.log(base), self._xgb_params(), self.n_estimators)
        self.widen_log_ = 0.0

    def _fit_interval(
        self, batch: EncoderBatch, y: np.ndarray, table: LatencyTable | None
    ) -> tuple[float, float] | None:
        """Conformalised quantile regression: widen the 5-95% band by the conformal
        quantile of out-of-fold scores ``max(low - truth, truth - high)`` (log space)."""
        if len(y) < MIN_INTERVAL_ENCODERS:
            return None
        scores = np.empty(len(y))
        for held, p in self._cross_fitted(batch, y, table):
            truth = np.log(y[held])
            scores[held] = np.maximum(np.log(p.low_s) - truth, truth - np.log(p.high_s))  # type: ignore[arg-type]
        self.widen_log_ = max(0.0, conformal_bounds(scores, 2 * INTERVAL_COVERAGE - 1)[1])
        return None

    # --- prediction ------------------------------------------------------------------
    def _predict(self, batch: EncoderBatch) -> Prediction:
        base, features, base_prediction = self._features(batch)
        q = np.sort(self.booster_.inplace_predict(features).reshape(len(batch), len(QUANTILES)), axis=1)
        median = base * np.exp(q[:, 1])
        low = np.minimum(base * np.exp(q[:, 0] - self.widen_log_), median)
        high = np.maximum(base * np.exp(q[:, 2] + self.widen_log_), median)
        return Prediction(median, low, high, base_prediction.outside_bits, base_prediction.outside_names)

    def _features(self, batch: EncoderBatch) -> tuple[np.ndarray, np.ndarray, Prediction]:
        from latbench.predictors.roofline import DeviceSpec, roofline_seconds

        if isinstance(self.base_, _TablePredictor):
            base_prediction, raw = self.base_.predict_with_raw(batch)
        else:
            base_prediction, raw = self.base_._predict(batch), batch.matmul_flops()
        base = np.maximum(base_prediction.latency_s, 1e-9)
        n, slots = len(batch), self.slots_
        layer_flops, layer_bytes = batch.layer_flops, batch.layer_bytes
        per_layer = np.zeros((n, 3, slots))
        width = min(slots, layer_flops.shape[1])
        per_layer[:, 0, :width] = np.log1p(layer_flops[:, :width])
        per_layer[:, 1, :width] = np.log1p(layer_bytes[:, :width])
        per_layer[:, 2, :width] = batch.heads[:, :width]
        total_flops = layer_flops.sum(axis=1) + batch.embedding_flops()
        total_bytes = layer_bytes.sum(axis=1) + batch.embedding_bytes()
        # one core of the spec: the feature's scale is irrelevant to trees, its shape is not
        roofline = roofline_seconds(batch, DeviceSpec.from_dict(self.device_), 1)
        whole = np.stack(
            [
                batch.num_layers,
                np.log(batch.hidden),
                np.log(batch.batch),
                np.log(batch.seq_len),
                np.log(total_flops),
                np.log(total_bytes),
                total_flops / total_bytes,
                np.log(np.maximum(raw, 1e-12)),
                np.log(roofline),
            ],
            axis=1,
        )
        return base, np.concatenate([whole, per_layer.reshape(n, -1)], axis=1), base_prediction

    def _device(self) -> Any:
        from latbench.predictors.roofline import detect_cpu_spec, device_spec

        return detect_cpu_spec() if self.roofline_device == "auto" else device_spec(self.roofline_device)

    def _xgb_params(self) -> dict[str, Any]:
        return {
            "objective": "reg:quantileerror",
            "quantile_alpha": np.array(QUANTILES),
            "tree_method": "hist",
            "learning_rate": self.learning_rate,
            "max_depth": self.max_depth,
            "min_child_weight": 1.0,
            "nthread": 1,  # deterministic, and leaves the other cores to whatever is being measured
            "seed": 0,
        }

    # --- state -----------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        from latbench.predictors.io import predictor_document

        return {
            **super().get_state(),
            "base_": predictor_document(self.base_),
            "slots_": self.slots_,
            "device_": self.device_,
            "widen_log_": self.widen_log_,
            "booster_": json.loads(bytes(self.booster_.save_raw(raw_format="json"))),
        }

    def set_state(self, state: dict[str, Any]) -> LatencyPredictor:
        import xgboost as xgb

        from latbench.predictors.io import predictor_from_document

        super().set_state(state)
        self.base_ = predictor_from_document(state["base_"])
        self.slots_ = int(state["slots_"])
        self.device_ = dict(state["device_"])
        self.widen_log_ = float(state["widen_log_"])
        booster = xgb.Booster()
        booster.load_model(bytearray(json.dumps(state["booster_"]).encode()))
        booster.set_param({"nthread": 1})
        self.booster_ = booster
        return self


def _base_for(table: LatencyTable | None) -> LatencyPredictor:
    if table is not None and table.block_interpolator("model") is not None and table.ops:
        return LutBlockPredictor(on_extrapolation="ignore")
    if table is not None and table.ops:
        return LutOpPredictor(on_extrapolation="ignore")
    return FlopsPredictor()


def _train(features: np.ndarray, target: np.ndarray, params: dict[str, Any], rounds: int) -> Any:
    import xgboost as xgb

    data = xgb.QuantileDMatrix(features, label=target, nthread=1)
    return xgb.train(params, data, num_boost_round=rounds)


__all__ = ["QUANTILES", "XGBoostPredictor"]
