"""latbench.predictors.metrics: accuracy figures and the noise floor on small hand-computed examples."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from latbench.predictors.metrics import (
    BOUNDARY_TOLERANCE,
    Accuracy,
    NoiseFloor,
    accuracy,
    kendall_tau,
    noise_floor,
)

MEASURED = [0.001, 0.002, 0.005, 0.2, 3.0]


# --- accuracy ---------------------------------------------------------------------------------
def test_perfect_predictions_score_ideal_on_every_metric() -> None:
    acc = accuracy(MEASURED, MEASURED)
    assert acc.kendall_tau == pytest.approx(1.0)  # scipy's tau-b can be off by one ulp
    assert dataclasses.replace(acc, kendall_tau=1.0) == Accuracy(
        n=5,
        within_5pct=1.0,
        within_10pct=1.0,
        mape_pct=0.0,
        rmspe_pct=0.0,
        kendall_tau=1.0,
        p95_error_pct=0.0,
        under_prediction_rate=0.0,  # equal is not under
        median_error_pct=0.0,
    )


def test_constant_ten_percent_over_prediction_counts_as_within_ten_percent() -> None:
    measured = np.array(MEASURED)
    predicted = measured * 1.1
    # The point of the boundary tolerance: in floating point some of these land just above 10%.
    assert ((predicted - measured) / measured > 0.10).any()

    acc = accuracy(predicted, measured)
    assert acc.n == 5
    assert acc.within_5pct == 0.0
    assert acc.within_10pct == 1.0
    assert acc.mape_pct == pytest.approx(10.0)
    assert acc.rmspe_pct == pytest.approx(10.0)
    assert acc.p95_error_pct == pytest.approx(10.0)
    assert acc.median_error_pct == pytest.approx(10.0)
    assert acc.kendall_tau == pytest.approx(1.0)  # a uniform bias does not change the ranking
    assert acc.under_prediction_rate == 0.0


def test_constant_five_percent_under_prediction_is_within_five_percent_and_always_under() -> None:
    measured = np.array([0.7, 0.3, 1.9])
    predicted = measured * 0.95
    assert ((predicted - measured) / measured < -0.05).any()  # rounding lands outside -5%

    acc = accuracy(predicted, measured)
    assert acc.within_5pct == 1.0
    assert acc.under_prediction_rate == 1.0
    assert acc.median_error_pct == pytest.approx(-5.0)


def test_boundary_tolerance_is_tiny_a_real_miss_is_still_outside() -> None:
    assert BOUNDARY_TOLERANCE <= 1e-9
    measured = np.array(MEASURED)
    acc = accuracy(measured * (1 + 0.10 + 1e-6), measured)
    assert acc.within_10pct == 0.0


def test_known_mix_hand_computed() -> None:
    measured = [1.0, 2.0, 4.0, 5.0, 10.0]
    predicted = [1.02, 1.84, 4.6, 3.5, 10.1]
    # relative errors:  +0.02  -0.08  +0.15  -0.30  +0.01
    acc = accuracy(predicted, measured)
    assert acc.n == 5
    assert acc.within_5pct == pytest.approx(2 / 5)  # +0.02, +0.01
    assert acc.within_10pct == pytest.approx(3 / 5)  # ... and -0.08
    assert acc.mape_pct == pytest.approx((0.02 + 0.08 + 0.15 + 0.30 + 0.01) / 5 * 100)  # 11.2
    assert acc.rmspe_pct == pytest.approx(
        math.sqrt((0.02**2 + 0.08**2 + 0.15**2 + 0.30**2 + 0.01**2) / 5) * 100  # 15.45...
    )
    # |errors| sorted 0.01 0.02 0.08 0.15 0.30; linear rank 0.95 * 4 = 3.8 -> 0.15 + 0.8 * 0.15
    assert acc.p95_error_pct == pytest.approx(27.0)
    assert acc.under_prediction_rate == pytest.approx(2 / 5)  # 1.84 < 2, 3.5 < 5
    assert acc.median_error_pct == pytest.approx(1.0)  # signed sorted: -.30 -.08 +.01 +.02 +.15
    assert acc.kendall_tau == pytest.approx(0.8)  # 1 discordant pair (4.6 vs 3.5) of 10


def test_accuracy_is_independent_of_the_time_unit() -> None:
    measured = np.array([1.0, 2.0, 4.0, 5.0, 10.0])
    predicted = np.array([1.02, 1.84, 4.6, 3.5, 10.1])
    in_s, in_ms = accuracy(predicted, measured), accuracy(predicted * 1e3, measured * 1e3)
    assert in_s.to_dict() == pytest.approx(in_ms.to_dict())


def test_reversed_ranking_gives_tau_minus_one() -> None:
    acc = accuracy([4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0])
    assert acc.kendall_tau == pytest.approx(-1.0)


def test_zero_prediction_is_allowed_and_counts_as_a_full_miss() -> None:
    acc = accuracy([0.0], [0.002])
    assert acc.mape_pct == pytest.approx(100.0)
    assert acc.under_prediction_rate == 1.0


def test_single_pair_has_nan_tau_and_no_warning() -> None:
    # filterwarnings=error makes any warning fail this test.
    acc = accuracy([0.0011], [0.001])
    assert acc.n == 1
    assert math.isnan(acc.kendall_tau)
    assert acc.mape_pct == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("predicted", "measured"),
    [([0.5, 0.5, 0.5], [1.0, 2.0, 3.0]), ([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])],
    ids=["constant-predicted", "constant-measured"],
)
def test_constant_input_has_nan_tau_and_no_warning(predicted: list[float], measured: list[float]) -> None:
    assert math.isnan(accuracy(predicted, measured).kendall_tau)


@pytest.mark.parametrize(
    ("predicted", "measured", "message"),
    [
        ([1.0, 2.0], [1.0], r"predicted_s and measured_s must pair up.*2 and 1"),
        ([], [], r"empty: need at least one latency pair"),
        ([1.0, math.nan], [1.0, 1.0], r"predicted_s must be finite, but index 1 is nan"),
        ([1.0, 1.0], [math.inf, 1.0], r"measured_s must be finite, but index 0 is inf"),
        ([1.0, 1.0], [1.0, 0.0], r"measured_s must be > 0 seconds.*index 1 is 0\.0"),
        ([1.0, 1.0], [-1.0, 1.0], r"measured_s must be > 0 seconds.*index 0 is -1\.0"),
        ([1.0, -0.5], [1.0, 1.0], r"predicted_s must be >= 0 seconds.*index 1 is -0\.5"),
        ([[1.0, 2.0]], [[1.0, 2.0]], r"predicted_s must be a 1-D sequence.*\(1, 2\)"),
        (["fast"], [1.0], r"predicted_s must be a sequence of latencies in seconds"),
    ],
    ids=[
        "length",
        "empty",
        "nan",
        "inf",
        "zero-measured",
        "negative-measured",
        "negative-pred",
        "2d",
        "text",
    ],
)
def test_accuracy_rejects_bad_input_with_a_clear_message(
    predicted: list[float], measured: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        accuracy(predicted, measured)


def test_accuracy_format_shows_every_key_figure() -> None:
    acc = accuracy([1.02, 1.84, 4.6, 3.5, 10.1], [1.0, 2.0, 4.0, 5.0, 10.0])
    assert acc.format() == (
        "n=5 ±5%: 40.0% ±10%: 60.0% MAPE 11.2% RMSPE 15.5% τ 0.800 p95 27.0% under 40.0% bias +1.0%"
    )


def test_accuracy_format_signs_the_bias_and_prints_nan_tau() -> None:
    line = accuracy([0.9], [1.0]).format()
    assert "bias -10.0%" in line
    assert "τ nan" in line
    assert "bias +0.0%" in accuracy([1.0], [1.0]).format()  # never "-0.0%"


def test_accuracy_to_dict_has_every_field_in_order() -> None:
    acc = accuracy([1.02, 1.84, 4.6, 3.5, 10.1], [1.0, 2.0, 4.0, 5.0, 10.0])
    d = acc.to_dict()
    assert list(d) == [f.name for f in dataclasses.fields(Accuracy)]
    assert d["n"] == 5
    assert d["p95_error_pct"] == pytest.approx(27.0)
    assert Accuracy(**d) == acc


def test_accuracy_is_frozen() -> None:
    acc = accuracy([1.0], [1.0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        acc.n = 2  # type: ignore[misc]


# --- kendall_tau -----------------------------------------------------------------------------
def test_kendall_tau_is_tau_b_with_ties() -> None:
    # concordant 2, discordant 0, one tie in b: tau-b = 2 / sqrt(3 * 2)
    assert kendall_tau([1.0, 2.0, 3.0], [1.0, 1.0, 2.0]) == pytest.approx(2 / math.sqrt(6))


@pytest.mark.parametrize(
    ("a", "b"), [([], []), ([1.0], [2.0]), ([1.0, 1.0], [1.0, 2.0]), ([1.0, 2.0], [3.0, 3.0])]
)
def test_kendall_tau_undefined_is_nan_without_warning(a: list[float], b: list[float]) -> None:
    tau = kendall_tau(a, b)
    assert isinstance(tau, float)
    assert math.isnan(tau)


def test_kendall_tau_returns_a_python_float() -> None:
    tau = kendall_tau([1.0, 2.0], [2.0, 1.0])
    assert type(tau) is float
    assert tau == pytest.approx(-1.0)


def test_kendall_tau_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="a and b must pair up one to one, but have 2 and 3"):
        kendall_tau([1.0, 2.0], [1.0, 2.0, 3.0])


# --- noise_floor -----------------------------------------------------------------------------
def test_noise_floor_of_identical_runs_is_zero() -> None:
    assert noise_floor(MEASURED, MEASURED) == NoiseFloor(
        n=5, median_pct=0.0, p90_pct=0.0, mape_pct=0.0, within_10pct=1.0
    )


def test_noise_floor_hand_computed() -> None:
    first = [1.0, 2.0, 4.0]
    second = [1.0, 2.2, 5.0]
    nf = noise_floor(first, second)
    # symmetric differences: 0, 0.2 / 2.1, 1 / 4.5
    d1, d2 = 0.2 / 2.1 * 100, 1 / 4.5 * 100
    assert nf.n == 3
    assert nf.median_pct == pytest.approx(d1)  # 9.52
    assert nf.p90_pct == pytest.approx(d1 + 0.8 * (d2 - d1))  # rank 0.9 * 2 = 1.8 -> 19.68
    # first/second - 1: 0, -0.0909, -0.2;  second/first - 1: 0, +0.1, +0.25
    assert nf.mape_pct == pytest.approx((0 + (1 - 2 / 2.2) + 0.2 + 0 + 0.1 + 0.25) / 6 * 100)  # 10.68
    # within 10%: 0, -0.0909 one way; 0, +0.1 (boundary, counts) the other: 4 of 6
    assert nf.within_10pct == pytest.approx(4 / 6)


def test_noise_floor_is_symmetric_in_its_runs() -> None:
    first, second = [1.0, 2.0, 4.0], [1.0, 2.2, 5.0]
    assert noise_floor(first, second).to_dict() == pytest.approx(noise_floor(second, first).to_dict())


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        ([1.0, 2.0], [1.0], r"first_s and second_s must pair up.*2 and 1"),
        ([], [], r"empty: need at least one latency pair"),
        ([math.nan], [1.0], r"first_s must be finite, but index 0 is nan"),
        ([1.0], [0.0], r"second_s must be > 0 seconds.*index 0 is 0\.0"),
        ([-1.0], [1.0], r"first_s must be > 0 seconds.*index 0 is -1\.0"),
    ],
    ids=["length", "empty", "nan", "zero", "negative"],
)
def test_noise_floor_rejects_bad_input(first: list[float], second: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        noise_floor(first, second)


def test_noise_floor_format_and_to_dict() -> None:
    nf = noise_floor([1.0, 2.0, 4.0], [1.0, 2.2, 5.0])
    assert nf.format() == "noise floor n=3 median 9.5% p90 19.7% MAPE 10.7% ±10%: 66.7%"
    d = nf.to_dict()
    assert list(d) == ["n", "median_pct", "p90_pct", "mape_pct", "within_10pct"]
    assert NoiseFloor(**d) == nf
