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

from latbench.specs import BlockSpec, EncoderSpec, OpSpec, block_flops, layer_ops
from predictors.base import LatencyPredictor, Prediction, fit_affine_relative
from predictors.table import LatencyTable, LogLogInterpolator, block_features, op_features


class _TablePredictor(LatencyPredictor):
    def __init__(self, on_extrapolation: str = "warn") -> None:
        self.on_extrapolation = on_extrapolation

    def _fit(self, specs: list[EncoderSpec], y: np.ndarray, table: LatencyTable | None) -> None:
        if table is None:
            raise ValueError(
                f"{self.name} needs a LatencyTable of measured blocks/operators: fit(X, y, table=...)"
            )
        self.table_ = table
        self._build()
        raw = np.array([self._raw(s)[0] for s in specs]) if specs else np.empty(0)
        self.scale_, self.overhead_s_ = fit_affine_relative(raw, y)

    def _predict(self, specs: list[EncoderSpec]) -> Prediction:
        raw, outside = zip(*(self._raw(s) for s in specs), strict=True) if specs else ((), ())
        latency = self.scale_ * np.asarray(raw, dtype=float) + self.overhead_s_
        return Prediction(np.maximum(latency, 0.0), tuple(outside))

    def _embedding(self, spec: EncoderSpec) -> tuple[float, tuple[str, ...]]:
        op = OpSpec("embedding", spec.workload, spec.arch.hidden, vocab_size=spec.arch.vocab_size)
        return self._op(op)

    def _op(self, op: OpSpec) -> tuple[float, tuple[str, ...]]:
        table = self.op_tables_.get(op.op)
        if table is None:
            raise ValueError(f"the lookup table has no {op.op} measurements; profile a plan with operators")
        q = table.query(op_features(op), math.log(op.flops))
        return math.exp(q.log_time), tuple(f"{op.op}.{d}" for d in q.outside)

    def _build(self) -> None:
        self.op_tables_: dict[str, LogLogInterpolator] = self.table_.op_interpolators()

    def _raw(self, spec: EncoderSpec) -> tuple[float, tuple[str, ...]]:
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

    def _raw(self, spec: EncoderSpec) -> tuple[float, tuple[str, ...]]:
        total, outside = self._embedding(spec)
        flags = set(outside)

        for layer in spec.arch.layers:
            block = BlockSpec(layer, spec.workload, self.context)
            q = self.block_table_.query(block_features(block), math.log(block_flops(block)))
            total += math.exp(q.log_time)
            flags.update(f"block.{d}" for d in q.outside)
        return total, tuple(sorted(flags))


class LutOpPredictor(_TablePredictor):
    """Embedding + every operator of every layer, calibrated: ``scale * sum + overhead``."""

    name = "lut-op"

    def _raw(self, spec: EncoderSpec) -> tuple[float, tuple[str, ...]]:
        total, outside = self._embedding(spec)
        flags = set(outside)
        for layer in spec.arch.layers:
            for op, count in layer_ops(layer, spec.workload):
                t, o = self._op(op)
                total += count * t
                flags.update(o)
        return total, tuple(sorted(flags))


class FlopsPredictor(LatencyPredictor):
    """Baseline: latency proportional to FLOPs, plus a constant (fitted on encoders)."""

    name = "flops"

    def _fit(self, specs: list[EncoderSpec], y: np.ndarray, table: LatencyTable | None) -> None:
        if len(specs) == 0:
            raise ValueError("the FLOPs baseline needs at least one measured encoder")
        flops = np.array([s.arch.flops(s.workload) for s in specs], dtype=float)
        self.seconds_per_flop_, self.overhead_s_ = fit_affine_relative(flops, y)

    def _predict(self, specs: list[EncoderSpec]) -> Prediction:
        flops = np.array([s.arch.flops(s.workload) for s in specs], dtype=float)
        latency = np.maximum(self.seconds_per_flop_ * flops + self.overhead_s_, 0.0)
        return Prediction(latency, tuple(() for _ in specs))

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


PREDICTORS: dict[str, type[LatencyPredictor]] = {
    "lut-block": LutBlockPredictor,
    "lut-op": LutOpPredictor,
    "flops": FlopsPredictor,
}
