"""Lookup-table predictors and the FLOPs baseline, on a fake-backend database whose
latencies follow a known law, so accuracy expectations are exact."""

from __future__ import annotations

import math
import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from latbench.arch import Arch, LayerShape, Workload
from latbench.errors import ConfigError
from latbench.predictors.base import ExtrapolationWarning
from latbench.predictors.io import FingerprintMismatchWarning, load_predictor, save_predictor
from latbench.predictors.lut import FlopsPredictor, LutBlockPredictor, LutOpPredictor
from latbench.predictors.table import ExtrapolationError, LatencyTable, LogLogInterpolator
from latbench.specs import BlockSpec, EncoderSpec
from latbench.target import Target
from latbench.testing.fake_backend import fake_latency_s


def test_block_table_predicts_held_out_encoders_of_a_known_law(measured) -> None:  # type: ignore[no-untyped-def]
    table, X, y, *_ = measured
    train, test = slice(0, 10), slice(10, None)
    block = LutBlockPredictor().fit(X[train], y[train], table=table)
    errors = block.predict(X[test]) / y[test] - 1
    assert np.max(np.abs(errors)) < 0.02
    flops = FlopsPredictor().fit(X[train], y[train])
    assert np.mean(np.abs(flops.predict(X[test]) / y[test] - 1)) < 0.05  # the fake law is FLOPs-like
    op = LutOpPredictor().fit(X[train], y[train], table=table)
    assert np.all(np.isfinite(op.predict(X[test])))


def test_interpolation_between_entries_follows_the_log_log_law() -> None:
    # latency = 2e-9 * flops ** 0.9 over a grid of one dimension
    sizes = np.array([1e6, 4e6, 16e6, 64e6])
    interp = LogLogInterpolator(("hidden",), np.log(sizes)[:, None], np.log(sizes), np.log(2e-9 * sizes**0.9))
    exact = interp.query((math.log(4e6),), math.log(4e6))
    assert math.exp(exact.log_time) == pytest.approx(2e-9 * 4e6**0.9) and exact.outside == ()
    between = interp.query((math.log(8e6),), math.log(8e6))
    assert math.exp(between.log_time) == pytest.approx(2e-9 * 8e6**0.9, rel=1e-6)
    far = interp.query((math.log(1e9),), math.log(1e9))
    assert far.outside == ("hidden",)
    near_edge = interp.query((math.log(64e6 * 1.2),), math.log(64e6 * 1.2))
    assert near_edge.outside == ()  # within 25% of the table's edge


def test_outside_the_table_warns_raises_or_stays_quiet(measured) -> None:  # type: ignore[no-untyped-def]
    table, X, y, *_ = measured
    huge = EncoderSpec(Arch.uniform(4, 1024, 16, 4096, vocab_size=1000), Workload(8, 256))
    with pytest.warns(ExtrapolationWarning, match=r"1 of 1 encoders lie outside .*hidden"):
        LutBlockPredictor().fit(X, y, table=table).predict([huge])
    with pytest.raises(ExtrapolationError, match="profile those shapes"):
        LutBlockPredictor(on_extrapolation="raise").fit(X, y, table=table).predict([huge])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detail = (
            LutBlockPredictor(on_extrapolation="ignore").fit(X, y, table=table).predict_detail([huge, X[0]])
        )
    assert detail.extrapolated.tolist() == [True, False]
    with pytest.raises(ValueError, match="on_extrapolation"):
        LutBlockPredictor(on_extrapolation="sometimes").fit(X, y, table=table)


def test_table_predictors_explain_what_is_missing(measured) -> None:  # type: ignore[no-untyped-def]
    table, X, y, *_ = measured
    with pytest.raises(ValueError, match="needs a LatencyTable"):
        LutBlockPredictor().fit(X, y)
    only_isolated = LatencyTable(
        table.target,
        table.fingerprint,
        {s: t for s, t in table.blocks.items() if s.context == "isolated"},
        table.ops,
    )
    with pytest.raises(ValueError, match="no model-context block measurements"):
        LutBlockPredictor().fit(X, y, table=only_isolated)
    assert LutBlockPredictor(context="isolated").fit(X, y, table=only_isolated).predict(X[:1])[0] > 0
    no_ops = LatencyTable(table.target, table.fingerprint, table.blocks, {})
    with pytest.raises(ValueError, match="no embedding measurements"):
        LutBlockPredictor().fit(X, y, table=no_ops)


def test_uncalibrated_block_sum_equals_the_measured_blocks(measured) -> None:  # type: ignore[no-untyped-def]
    table, X, _, *_ = measured
    predictor = LutBlockPredictor().fit([], [], table=table)  # no encoders: scale 1, no overhead
    spec = next(
        s for s in X if all(BlockSpec(layer, s.workload, "model") in table.blocks for layer in s.arch.layers)
    )
    from latbench.specs import OpSpec

    expected = sum(fake_latency_s(BlockSpec(layer, spec.workload, "model")) for layer in spec.arch.layers)
    expected += fake_latency_s(OpSpec("embedding", spec.workload, spec.arch.hidden, vocab_size=1000))
    assert predictor.predict([spec])[0] == pytest.approx(expected, rel=1e-9)


def test_loading_for_another_target_or_machine_warns(measured, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    table, X, y, target, fingerprint = measured
    path = tmp_path / "p.json"
    save_predictor(
        LutBlockPredictor().fit(X, y, table=table), path, target=target, fingerprint=fingerprint, training={}
    )
    other = Target("fake-cpu", settings=(("threads", 2),))
    with pytest.warns(
        FingerprintMismatchWarning, match="fitted on target fake-cpu:threads=1, not fake-cpu:threads=2"
    ):
        load_predictor(path, target=other)
    elsewhere = type(fingerprint)(**{**fingerprint.__dict__, "cpu_model": "Some Other CPU"})
    with pytest.warns(FingerprintMismatchWarning, match="another machine"):
        load_predictor(path, fingerprint=elsewhere)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("not json", "is not JSON"),
        ('{"format": "something-else"}', "not a latbench predictor"),
        ('{"format": "latbench-predictor", "version": 99}', "version 99"),
        (
            '{"format": "latbench-predictor", "version": 1, "predictor": "oracle"}',
            "unknown predictor 'oracle'",
        ),
        ('{"format": "latbench-predictor", "version": 1, "predictor": "flops", "params": {}}', "damaged"),
    ],
)
def test_bad_predictor_files_are_config_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "p.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_predictor(path)


def test_random_shapes_inside_the_table_are_never_flagged(measured, fake_space) -> None:  # type: ignore[no-untyped-def]
    table, X, y, *_ = measured
    predictor = LutBlockPredictor(on_extrapolation="raise").fit(X, y, table=table)
    rng = random.Random(0)
    specs = [
        EncoderSpec(fake_space.sample_arch(rng), Workload(1, rng.choice([16, 32, 64]))) for _ in range(50)
    ]
    assert not predictor.predict_detail(specs).extrapolated.any()
    assert LayerShape(128, 4, 512) in {b.layer for b in table.blocks}


def test_calibration_keeps_a_fixed_cost_and_never_subtracts_one() -> None:
    from latbench.predictors.base import fit_affine_relative

    raw = np.array([1.0, 2.0, 4.0, 8.0])
    scale, offset = fit_affine_relative(raw, 1.5 * raw + 0.5)  # parts miss a fixed cost
    assert scale == pytest.approx(1.5) and offset == pytest.approx(0.5)
    # parts that overcount (the best line would subtract 0.5): a scale only, so a model
    # smaller than any measured one is still priced above zero
    scale, offset = fit_affine_relative(raw, 1.5 * raw - 0.5)
    assert offset == 0.0 and scale > 0
