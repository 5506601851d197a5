"""Lookup tables of measured blocks and operators, and how shapes between entries are read.

``LatencyTable`` holds the median latency of every block and operator measured on one
target with one fingerprint. ``LogLogInterpolator`` answers for shapes the table lacks:

* an exact entry is returned as measured;
* otherwise each of the ``k`` nearest entries (distance in log-shape space, every
  dimension scaled by the table's spread) proposes ``t_n * (size_q / size_n) ** beta``,
  where size is the FLOPs and ``beta`` is fitted on those neighbours by weighted least
  squares in log-log space (the table-wide exponent when they do not span enough sizes),
  and the proposals are averaged in log space with inverse-square-distance weights;
* a query more than 25% beyond the table's range in any dimension (a batch of 8 when
  only batch 1 was measured, a hidden size of 1024 for a table that stops at 768) is
  *outside*: it still gets a number, but it is flagged so callers can refuse or warn.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latbench.fingerprint import Fingerprint
from latbench.measurement import Measurement
from latbench.specs import BlockSpec, OpSpec, Spec, block_flops, spec_from_dict
from latbench.target import Target

OUTSIDE_TOLERANCE = math.log(1.25)


class ExtrapolationError(ValueError):
    """A query lies far outside what the lookup table measured."""


@dataclass(frozen=True)
class Query:
    """One interpolation result: log-latency and whether the shape was outside the table."""

    log_time: float
    outside: tuple[str, ...] = ()  # the dimensions that were out of range


class LogLogInterpolator:
    """Interpolates log-latency over log-shape features with FLOPs-scaled neighbours."""

    def __init__(
        self,
        names: Sequence[str],
        features: np.ndarray,
        log_size: np.ndarray,
        log_time: np.ndarray,
        k: int = 6,
    ) -> None:
        if len(features) == 0:
            raise ValueError("an interpolator needs at least one entry")
        self.names = tuple(names)
        self.features = np.asarray(features, dtype=float)
        self.log_size = np.asarray(log_size, dtype=float)
        self.log_time = np.asarray(log_time, dtype=float)
        self.k = k
        self.low = self.features.min(axis=0)
        self.high = self.features.max(axis=0)
        spread = self.high - self.low
        self.scale = np.where(spread > 0, spread, 1.0)
        self.beta = _slope(self.log_size, self.log_time, np.ones(len(self.log_size)), default=1.0)
        self._cache: dict[tuple[float, ...], Query] = {}

    def query(self, features: Sequence[float], log_size: float) -> Query:
        key = (*features, log_size)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._query(np.asarray(features, dtype=float), log_size)
        return hit

    def _query(self, q: np.ndarray, log_size: float) -> Query:
        outside = tuple(
            name
            for name, v, lo, hi in zip(self.names, q, self.low, self.high, strict=True)
            if v < lo - OUTSIDE_TOLERANCE or v > hi + OUTSIDE_TOLERANCE
        )
        d = np.sqrt((((self.features - q) / self.scale) ** 2).sum(axis=1))
        exact = np.flatnonzero(d < 1e-12)
        if exact.size:
            return Query(float(self.log_time[exact[0]]), outside)
        nearest = np.argsort(d, kind="stable")[: self.k]
        w = 1.0 / d[nearest] ** 2
        sizes, times = self.log_size[nearest], self.log_time[nearest]
        beta = _slope(sizes, times, w, default=self.beta)
        proposals = times + beta * (log_size - sizes)
        return Query(float((w * proposals).sum() / w.sum()), outside)


def _slope(x: np.ndarray, y: np.ndarray, w: np.ndarray, default: float) -> float:
    """Weighted least-squares slope of y on x, clipped to a physical range; ``default``
    when x does not vary enough (0.1 in natural log) to say."""
    mx = (w * x).sum() / w.sum()
    var = (w * (x - mx) ** 2).sum() / w.sum()
    if var < 0.01:
        return default
    my = (w * y).sum() / w.sum()
    slope = (w * (x - mx) * (y - my)).sum() / w.sum() / var
    return float(min(1.3, max(0.2, slope)))


# --- the table ---------------------------------------------------------------------------
# ``attn_ratio`` is log(attention width / hidden): 0 for BERT's geometry, so tables of
# BERT-shaped layers read exactly as before, and a fixed-head-size layer that the table
# never measured is flagged as outside it rather than silently read as a BERT layer.
def block_features(spec: BlockSpec) -> tuple[float, ...]:
    w, lay = spec.workload, spec.layer
    sizes = (lay.hidden, lay.heads, lay.ffn, w.batch, w.seq_len)
    return (*(math.log(v) for v in sizes), math.log(lay.attn_width / lay.hidden))


BLOCK_DIMS = ("hidden", "heads", "ffn", "batch", "seq_len", "attn_ratio")


def op_dims(op: str) -> tuple[str, ...]:
    """The features of ``op``'s interpolator (the raw dims, as nn-Meter's kernels use)."""
    from latbench.specs import OP_DEPENDS

    return (*(d for d in ("hidden", "heads", "ffn") if d in OP_DEPENDS[op]), "batch", "seq_len")


def op_features(spec: OpSpec) -> tuple[float, ...]:
    from latbench.specs import PROJECTION_OPS

    values = {"hidden": spec.hidden, "heads": spec.heads, "ffn": spec.ffn}
    values.update(batch=spec.workload.batch, seq_len=spec.workload.seq_len)
    logs = tuple(math.log(values[d]) for d in op_dims(spec.op))
    return (*logs, math.log(spec.width / spec.hidden)) if spec.op in PROJECTION_OPS else logs


def op_feature_names(op: str) -> tuple[str, ...]:
    from latbench.specs import PROJECTION_OPS

    return (*op_dims(op), "attn_ratio") if op in PROJECTION_OPS else op_dims(op)


@dataclass(frozen=True)
class LatencyTable:
    """Median latencies (seconds) of measured blocks and operators on one target."""

    target: Target
    fingerprint: Fingerprint
    blocks: Mapping[BlockSpec, float] = field(default_factory=dict)
    ops: Mapping[OpSpec, float] = field(default_factory=dict)

    @classmethod
    def from_measurements(cls, measurements: Iterable[Measurement]) -> LatencyTable:
        rows = list(measurements)
        if not rows:
            raise ValueError("no measurements to build a lookup table from")
        pairs = {(m.target.key, m.fingerprint.key) for m in rows}
        if len(pairs) > 1:
            raise ValueError("a lookup table holds one target and one machine fingerprint; filter rows first")
        blocks = {m.spec: m.latency_s for m in rows if isinstance(m.spec, BlockSpec)}
        ops = {m.spec: m.latency_s for m in rows if isinstance(m.spec, OpSpec)}
        return cls(rows[0].target, rows[0].fingerprint, blocks, ops)

    def block_interpolator(self, context: str, precision: str = "fp32") -> LogLogInterpolator | None:
        entries = [
            (s, t)
            for s, t in self.blocks.items()
            if s.context == context and s.workload.precision == precision
        ]
        if not entries:
            return None
        return LogLogInterpolator(
            BLOCK_DIMS,
            np.array([block_features(s) for s, _ in entries]),
            np.log([block_flops(s) for s, _ in entries]),
            np.log([t for _, t in entries]),
        )

    def op_interpolators(self, precision: str = "fp32") -> dict[str, LogLogInterpolator]:
        by_op: dict[str, list[tuple[OpSpec, float]]] = {}
        for s, t in self.ops.items():
            if s.workload.precision == precision:
                by_op.setdefault(s.op, []).append((s, t))
        return {
            op: LogLogInterpolator(
                op_feature_names(op),
                np.array([op_features(s) for s, _ in entries]),
                np.log([s.flops for s, _ in entries]),
                np.log([t for _, t in entries]),
            )
            for op, entries in by_op.items()
        }

    def summary(self) -> dict[str, Any]:
        def span(values: Iterable[int]) -> list[int]:
            vals = list(values)
            return [min(vals), max(vals)] if vals else []

        specs: list[Spec] = [*self.blocks, *self.ops]
        return {
            "blocks": len(self.blocks),
            "ops": len(self.ops),
            "hidden": span(s.layer.hidden for s in self.blocks),
            "seq_len": span(s.workload.seq_len for s in specs),
            "batch": span(s.workload.batch for s in specs),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target.to_dict(),
            "fingerprint": self.fingerprint.to_dict(),
            "entries": [[s.to_dict(), t] for s, t in [*self.blocks.items(), *self.ops.items()]],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyTable:
        blocks: dict[BlockSpec, float] = {}
        ops: dict[OpSpec, float] = {}
        for spec_data, t in data["entries"]:
            spec = spec_from_dict(spec_data)
            if isinstance(spec, BlockSpec):
                blocks[spec] = float(t)
            elif isinstance(spec, OpSpec):
                ops[spec] = float(t)
        return cls(Target.from_dict(data["target"]), Fingerprint.from_dict(data["fingerprint"]), blocks, ops)
