"""Shared data for predictor tests: a fake-backend database whose latencies follow a
known law (``latbench.testing.fake_backend.fake_latency_s``), so accuracy is exact. It is
the contract suite's own training data (``latbench.predictors.testing``), built once."""

from __future__ import annotations

import pytest

from latbench.plans import ProfileSpace
from latbench.predictors.testing import FAKE_SPACE, TrainingData, fake_training_data


@pytest.fixture(scope="session")
def training_data(tmp_path_factory: pytest.TempPathFactory) -> TrainingData:
    return fake_training_data(tmp_path_factory.mktemp("db") / "m.db", space=FAKE_SPACE, encoders=30, seed=3)


@pytest.fixture(scope="session")
def measured(training_data: TrainingData):  # type: ignore[no-untyped-def]
    """``(table, X, y, target, fingerprint)`` of ``training_data``."""
    data = training_data
    return data.table, data.X, data.y, data.target, data.fingerprint


@pytest.fixture(scope="session")
def fake_space() -> ProfileSpace:
    return FAKE_SPACE
