"""The published baselines: HAT's layer-averaged MLP and nn-Meter's kernel forests, on the
fake-backend database whose latencies follow a known law (see conftest)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor

from latbench.arch import Arch, Workload
from latbench.predictors.baselines import (
    KERNELS,
    HatMlpPredictor,
    NnMeterForestPredictor,
    hat_features,
    kernel_feature_names,
    kernel_features,
    kernel_training_set,
)
from latbench.predictors.batch import EncoderBatch
from latbench.specs import EncoderSpec, encoder_ops

W = Workload(1, 16)


@pytest.fixture(scope="module")
def mlp(measured) -> HatMlpPredictor:  # type: ignore[no-untyped-def]
    table, X, y, *_ = measured
    return HatMlpPredictor().fit(X, y, table=table)


@pytest.fixture(scope="module")
def forest(measured) -> NnMeterForestPredictor:  # type: ignore[no-untyped-def]
    table, X, y, *_ = measured
    return NnMeterForestPredictor().fit(X, y, table=table)


def round_trip(predictor, cls):  # type: ignore[no-untyped-def]
    state = json.loads(json.dumps(predictor.get_state()))
    return cls(**predictor.get_params()).set_state(state)


# --- HAT ---------------------------------------------------------------------------------
def test_mlp_learns_the_fake_law_and_is_deterministic(mlp, measured) -> None:  # type: ignore[no-untyped-def]
    _, X, y, *_ = measured
    predicted = mlp.predict(X)
    assert np.mean(np.abs(predicted / y - 1)) < 0.15
    np.testing.assert_array_equal(HatMlpPredictor().fit(X, y).predict(X), predicted)
    assert [w.shape[1] for w in mlp.coefs_] == [400, 400, 400, 1]  # HAT's 3 x 400 hidden units


def test_mlp_features_are_log_layer_averages(measured) -> None:  # type: ignore[no-untyped-def]
    _, X, *_ = measured
    features = hat_features(EncoderBatch.from_specs(X))
    for row, spec in zip(features, X, strict=True):
        a = spec.arch
        expected = (a.num_layers, a.hidden, np.mean(a.heads), np.mean(a.ffn), 1, spec.workload.seq_len)
        np.testing.assert_allclose(row, np.log(expected), rtol=1e-12)


def test_mlp_sees_only_averages_so_layer_order_does_not_matter(mlp) -> None:  # type: ignore[no-untyped-def]
    def encoder(heads: tuple[int, ...], ffn: tuple[int, ...]) -> EncoderSpec:
        return EncoderSpec(Arch(hidden=128, heads=heads, ffn=ffn, vocab_size=1000), W)

    reordered = [encoder((2, 4, 4), (256, 512, 128)), encoder((4, 2, 4), (128, 256, 512))]
    swapped_heads = [encoder((2, 4), (256, 256)), encoder((4, 2), (256, 256))]
    # Different layers with the same averages: HAT cannot tell them apart either.
    same_means = [encoder((2, 4), (256, 512)), encoder((2, 4), (512, 256))]
    for pair in (reordered, swapped_heads, same_means):
        first, second = mlp.predict(pair)
        assert first == second
    assert mlp.predict([encoder((2, 2), (256, 256))])[0] != mlp.predict(swapped_heads)[0]


def test_mlp_needs_two_encoders(measured) -> None:  # type: ignore[no-untyped-def]
    _, X, y, *_ = measured
    with pytest.raises(ValueError, match="hat-mlp needs at least 2 measured encoders to fit, got 1"):
        HatMlpPredictor().fit(X[:1], y[:1])
    assert len(HatMlpPredictor(hidden_layer_sizes=(8,)).fit(X[:2], y[:2]).predict(X)) == len(X)


def test_mlp_survives_a_json_round_trip(mlp, measured) -> None:  # type: ignore[no-untyped-def]
    _, X, *_ = measured
    loaded = round_trip(mlp, HatMlpPredictor)
    np.testing.assert_array_equal(loaded.predict(X), mlp.predict(X))
    assert loaded.interval_log_ == mlp.interval_log_


# --- nn-Meter ----------------------------------------------------------------------------
def test_forest_walks_its_exported_trees_exactly_as_sklearn(forest, measured) -> None:  # type: ignore[no-untyped-def]
    table, *_ = measured
    rng = np.random.default_rng(0)
    for op in KERNELS:
        features, latency_s = kernel_training_set(table, op, "fp32")
        assert features.shape == (len(latency_s), len(kernel_feature_names(op))) and len(latency_s) >= 4
        reference = RandomForestRegressor(n_estimators=100, random_state=0).fit(features, latency_s)
        # training rows, and points between and beyond them
        queries = np.vstack([features, features * rng.uniform(0.5, 2.0, size=features.shape)])
        np.testing.assert_allclose(forest.predict_kernel(op, queries), reference.predict(queries), rtol=1e-12)


def test_forest_encoder_latency_is_the_plain_sum_of_its_kernels(forest, measured) -> None:  # type: ignore[no-untyped-def]
    _, X, *_ = measured
    expected = []
    for spec in X:
        total = 0.0
        for op, count in encoder_ops(spec.arch, spec.workload):
            w = op.workload
            features = kernel_features(op.op, op.hidden, op.heads, op.ffn, w.batch, w.seq_len, 4)
            total += count * forest.predict_kernel(op.op, features)[0]
        expected.append(total)
    np.testing.assert_allclose(forest.predict(X), expected, rtol=1e-12)


def test_kernel_features_follow_the_spec_formulas(measured) -> None:  # type: ignore[no-untyped-def]
    table, *_ = measured
    for spec in list(table.ops)[:20]:
        w = spec.workload
        row = kernel_features(spec.op, spec.hidden, spec.heads, spec.ffn, w.batch, w.seq_len, 4)
        dims = {"hidden": spec.hidden, "heads": spec.heads, "ffn": spec.ffn}
        dims.update(batch=w.batch, seq_len=w.seq_len)
        names = kernel_feature_names(spec.op)
        assert names[-2:] == ("flops", "bytes")
        assert row.tolist() == [[*(dims[d] for d in names[:-2]), spec.flops, spec.bytes_moved]]


def test_forest_needs_operator_measurements(measured) -> None:  # type: ignore[no-untyped-def]
    table, X, y, *_ = measured
    message = "nnmeter-rf needs a LatencyTable with operator measurements"
    with pytest.raises(ValueError, match=message):
        NnMeterForestPredictor().fit(X, y)
    with pytest.raises(ValueError, match=message):
        NnMeterForestPredictor().fit(X, y, table=dataclasses.replace(table, ops={}))
    no_softmax = dataclasses.replace(table, ops={s: t for s, t in table.ops.items() if s.op != "softmax"})
    with pytest.raises(ValueError, match="no fp32 softmax measurements; nnmeter-rf needs every kernel"):
        NnMeterForestPredictor().fit(X, y, table=no_softmax)


def test_forest_refuses_another_precision(forest, measured) -> None:  # type: ignore[no-untyped-def]
    _, X, *_ = measured
    bf16 = dataclasses.replace(EncoderBatch.from_specs(X), precision="bf16")
    with pytest.raises(ValueError, match="fitted on fp32 operators and cannot predict bf16"):
        forest.predict(bf16)


def test_forest_survives_a_json_round_trip(forest, measured) -> None:  # type: ignore[no-untyped-def]
    _, X, *_ = measured
    loaded = round_trip(forest, NnMeterForestPredictor)
    np.testing.assert_array_equal(loaded.predict(X), forest.predict(X))
    assert loaded.interval_log_ == forest.interval_log_
    assert "table_" not in forest.get_state()  # trees only: the table is not needed to predict
