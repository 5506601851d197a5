"""The contract every registered predictor honours: scikit-learn's estimator conventions,
batch and list inputs alike, a calibrated interval, JSON round trips, clear errors."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from latbench.arch import Arch, Workload
from latbench.predictors import registry
from latbench.predictors.batch import EncoderBatch
from latbench.predictors.io import load_predictor, save_predictor
from latbench.specs import EncoderSpec

NAMES = sorted(registry.names())


def make(name: str, measured: Any, tmp_path: Path) -> Any:
    """A fresh, unfitted predictor; ``transfer`` gets a source predictor file first."""
    if name == "transfer":
        table, X, y, target, fingerprint = measured
        source = tmp_path / "source.json"
        slower = registry.create("lut-block").fit(X, y * 1.7, table=table)
        save_predictor(slower, source, target=target, fingerprint=fingerprint, training={})
        return registry.create(name, source=str(source))
    return registry.create(name)


@pytest.mark.parametrize("name", NAMES)
def test_estimator_conventions(name: str, measured, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    table, X, y, *_ = measured
    predictor = make(name, measured, tmp_path)
    assert predictor.name == name
    assert not [k for k in vars(predictor) if k.endswith("_")]  # __init__ learns nothing
    assert clone(predictor).get_params() == predictor.get_params()
    with pytest.raises(NotFittedError):
        predictor.predict(X[:1])
    assert predictor.fit(X, y, table=table) is predictor
    learned = [k for k in vars(predictor) if k not in predictor.get_params()]
    assert learned and all(k.endswith("_") for k in learned)
    first = predictor.predict(X)
    assert first.shape == (len(X),) and np.all(first > 0)
    np.testing.assert_array_equal(clone(predictor).fit(X, y, table=table).predict(X), first)  # deterministic
    np.testing.assert_allclose(predictor.predict(EncoderBatch.from_specs(X)), first, rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_refused_clearly(name: str, measured, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    table, X, y, *_ = measured
    with pytest.raises(ValueError, match="one latency per encoder"):
        make(name, measured, tmp_path).fit(X, y[:-1], table=table)
    with pytest.raises(ValueError, match="finite and positive"):
        make(name, measured, tmp_path).fit(X, -y, table=table)
    predictor = make(name, measured, tmp_path).fit(X, y, table=table)
    with pytest.raises(TypeError, match="EncoderSpecs"):
        predictor.predict([X[0].arch])
    with pytest.raises(TypeError, match="EncoderSpecs"):
        predictor.predict("encoder")


@pytest.mark.parametrize("name", NAMES)
def test_interval_brackets_the_prediction_and_mostly_the_truth(name: str, measured, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    table, X, y, *_ = measured
    y = y * np.exp(np.random.default_rng(0).normal(0.0, 0.03, len(y)))  # measurement noise
    detail = make(name, measured, tmp_path).fit(X[:24], y[:24], table=table).predict_detail(X)
    assert detail.low_s is not None and detail.high_s is not None
    assert np.all(detail.low_s <= detail.latency_s) and np.all(detail.latency_s <= detail.high_s)
    inside = (detail.low_s <= y) & (y <= detail.high_s)
    assert inside.mean() >= 0.6  # a 90% interval; loose because 30 encoders are few


@pytest.mark.parametrize("name", NAMES)
def test_population_prediction_matches_one_by_one(name: str, measured, tmp_path: Path, fake_space) -> None:  # type: ignore[no-untyped-def]
    table, X, y, *_ = measured
    predictor = make(name, measured, tmp_path).fit(X, y, table=table)
    rng = np.random.default_rng(1)
    archs = [fake_space.sample_arch(random.Random(i)) for i in range(40)]
    workload = Workload(1, int(rng.choice([16, 64])))
    together = predictor.predict(EncoderBatch.from_archs(archs, workload))
    alone = np.array([predictor.predict([EncoderSpec(a, workload)])[0] for a in archs])
    np.testing.assert_allclose(together, alone, rtol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_save_and_load_round_trip_as_json(name: str, measured, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    table, X, y, target, fingerprint = measured
    predictor = make(name, measured, tmp_path).fit(X, y, table=table)
    path = tmp_path / "p.json"
    save_predictor(predictor, path, target=target, fingerprint=fingerprint, training={"encoders": len(X)})
    text = path.read_text()
    document = json.loads(text)
    assert document["predictor"] == name and document["fingerprint"]["cpu_model"] == fingerprint.cpu_model
    loaded = load_predictor(path, target=target, fingerprint=fingerprint)
    again = loaded.predictor.predict_detail(X)
    detail = predictor.predict_detail(X)
    np.testing.assert_allclose(again.latency_s, detail.latency_s, rtol=1e-9)
    np.testing.assert_allclose(again.high_s, detail.high_s, rtol=1e-9)  # type: ignore[arg-type]
    assert loaded.training == {"encoders": len(X)}


def test_every_predictor_has_a_name_and_unknown_names_are_refused() -> None:
    assert {"lut-block", "lut-op", "flops"} <= set(NAMES)
    with pytest.raises(KeyError, match="unknown predictor 'oracle'"):
        registry.create("oracle")


def test_encoder_batch_features_match_the_scalar_formulas(measured) -> None:  # type: ignore[no-untyped-def]
    from latbench.specs import BlockSpec, block_bytes, block_flops

    _, X, *_ = measured
    batch = EncoderBatch.from_specs(X)
    np.testing.assert_array_equal(batch.matmul_flops(), [s.arch.flops(s.workload) for s in X])
    for i, spec in enumerate(X):
        for j, layer in enumerate(spec.arch.layers):
            block = BlockSpec(layer, spec.workload)
            assert batch.layer_flops[i, j] == block_flops(block)
            assert batch.layer_bytes[i, j] == block_bytes(block)
        assert batch.layer_flops[i, spec.arch.num_layers :].sum() == 0


def test_encoder_batch_refuses_malformed_arrays() -> None:
    ok = dict(hidden=[64], heads=[[4, 0]], ffn=[[128, 0]], batch=[1], seq_len=[16], vocab_size=[100])
    assert len(EncoderBatch(**ok)) == 1
    with pytest.raises(ValueError, match="padding must come after"):
        EncoderBatch(**{**ok, "heads": [[0, 4]], "ffn": [[0, 128]]})
    with pytest.raises(ValueError, match="both heads and FFN"):
        EncoderBatch(**{**ok, "ffn": [[128, 128]]})
    with pytest.raises(ValueError, match="divide the hidden size"):
        EncoderBatch(**{**ok, "heads": [[3, 0]]})
    with pytest.raises(ValueError, match="shape"):
        EncoderBatch(**{**ok, "batch": [1, 2]})
    with pytest.raises(ValueError, match="one precision"):
        EncoderBatch.from_specs(
            [
                EncoderSpec(Arch.uniform(2, 64, 4, 128, vocab_size=100), Workload(1, 16, "fp32")),
                EncoderSpec(Arch.uniform(2, 64, 4, 128, vocab_size=100), Workload(1, 16, "bf16")),
            ]
        )
