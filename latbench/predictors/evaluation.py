"""Evaluating predictors on held-out end-to-end measurements, beside the noise floor.

Two splits of a database's encoders:

* ``random``: a seeded share of the encoders is held out (interpolation); or, with
  ``random_folds``, k-fold cross-validation, so every encoder is held out once and a
  small database still gives as many held-out predictions as it has encoders;
* ``hidden``: the encoders with the largest hidden sizes are held out (extrapolation
  in the dimension that matters most), with blocks and operators of those hidden sizes
  removed from the lookup table too, so no predictor sees the held-out shapes.

Every predictor is fitted on the training encoders (and the table) and scored on the
held-out ones with ``latbench.predictors.metrics.accuracy``; ``noise_floor`` compares two
independent measurements of the held-out encoders, the bar no predictor can beat.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from latbench.errors import ConfigError
from latbench.measurement import LATENCY_FIGURE, Measurement
from latbench.predictors import registry
from latbench.predictors.base import ExtrapolationWarning
from latbench.predictors.metrics import Accuracy, NoiseFloor, accuracy, noise_floor
from latbench.predictors.settings import (
    EVALUATION_FORMAT,
    EVALUATION_VERSION,
    SPLIT_CHOICES,
    SPLITS,
    EvaluationSettings,
)
from latbench.predictors.table import LatencyTable
from latbench.specs import BlockSpec, EncoderSpec, OpSpec, Spec, encoder_ops


@dataclass(frozen=True)
class Split:
    name: str
    train: tuple[Measurement, ...]
    test: tuple[Measurement, ...]
    table: LatencyTable | None


def split_measurements(
    rows: Sequence[Measurement], how: str, *, test_share: float = 0.3, seed: int = 0
) -> Split:
    if how not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {how!r}")
    if not 0 < test_share < 1:
        raise ValueError(f"test share must be between 0 and 1, got {test_share}")
    encoders = [m for m in rows if isinstance(m.spec, EncoderSpec)]
    parts = [m for m in rows if isinstance(m.spec, (BlockSpec, OpSpec))]  # not users' models
    if len(encoders) < 4:
        raise ValueError(f"evaluation needs at least 4 measured encoders, the database has {len(encoders)}")
    n_test = max(1, round(len(encoders) * test_share))
    if how == "random":
        order = list(encoders)
        random.Random(seed).shuffle(order)
        test, train = order[:n_test], order[n_test:]
    else:
        hidden_sizes = sorted({m.spec.arch.hidden for m in encoders})
        if len(hidden_sizes) < 2:
            raise ValueError("the hidden split needs encoders of at least two hidden sizes")
        held: set[int] = set()
        for h in reversed(hidden_sizes[1:]):  # hold out the largest sizes, never all of them
            held.add(h)
            if sum(m.spec.arch.hidden in held for m in encoders) >= n_test:
                break
        test = [m for m in encoders if m.spec.arch.hidden in held]
        train = [m for m in encoders if m.spec.arch.hidden not in held]
        parts = [m for m in parts if _hidden(m) not in held]
    table = LatencyTable.from_measurements(parts) if parts else None
    return Split(how, tuple(train), tuple(test), table)


def _hidden(m: Measurement) -> int:
    """The hidden size a part belongs to. Attention operators are keyed by their attention
    width instead (``OpSpec.for_layer``): equal to the hidden size for BERT's geometry,
    while with fixed head sizes one attention operator serves several hidden sizes and is
    held out when its width equals a held-out hidden size."""
    spec = m.spec
    if isinstance(spec, BlockSpec):
        return spec.layer.hidden
    assert isinstance(spec, OpSpec)
    return spec.hidden


@dataclass(frozen=True)
class Scored:
    predictor: str
    accuracy: Accuracy | None
    predicted_s: tuple[float, ...]
    extrapolated: int
    error: str = ""


def random_folds(rows: Sequence[Measurement], folds: int, *, seed: int = 0) -> list[Split]:
    """k-fold cross-validation over the encoders (blocks and operators stay in every
    fold's table: they describe parts, not the held-out encoders); with fewer encoders
    than folds, leave-one-out."""
    encoders = [m for m in rows if isinstance(m.spec, EncoderSpec)]
    parts = [m for m in rows if isinstance(m.spec, (BlockSpec, OpSpec))]  # not users' models
    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {folds}")
    if len(encoders) < 4:
        raise ValueError(f"evaluation needs at least 4 measured encoders, the database has {len(encoders)}")
    folds = min(folds, len(encoders))  # at most one fold per encoder: leave-one-out
    order = list(encoders)
    random.Random(seed).shuffle(order)
    table = LatencyTable.from_measurements(parts) if parts else None
    return [
        Split(
            "random",
            tuple(m for i, m in enumerate(order) if i % folds != k),
            tuple(m for i, m in enumerate(order) if i % folds == k),
            table,
        )
        for k in range(folds)
    ]


def pooled_test(splits: Sequence[Split]) -> list[Measurement]:
    return [m for sp in splits for m in sp.test]


def evaluate(splits: Split | Sequence[Split], names: Sequence[str] = registry.EVALUATED) -> list[Scored]:
    """Fit each predictor on each split's training encoders and score it on the held-out
    ones, pooled over the splits (one split, or the folds of ``random_folds``)."""
    splits = [splits] if isinstance(splits, Split) else list(splits)
    y_test = np.array([m.latency_s for m in pooled_test(splits)])
    scored = []
    for name in names:
        predicted: list[float] = []
        extrapolated = 0
        try:
            for split in splits:
                predictor = registry.create(name).fit(
                    [m.spec for m in split.train],
                    np.array([m.latency_s for m in split.train]),
                    table=split.table,
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ExtrapolationWarning)  # counted below instead
                    detail = predictor.predict_detail([m.spec for m in split.test])
                predicted.extend(float(v) for v in detail.latency_s)
                extrapolated += int(detail.extrapolated.sum())
        except ValueError as exc:  # e.g. a table-based predictor on a database without blocks
            scored.append(Scored(name, None, (), 0, str(exc)))
            continue
        scored.append(Scored(name, accuracy(np.array(predicted), y_test), tuple(predicted), extrapolated))
    return scored


def noise_floor_pairs(
    test: Sequence[Measurement], second: Sequence[Measurement]
) -> tuple[np.ndarray, np.ndarray]:
    """Medians of the held-out encoders in both measurements, matched by spec."""
    again = {m.spec.key: m.latency_s for m in second}
    pairs = [(m.latency_s, again[m.spec.key]) for m in test if m.spec.key in again]
    if not pairs:
        return np.empty(0), np.empty(0)
    first, other = zip(*pairs, strict=True)
    return np.array(first), np.array(other)


def encoders_and_table(rows: Sequence[Measurement]) -> tuple[list[Measurement], LatencyTable | None]:
    """A database's rows as what predictors fit: the encoders, and a lookup table of the
    blocks and operators (None when there are none)."""
    encoders = [m for m in rows if isinstance(m.spec, EncoderSpec)]
    parts = [m for m in rows if isinstance(m.spec, (BlockSpec, OpSpec))]  # not users' models
    return encoders, (LatencyTable.from_measurements(parts) if parts else None)


def make_splits(rows: Sequence[Measurement], settings: EvaluationSettings) -> list[list[Split]]:
    """Each split of ``settings`` as the list of its folds (one fold unless k-fold)."""
    splits = []
    try:
        for name in settings.split_names:
            if name == "random" and settings.folds > 1:
                splits.append(random_folds(rows, settings.folds, seed=settings.seed))
            else:
                splits.append(
                    [split_measurements(rows, name, test_share=settings.test_share, seed=settings.seed)]
                )
    except ValueError as exc:
        raise ConfigError(f"cannot evaluate: {exc}") from None
    return splits


@dataclass(frozen=True)
class SplitResult:
    """One split's scores: the predictors on the pooled held-out encoders, and the noise
    floor of those encoders (None without a second measurement)."""

    name: str
    folds: tuple[Split, ...]
    test: tuple[Measurement, ...]
    scored: tuple[Scored, ...]
    floor: NoiseFloor | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "folds": len(self.folds),
            "train": len(self.folds[0].train),
            "test": len(self.test),
            "noise_floor": self.floor.to_dict() if self.floor else None,
            "predictors": {
                s.predictor: {
                    "accuracy": s.accuracy.to_dict() if s.accuracy else None,
                    "extrapolated": s.extrapolated,
                    "error": s.error,
                    "predicted_ms": [v * 1e3 for v in s.predicted_s],
                }
                for s in self.scored
            },
            "measured_ms": [m.latency_s * 1e3 for m in self.test],
            "test_labels": [m.spec.label for m in self.test],
        }


def score_splits(
    splits: Sequence[Sequence[Split]], predictors: Sequence[str], second: Sequence[Measurement]
) -> list[SplitResult]:
    """``evaluate`` on each split of ``make_splits``, with the noise floor of its held-out
    encoders against ``second`` (another independent measurement of them)."""
    results = []
    for folds in splits:
        test = pooled_test(folds)
        first, again = noise_floor_pairs(test, second)
        floor = noise_floor(first, again) if len(first) else None
        scored = evaluate(folds, predictors)
        results.append(SplitResult(folds[0].name, tuple(folds), tuple(test), tuple(scored), floor))
    return results


def evaluation_document(
    results: Sequence[SplitResult],
    settings: EvaluationSettings,
    *,
    target: str,
    fingerprint: dict[str, Any],
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """``evaluation.json``: the settings, the target and machine, and each split's scores;
    ``provenance`` adds e.g. the database (redacted), the command and latbench's version."""
    extra = dict(provenance)
    db = extra.pop("db", None)
    return {
        "format": EVALUATION_FORMAT,
        "version": EVALUATION_VERSION,
        "target": target,
        "fingerprint": fingerprint,
        "settings": {**settings.to_dict(), "figure": LATENCY_FIGURE, "db": db},
        **extra,
        "splits": {r.name: r.to_dict() for r in results},
    }


#: What an encoder is summed from in ``additivity``: its blocks measured alone, its blocks
#: measured in model context (a stack of distinct copies), or its operators.
PARTS = ("isolated", "model", "operators")


def sum_of_parts_s(encoder: EncoderSpec, medians_s: dict[Spec, float], parts: str) -> float | None:
    """The embedding plus one block per layer (``parts`` = ``isolated`` or ``model``: the
    block context) or plus every operator of every layer (``operators``), from ``medians_s``;
    None when one of those parts was not measured."""
    if parts not in PARTS:
        raise ValueError(f"parts must be one of {', '.join(PARTS)}, got {parts!r}")
    w, arch = encoder.workload, encoder.arch
    needed: list[tuple[Spec, int]]
    if parts == "operators":
        needed = list(encoder_ops(arch, w))
    else:
        embedding = OpSpec("embedding", w, arch.hidden, vocab_size=arch.vocab_size)
        needed = [(embedding, 1), *((BlockSpec(layer, w, parts), 1) for layer in arch.layers)]
    if any(spec not in medians_s for spec, _ in needed):
        return None
    return sum(medians_s[spec] * count for spec, count in needed)


def additivity(rows: Sequence[Measurement]) -> dict[str, Accuracy]:
    """The additivity gap: each measured encoder against the sum of its measured parts, as
    ``Accuracy`` (the sum as the prediction) per kind of parts in ``PARTS`` that the rows
    hold for at least one encoder. The gap is what a lookup table must calibrate away: on
    a CPU, blocks measured alone keep their weights in cache and sum to less than the model."""
    medians_s = {m.spec: m.latency_s for m in rows}
    encoders = [m for m in rows if isinstance(m.spec, EncoderSpec)]
    gaps: dict[str, Accuracy] = {}
    for parts in PARTS:
        pairs = [(sum_of_parts_s(m.spec, medians_s, parts), m.latency_s) for m in encoders]  # type: ignore[arg-type]
        summed = [(s, measured) for s, measured in pairs if s is not None]
        if summed:
            predicted, measured = zip(*summed, strict=True)
            gaps[parts] = accuracy(np.array(predicted), np.array(measured))
    return gaps


__all__ = [
    "EVALUATION_FORMAT",
    "PARTS",
    "SPLITS",
    "SPLIT_CHOICES",
    "EvaluationSettings",
    "NoiseFloor",
    "Scored",
    "Split",
    "SplitResult",
    "additivity",
    "encoders_and_table",
    "evaluate",
    "evaluation_document",
    "make_splits",
    "noise_floor_pairs",
    "pooled_test",
    "random_folds",
    "score_splits",
    "split_measurements",
    "sum_of_parts_s",
]
