"""Splits and scoring of predictors on held-out encoders (fake backend, known law)."""

from __future__ import annotations

import numpy as np
import pytest

from latbench.db import MeasurementDB
from latbench.fingerprint import collect
from latbench.plans import Plan, ProfileSpace
from latbench.predictors import registry
from latbench.predictors.evaluation import (
    additivity,
    evaluate,
    noise_floor_pairs,
    random_folds,
    split_measurements,
    sum_of_parts_s,
)
from latbench.profile import measure_specs, run_profile
from latbench.specs import EncoderSpec
from latbench.target import Target
from latbench.testing.fake_backend import FakeBackend, fake_latency_s
from latbench.timing import ProtocolSettings

SETTINGS = ProtocolSettings(
    warmup_min_s=0.0, warmup_min_iters=1, min_sample_s=0.0, samples=4, min_samples=4, rounds=1
)


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    space = ProfileSpace(
        hidden=(64, 128, 256), heads=(2, 4), ffn_ratios=(2.0,), seq_lens=(16, 64), layers=(2, 4)
    )
    backend = FakeBackend()
    target = backend.normalize(Target("fake-cpu"))
    with MeasurementDB(tmp_path_factory.mktemp("db") / "m.db") as db:
        run_profile(
            Plan(name="e", space=space, encoders=20, seed=5).specs(), backend, target, collect(), db, SETTINGS
        )
        return db.measurements()


def test_random_split_holds_out_a_seeded_share(rows) -> None:  # type: ignore[no-untyped-def]
    a = split_measurements(rows, "random", test_share=0.3, seed=1)
    b = split_measurements(rows, "random", test_share=0.3, seed=1)
    assert [m.spec for m in a.test] == [m.spec for m in b.test]
    assert len(a.test) == 6 and len(a.train) == 14
    assert not {m.spec for m in a.test} & {m.spec for m in a.train}
    assert a.table is not None and a.table.blocks


def test_hidden_split_removes_the_held_out_sizes_from_the_table_too(rows) -> None:  # type: ignore[no-untyped-def]
    split = split_measurements(rows, "hidden", test_share=0.3)
    held = {m.spec.arch.hidden for m in split.test}
    assert held and max(m.spec.arch.hidden for m in split.train) < min(held)
    assert split.table is not None
    assert not {s.layer.hidden for s in split.table.blocks} & held
    assert not {s.hidden for s in split.table.ops} & held


def test_every_predictor_is_scored_and_the_table_ones_beat_flops_on_a_known_law(rows) -> None:  # type: ignore[no-untyped-def]
    scored = {s.predictor: s for s in evaluate(split_measurements(rows, "random", seed=2))}
    assert set(scored) == set(registry.EVALUATED)
    assert scored["lut-block"].accuracy is not None and scored["lut-block"].accuracy.within_10pct == 1.0
    assert scored["lut-block"].accuracy.mape_pct <= scored["flops"].accuracy.mape_pct  # type: ignore[union-attr]
    hidden = {s.predictor: s for s in evaluate(split_measurements(rows, "hidden"))}
    assert hidden["lut-block"].extrapolated > 0  # held-out sizes are outside the table, and counted


def test_noise_floor_pairs_match_by_spec(rows) -> None:  # type: ignore[no-untyped-def]
    split = split_measurements(rows, "random")
    backend = FakeBackend()
    target = backend.normalize(Target("fake-cpu"))
    again = measure_specs(backend, target, collect(), [m.spec for m in split.test[:3]], SETTINGS)
    first, second = noise_floor_pairs(split.test, again)
    assert len(first) == 3 and np.allclose(first, second)  # the fake backend has no noise
    assert noise_floor_pairs(split.test, [])[0].size == 0


def test_bad_splits_are_explained(rows) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="split must be one of random, hidden"):
        split_measurements(rows, "time")
    with pytest.raises(ValueError, match="test share"):
        split_measurements(rows, "random", test_share=1.5)
    with pytest.raises(ValueError, match="at least 4 measured encoders"):
        split_measurements([m for m in rows if m.spec.kind != "encoder"], "random")


def test_cross_validation_holds_every_encoder_out_once(rows) -> None:  # type: ignore[no-untyped-def]
    folds = random_folds(rows, 5, seed=3)
    held = [m.spec for split in folds for m in split.test]
    encoders = [m.spec for m in rows if m.spec.kind == "encoder"]
    assert len(folds) == 5 and sorted(held, key=str) == sorted(encoders, key=str)
    for split in folds:
        assert not {m.spec for m in split.test} & {m.spec for m in split.train}
    pooled = {s.predictor: s for s in evaluate(folds, ("lut-block", "flops"))}
    assert pooled["lut-block"].accuracy.n == len(encoders)  # type: ignore[union-attr]
    assert len(random_folds(rows, 100)) == len(encoders)  # more folds than encoders: leave-one-out
    with pytest.raises(ValueError, match="at least 2 folds"):
        random_folds(rows, 1)


def test_additivity_sums_each_encoders_measured_parts(rows) -> None:  # type: ignore[no-untyped-def]
    gaps = additivity(rows)
    assert set(gaps) == {"model", "operators"}  # the plan measured no isolated blocks
    encoders = [m for m in rows if isinstance(m.spec, EncoderSpec)]
    assert gaps["model"].n == gaps["operators"].n == len(encoders) == 20
    # The fake law: an encoder costs its embedding and blocks plus 2 µs of fixed overhead.
    expected = np.array([-2e-6 / fake_latency_s(m.spec) for m in encoders])
    assert gaps["model"].median_error_pct == pytest.approx(np.median(expected) * 100)
    assert gaps["model"].under_prediction_rate == 1.0
    assert gaps["model"].within_10pct == np.mean(np.abs(expected) <= 0.10)


def test_sum_of_parts_needs_every_part_and_a_known_kind(rows) -> None:  # type: ignore[no-untyped-def]
    medians = {m.spec: m.median_s for m in rows}
    encoder = next(m.spec for m in rows if isinstance(m.spec, EncoderSpec))
    assert sum_of_parts_s(encoder, medians, "model") == pytest.approx(fake_latency_s(encoder) - 2e-6)
    assert sum_of_parts_s(encoder, medians, "isolated") is None
    without_embedding = {s: v for s, v in medians.items() if getattr(s, "op", "") != "embedding"}
    assert sum_of_parts_s(encoder, without_embedding, "operators") is None
    assert additivity([m for m in rows if isinstance(m.spec, EncoderSpec)]) == {}
    with pytest.raises(ValueError, match="parts must be one of isolated, model, operators"):
        sum_of_parts_s(encoder, medians, "kernels")
