"""Every registered predictor passes the predictor contract
(``latbench.predictors.testing.PredictorContract``: scikit-learn's estimator conventions,
batch and list inputs alike, a calibrated interval, JSON round trips, clear errors), and
the encoder batches they all read are built right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latbench.arch import Arch, Workload
from latbench.predictors import registry
from latbench.predictors.base import LatencyPredictor, Prediction
from latbench.predictors.batch import EncoderBatch
from latbench.predictors.io import save_predictor
from latbench.predictors.table import LatencyTable
from latbench.predictors.testing import PredictorContract, PredictorFactory, TrainingData
from latbench.specs import EncoderSpec

NAMES = sorted(registry.names())


class TestRegisteredPredictors(PredictorContract):
    @pytest.fixture(params=NAMES)
    def name(self, request: pytest.FixtureRequest) -> str:
        return request.param  # type: ignore[no-any-return]

    @pytest.fixture
    def training(self, training_data: TrainingData) -> TrainingData:
        return training_data  # the session's database (conftest), not one per class

    @pytest.fixture(scope="class")
    @classmethod
    def transfer_source(cls, training_data: TrainingData, tmp_path_factory: pytest.TempPathFactory) -> Path:
        """A predictor file for ``transfer`` to adapt: lut-block on a 1.7x slower target."""
        data = training_data
        source = tmp_path_factory.mktemp("transfer") / "source.json"
        slower = registry.create("lut-block").fit(data.X, data.y * 1.7, table=data.table)
        save_predictor(slower, source, target=data.target, fingerprint=data.fingerprint, training={})
        return source

    @pytest.fixture
    def make_predictor(self, name: str, request: pytest.FixtureRequest) -> PredictorFactory:
        """Fresh, unfitted predictors; ``transfer`` gets a source predictor file."""
        if name == "transfer":
            source = str(request.getfixturevalue("transfer_source"))
            return lambda: registry.create(name, source=source)
        return lambda: registry.create(name)

    def test_the_registered_name_is_the_predictors_name(
        self, name: str, make_predictor: PredictorFactory
    ) -> None:
        predictor = make_predictor()
        assert predictor.name == name and registry.predictor_class(name) is type(predictor)


class SecondsPerFlopPredictor(LatencyPredictor):
    """A predictor from outside the registry, as a third party would write one: FLOPs
    times the training encoders' median (or mean) seconds per FLOP."""

    name = "contract-seconds-per-flop"

    def __init__(self, statistic: str = "median") -> None:
        self.statistic = statistic

    def _fit(self, batch: EncoderBatch, y: np.ndarray, table: LatencyTable | None) -> None:
        per_flop = y / batch.matmul_flops()
        self.seconds_per_flop_ = float(np.median(per_flop) if self.statistic == "median" else per_flop.mean())

    def _predict(self, batch: EncoderBatch) -> Prediction:
        return Prediction(self.seconds_per_flop_ * batch.matmul_flops())

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "seconds_per_flop_": self.seconds_per_flop_}

    def set_state(self, state: dict[str, Any]) -> SecondsPerFlopPredictor:
        super().set_state(state)
        self.seconds_per_flop_ = float(state["seconds_per_flop_"])
        return self


class TestAPredictorOutsideTheRegistry(PredictorContract):
    """The contract as a third party runs it: a factory, and the suite's own training data."""

    @pytest.fixture(params=["median", "mean"])
    def make_predictor(self, request: pytest.FixtureRequest) -> PredictorFactory:
        return lambda: SecondsPerFlopPredictor(statistic=request.param)


def test_every_predictor_has_a_name_and_unknown_names_are_refused() -> None:
    assert {"lut-block", "lut-op", "flops"} <= set(NAMES)
    with pytest.raises(KeyError, match="unknown predictor 'oracle'"):
        registry.create("oracle")


def test_a_third_party_predictor_is_registered_by_name_but_never_over_a_built_in() -> None:
    with pytest.raises(ValueError, match="'flops' is a built-in predictor"):
        registry.register("flops", SecondsPerFlopPredictor)
    registry.register("seconds-per-flop", SecondsPerFlopPredictor)
    try:
        assert registry.predictor_class("seconds-per-flop") is SecondsPerFlopPredictor
    finally:
        registry.unregister("seconds-per-flop")
    assert "seconds-per-flop" not in registry.names()
    registry.unregister("flops")  # built-ins stay
    assert "flops" in registry.names()


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
