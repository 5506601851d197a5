"""Per-operator latency breakdown of an encoder from a lookup table of measured operators.

A table predictor (``lut-block``, ``lut-op``, and ``xgboost``, which keeps one) holds the
measured times of every operator kind of an encoder layer. ``operator_times`` sums them
over an architecture (the embedding once, each layer's operators as often as they run),
so a report can show where a student's time goes. The table's raw sum is not the
calibrated prediction (blocks fuse and overlap operators; the predictor's calibration
absorbs the glue), so reports scale the shares to the predicted latency and say how
far the raw sum was from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from latbench.arch import Arch, Workload
from latbench.predictors.base import LatencyPredictor
from latbench.predictors.table import LatencyTable, op_features
from latbench.specs import LAYER_OPS, OpSpec, layer_ops

#: The order of a breakdown's parts: the embedding, then a layer's operators as they run.
OPERATORS = ("embedding", *(op for op, _ in LAYER_OPS))


def predictor_table(predictor: LatencyPredictor) -> LatencyTable | None:
    """The lookup table a fitted predictor keeps, or ``None`` when it has none."""
    table = getattr(predictor, "table_", None)
    return table if isinstance(table, LatencyTable) else None


def operator_times(table: LatencyTable, arch: Arch, workload: Workload) -> dict[str, float]:
    """Seconds per operator kind (``OPERATORS`` order) of ``arch`` at ``workload``, from
    the table's measured operators (interpolated in log-log space, as ``lut-op`` does).

    Raises ``ValueError`` naming the operator when the table has no measurement of it."""
    tables = table.op_interpolators(workload.precision)
    times = dict.fromkeys(OPERATORS, 0.0)

    def query(op: OpSpec) -> float:
        interpolator = tables.get(op.op)
        if interpolator is None:
            raise ValueError(f"the lookup table has no {op.op} measurements; profile a plan with operators")
        return math.exp(interpolator.query(op_features(op), math.log(op.flops)).log_time)

    times["embedding"] = query(OpSpec("embedding", workload, arch.hidden, vocab_size=arch.vocab_size))
    for layer in arch.layers:
        for op, count in layer_ops(layer, workload):
            times[op.op] += count * query(op)
    return times


def scaled_to(times: Mapping[str, float], total: float) -> dict[str, float]:
    """``times`` scaled so that they sum to ``total`` (shares kept)."""
    raw = sum(times.values())
    if raw <= 0:
        raise ValueError("cannot scale a breakdown whose parts sum to zero")
    return {name: value * total / raw for name, value in times.items()}
