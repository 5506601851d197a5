"""Lookup-table predictors and the FLOPs-proportional baseline.

* ``LutBlockPredictor`` (``lut-block``): embedding + one encoder-layer entry per layer
  (blocks measured in model context by default), then ``scale * sum + overhead`` fitted
  on the training encoders.
* ``LutOpPredictor`` (``lut-op``): embedding + every operator of every layer, with the
  same calibration; it needs no block measurements but misses the glue between
  operators, which the calibration absorbs.
* ``FlopsPredictor`` (``flops``): ``a * FLOPs + b``: the baseline every figure is
  compared with.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from latbench.arch import LayerShape, Workload
from latbench.predictors.base import LatencyPredictor, OutsideFlags, Prediction, fit_affine_relative
from latbench.predictors.batch import EncoderBatch
from latbench.predictors.table import LatencyTable, LogLogInterpolator, block_features, op_features
from latbench.specs import BlockSpec, OpSpec, block_flops, layer_ops


class _TablePredictor(LatencyPredictor):
    """Sums table entries over each encoder's parts, then ``scale * sum + overhead``.

    Predictions run on unique parts: a population of encoders that shares a few dozen
    layer shapes costs a few dozen table queries, then array gathers and sums.
    """

    def __init__(self, on_extrapolation: str = "warn") -> None:
        self.on_extrapolation = on_extrapolation

    def _fit(self, batch: EncoderBatch, y: np.ndarray, table: LatencyTable | None) -> None:
        if table is None:
            raise ValueError(
                f"{self.name} needs a LatencyTable of measured blocks/operators: fit(X, y, table=...)"
            )
        self.table_ = table
        self._build()
        raw = self.raw_sum(batch)[0]
        self.scale_, self.overhead_s_ = fit_affine_relative(raw, y)

    def _predict(self, batch: EncoderBatch) -> Prediction:
        return self.predict_with_raw(batch)[0]

    def predict_with_raw(self, batch: EncoderBatch) -> tuple[Prediction, np.ndarray]:
        """The calibrated prediction and the raw sum it came from (a feature for xgboost)."""
        raw, bits, names = self.raw_sum(batch)
        latency = np.maximum(self.scale_ * raw + self.overhead_s_, 0.0)
        return Prediction(latency, outside_bits=bits, outside_names=names), raw

    def raw_sum(self, batch: EncoderBatch) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """Uncalibrated sum of table entries per encoder (seconds), with outside flags."""
        flags = OutsideFlags()
        rows, index = batch.unique_embeddings()
        emb_t, emb_bits = self._unique_values(
            [
                OpSpec("embedding", Workload(int(b), int(s), batch.precision), int(h), vocab_size=int(v))
                for h, b, s, v in rows
            ],
            flags,
        )
        rows, layer_index = batch.unique_layers()
        layer_t, layer_bits = self._unique_values(
            [
                (LayerShape(int(h), int(a), int(f), int(d)), Workload(int(b), int(s), batch.precision))
                for h, a, f, b, s, d in rows
            ],
            flags,
        )
        total = emb_t[index]
        bits = emb_bits[index]
        if len(layer_t):
            padded = layer_index < 0
            slot = np.where(padded, 0, layer_index)
            total = total + np.where(padded, 0.0, layer_t[slot]).sum(axis=1)
            bits = bits | np.bitwise_or.reduce(np.where(padded, 0, layer_bits[slot]), axis=1)
        return total, bits, tuple(flags.names)

    def _unique_values(self, parts: list, flags: OutsideFlags) -> tuple[np.ndarray, np.ndarray]:
        values = np.empty(len(parts))
        bits = np.zeros(len(parts), dtype=np.int64)
        for i, part in enumerate(parts):
            if isinstance(part, OpSpec):
                t, outside = self._op(part)
            else:
                t, outside = self._layer(*part)
            values[i] = t
            bits[i] = flags.bits(outside)
        return values, bits

    def _op(self, op: OpSpec) -> tuple[float, tuple[str, ...]]:
        table = self.op_tables_.get(op.op)
        if table is None:
            raise ValueError(f"the lookup table has no {op.op} measurements; profile a plan with operators")
        q = table.query(op_features(op), math.log(op.flops))
        return math.exp(q.log_time), tuple(f"{op.op}.{d}" for d in q.outside)

    def _build(self) -> None:
        self.op_tables_: dict[str, LogLogInterpolator] = self.table_.op_interpolators()

    def _layer(self, layer: LayerShape, workload: Workload) -> tuple[float, tuple[str, ...]]:
        raise NotImplementedError

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "scale_": self.scale_,
            "overhead_s_": self.overhead_s_,
            "table_": self.table_.to_dict(),
        }

    def set_state(self, state: dict[str, Any]) -> LatencyPredictor:
        super().set_state(state)
        self.scale_, self.overhead_s_ = float(state["scale_"]), float(state["overhead_s_"])
        self.table_ = LatencyTable.from_dict(state["table_"])
        self._build()
        return self


class LutBlockPredictor(_TablePredictor):
    """Embedding + per-layer block entries, calibrated: ``scale * sum + overhead``."""

    name = "lut-block"

    def __init__(self, context: str = "model", on_extrapolation: str = "warn") -> None:
        self.context = context
        self.on_extrapolation = on_extrapolation

    def _check_params(self) -> None:
        super()._check_params()
        if self.context not in ("model", "isolated"):
            raise ValueError(f"context must be 'model' or 'isolated', got {self.context!r}")

    def _build(self) -> None:
        super()._build()
        blocks = self.table_.block_interpolator(self.context)
        if blocks is None:
            raise ValueError(f"the lookup table has no {self.context}-context block measurements")
        self.block_table_ = blocks

    def _layer(self, layer: LayerShape, workload: Workload) -> tuple[float, tuple[str, ...]]:
        block = BlockSpec(layer, workload, self.context)
        q = self.block_table_.query(block_features(block), math.log(block_flops(block)))
        return math.exp(q.log_time), tuple(f"block.{d}" for d in q.outside)


class LutOpPredictor(_TablePredictor):
    """Embedding + every operator of every layer, calibrated: ``scale * sum + overhead``."""

    name = "lut-op"

    def _layer(self, layer: LayerShape, workload: Workload) -> tuple[float, tuple[str, ...]]:
        total, flags = 0.0, set()
        for op, count in layer_ops(layer, workload):
            t, outside = self._op(op)
            total += count * t
            flags.update(outside)
        return total, tuple(sorted(flags))


class FlopsPredictor(LatencyPredictor):
    """Baseline: latency proportional to FLOPs, plus a constant (fitted on encoders)."""

    name = "flops"

    def _fit(self, batch: EncoderBatch, y: np.ndarray, table: LatencyTable | None) -> None:
        if len(batch) == 0:
            raise ValueError("the FLOPs baseline needs at least one measured encoder")
        self.seconds_per_flop_, self.overhead_s_ = fit_affine_relative(batch.matmul_flops(), y)

    def _predict(self, batch: EncoderBatch) -> Prediction:
        latency = np.maximum(self.seconds_per_flop_ * batch.matmul_flops() + self.overhead_s_, 0.0)
        return Prediction(latency)

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "seconds_per_flop_": self.seconds_per_flop_,
            "overhead_s_": self.overhead_s_,
        }

    def set_state(self, state: dict[str, Any]) -> LatencyPredictor:
        super().set_state(state)
        self.seconds_per_flop_, self.overhead_s_ = (
            float(state["seconds_per_flop_"]),
            float(state["overhead_s_"]),
        )
        return self
