"""Shared data for predictor tests: a fake-backend database whose latencies follow a
known law (``latbench.testing.fake_backend.fake_latency_s``), so accuracy is exact."""

from __future__ import annotations

import numpy as np
import pytest

from latbench.db import MeasurementDB
from latbench.fingerprint import collect
from latbench.plans import Plan, ProfileSpace
from latbench.predictors.table import LatencyTable
from latbench.profile import run_profile
from latbench.target import Target
from latbench.testing.fake_backend import FakeBackend
from latbench.timing import ProtocolSettings

SETTINGS = ProtocolSettings(
    warmup_min_s=0.0, warmup_min_iters=1, min_sample_s=0.0, samples=4, min_samples=4, rounds=1
)
FAKE_SPACE = ProfileSpace(
    hidden=(64, 128, 256),
    heads=(2, 4),
    ffn_ratios=(2.0, 4.0),
    seq_lens=(16, 64),
    layers=(2, 6),
    vocab_size=1000,
)


@pytest.fixture(scope="session")
def measured(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    backend = FakeBackend()
    target = backend.normalize(Target("fake-cpu"))
    fingerprint = collect()
    plan = Plan(name="t", space=FAKE_SPACE, contexts=("model", "isolated"), encoders=30, seed=3)
    with MeasurementDB(tmp_path_factory.mktemp("db") / "m.db") as db:
        run_profile(plan.specs(), backend, target, fingerprint, db, SETTINGS)
        rows = db.measurements()
    table = LatencyTable.from_measurements([m for m in rows if m.spec.kind != "encoder"])
    encoders = [m for m in rows if m.spec.kind == "encoder"]
    X = [m.spec for m in encoders]
    y = np.array([m.median_s for m in encoders])
    return table, X, y, target, fingerprint


@pytest.fixture(scope="session")
def fake_space() -> ProfileSpace:
    return FAKE_SPACE
