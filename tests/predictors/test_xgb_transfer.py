"""XGBoost over the lookup table, and few-shot transfer from another target."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from latbench.predictors.batch import EncoderBatch
from latbench.predictors.io import load_predictor, save_predictor
from latbench.predictors.lut import LutBlockPredictor
from latbench.predictors.transfer import TransferPredictor
from latbench.predictors.xgb import XGBoostPredictor


def test_xgboost_learns_what_the_sum_of_parts_misses(measured) -> None:  # type: ignore[no-untyped-def]
    table, X, y, *_ = measured
    # a deep-model penalty no per-layer table can see: +40% beyond 4 layers
    deep = np.array([s.arch.num_layers > 4 for s in X])
    y_biased = y * np.where(deep, 1.4, 1.0)
    lut = LutBlockPredictor().fit(X, y_biased, table=table)
    xgb = XGBoostPredictor().fit(X, y_biased, table=table)
    lut_error = np.abs(lut.predict(X) / y_biased - 1).mean()
    xgb_error = np.abs(xgb.predict(X) / y_biased - 1).mean()
    assert xgb_error < 0.5 * lut_error


def test_xgboost_interval_is_conformal_and_ordered(measured) -> None:  # type: ignore[no-untyped-def]
    table, X, y, *_ = measured
    rng = np.random.default_rng(0)
    noisy = y * np.exp(rng.normal(0, 0.05, len(y)))
    model = XGBoostPredictor().fit(X[:25], noisy[:25], table=table)
    assert model.widen_log_ >= 0
    detail = model.predict_detail(X[25:])
    assert np.all(detail.low_s <= detail.latency_s) and np.all(detail.latency_s <= detail.high_s)  # type: ignore[operator]
    width = np.log(detail.high_s / detail.low_s)  # type: ignore[operator]
    assert np.all(width > 0.05)  # 5% noise cannot give a razor-thin interval


def test_xgboost_without_a_table_corrects_the_flops_baseline(measured) -> None:  # type: ignore[no-untyped-def]
    _, X, y, *_ = measured
    model = XGBoostPredictor().fit(X, y)
    assert model.base_.name == "flops"
    assert np.abs(model.predict(X) / y - 1).mean() < 0.1


def test_xgboost_is_saved_in_its_own_json_model_format(measured, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    table, X, y, target, fingerprint = measured
    path = tmp_path / "x.json"
    save_predictor(
        XGBoostPredictor().fit(X, y, table=table), path, target=target, fingerprint=fingerprint, training={}
    )
    state = json.loads(path.read_text())["state"]
    assert "learner" in state["booster_"]  # XGBoost's JSON model, readable by xgboost.Booster.load_model
    assert state["base_"]["predictor"] == "lut-block"


def test_xgboost_refuses_bad_settings_and_too_little_data(measured) -> None:  # type: ignore[no-untyped-def]
    table, X, y, *_ = measured
    with pytest.raises(ValueError, match="at least 2 measured encoders"):
        XGBoostPredictor().fit(X[:1], y[:1], table=table)
    with pytest.raises(ValueError, match="n_estimators"):
        XGBoostPredictor(n_estimators=0).fit(X, y, table=table)
    with pytest.raises(ValueError, match="learning_rate"):
        XGBoostPredictor(learning_rate=2.0).fit(X, y, table=table)


def test_xgboost_scores_a_population_with_layers_beyond_its_slots(measured) -> None:  # type: ignore[no-untyped-def]
    from latbench.arch import Arch, Workload

    table, X, y, *_ = measured
    model = XGBoostPredictor(on_extrapolation="ignore").fit(X, y, table=table)
    deep = EncoderBatch.from_archs([Arch.uniform(20, 128, 4, 256, vocab_size=1000)], Workload(1, 16))
    shallow = EncoderBatch.from_archs([Arch.uniform(2, 128, 4, 256, vocab_size=1000)], Workload(1, 16))
    assert model.predict(deep)[0] > 3 * model.predict(shallow)[0]


@pytest.fixture
def source(measured, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """A predictor of a 'source target' that is 1.7x slower than the measured one."""
    table, X, y, target, fingerprint = measured
    path = tmp_path / "source.json"
    save_predictor(
        LutBlockPredictor().fit(X, y * 1.7, table=table),
        path,
        target=target,
        fingerprint=fingerprint,
        training={},
    )
    return path


def test_transfer_recovers_a_new_target_from_a_few_encoders(measured, source: Path) -> None:  # type: ignore[no-untyped-def]
    _, X, y, *_ = measured
    few = TransferPredictor(source=str(source)).fit(X[:10], y[:10])
    assert np.abs(few.predict(X[10:]) / y[10:] - 1).max() < 0.05
    tiny = TransferPredictor(source=str(source)).fit(X[:3], y[:3])  # too few for a slope
    assert tiny.slope_ == 1.0 and tiny.offset_log_ == pytest.approx(np.log(1 / 1.7), abs=0.05)
    untouched = TransferPredictor(source=str(source)).fit([], [])
    np.testing.assert_allclose(untouched.predict(X[:3]), load_predictor(source).predictor.predict(X[:3]))


def test_transfer_carries_its_source_inside_the_file(measured, source: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, X, y, target, fingerprint = measured
    adapted = TransferPredictor(source=str(source)).fit(X[:10], y[:10])
    path = tmp_path / "adapted.json"
    save_predictor(adapted, path, target=target, fingerprint=fingerprint, training={})
    expected = adapted.predict(X)
    source.unlink()  # the source file may be gone on the machine that loads the adapted one
    np.testing.assert_allclose(load_predictor(path).predictor.predict(X), expected, rtol=1e-12)


def test_transfer_without_a_usable_source_says_so(measured, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from latbench.errors import ConfigError

    _, X, y, *_ = measured
    with pytest.raises(ValueError, match="needs source=PATH"):
        TransferPredictor().fit(X, y)
    with pytest.raises(ConfigError, match="does not exist"):
        TransferPredictor(source=str(tmp_path / "missing.json")).fit(X, y)
